/**
 * The full error grid reproduces the engine: a staged schedule simulated on the grid gives
 * classifyImages' verdicts, calls and survivors exactly, on the tiny real bundle and real images.
 */
import { assertEquals } from "./assert.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { fullGridErrors, simulateSequential, simulateStaged } from "../lib/error_grid.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { REPO, TINY_DIFFUSION } from "./helpers.ts";

Deno.test("a staged schedule simulated on the full error grid equals classifyImages exactly", async () => {
  const model = new OnnxDiffusionModel(await loadDiffusionBundle(TINY_DIFFUSION), { threads: 1 });
  const test = await loadTest(REPO);
  const n = 6;
  const set = gather(test, seededSubset(test.n, n, 3));
  const base: DCSettings = {
    stages: [{ nSamples: 5, keep: 3 }, { nSamples: 20, keep: 1 }],
    gridSize: 20,
    tRange: [0, 1000],
    error: "l1",
    timesteps: "even",
    seed: 7,
    posteriorScale: 1,
  };
  const grid = await fullGridErrors(model, set.images, n, base);
  for (
    const s of [
      base,
      { ...base, error: "l2" as const },
      {
        ...base,
        stages: [{ nSamples: 4, keep: 5 }, { nSamples: 10, keep: 2 }, { nSamples: 20, keep: 1 }],
      },
      { ...base, stages: [{ nSamples: 20, keep: 1 }] },
    ]
  ) {
    const engine = await classifyImages(model, set.images, n, s);
    for (let i = 0; i < n; i++) {
      const sim = simulateStaged(grid, i, s);
      assertEquals(sim.label, engine[i].label, `label of image ${i}`);
      assertEquals(sim.calls, engine[i].unetCalls, `calls of image ${i}`);
      assertEquals(sim.survivors, engine[i].survivors, `survivors of image ${i}`);
      for (const c of engine[i].survivors.at(-1)!) {
        assertEquals(sim.meanError[c], engine[i].meanError[c], `mean error of class ${c}`);
      }
    }
  }
});

Deno.test("sequential pruning: the engine and the grid simulation agree; decided races stop early", async () => {
  const model = new OnnxDiffusionModel(await loadDiffusionBundle(TINY_DIFFUSION), { threads: 1 });
  const test = await loadTest(REPO);
  const n = 6;
  const set = gather(test, seededSubset(test.n, n, 4));
  const s: DCSettings = {
    stages: [{ nSamples: 20, keep: 1 }],
    gridSize: 20,
    tRange: [0, 1000],
    error: "l1",
    timesteps: "even",
    seed: 7,
    posteriorScale: 1,
    sequential: { z: 1, batch: 2, minTimesteps: 4, maxTimesteps: 16, orderSeed: 3 },
  };
  const grid = await fullGridErrors(model, set.images, n, s);
  const engine = await classifyImages(model, set.images, n, s);
  for (let i = 0; i < n; i++) {
    const sim = simulateSequential(grid, i, s);
    assertEquals(sim.label, engine[i].label, `label of image ${i}`);
    assertEquals(sim.unetCalls, engine[i].unetCalls, `calls of image ${i}`);
    assertEquals(sim.stop, engine[i].stop);
    assertEquals(sim.exitAt, engine[i].exitAt);
    assertEquals(Array.from(sim.meanError), Array.from(engine[i].meanError));
    // every class that left did so at a round boundary after the minimum, and calls add up
    const e = engine[i];
    const exits = e.exitAt!.filter((x): x is number => x !== null);
    assertEquals(exits.every((x) => x >= 4 && x % 2 === 0), true);
    const scored = e.survivors.length * 2;
    assertEquals(e.unetCalls, exits.reduce((a, x) => a + x, 0) + (10 - exits.length) * scored);
    assertEquals(
      e.stop === "decided" ? e.survivors.at(-1)!.length : 0,
      e.stop === "decided" ? 1 : 0,
    );
  }
});
