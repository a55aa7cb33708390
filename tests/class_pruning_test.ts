/**
 * Sequential class pruning: the decision rule on synthetic errors, and parity with the PyTorch
 * reference (compiler/tmdc_compiler/reference_dc.py ClassRace) on the tiny real bundle — same
 * labels, UNet calls, stopping reasons and exit points (fixture: make_sequential_fixture).
 */
import { assertEquals } from "./assert.ts";
import { ClassRace, timestepOrder } from "../lib/class_pruning.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { classifyImages, raceResult } from "../lib/diffusion_classifier.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { assertClose, FIXTURES, REPO, TINY_DIFFUSION } from "./helpers.ts";

Deno.test("a class whose paired error difference is significant leaves; the budget stops an even race", () => {
  const policy = { z: 2, batch: 2, minTimesteps: 4, maxTimesteps: 8, orderSeed: 0 };
  const order = timestepOrder(8, 0);
  assertEquals([...order].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
  // class 1 is worse by 0.1 ± tiny noise on every timestep, class 2 ties with class 0
  const race = new ClassRace(3, policy, order);
  const err = (c: number, j: number) => [0.5, 0.6, 0.5][c] + 0.001 * Math.sin(7 * j + c);
  for (let js = race.next(); js; js = race.next()) {
    for (const c of race.alive) for (const j of js) race.record(c, err(c, j));
    race.decide(js.length);
  }
  assertEquals(race.exitAt, [null, 4, null]); // not before minTimesteps, then at once
  assertEquals(race.stop, "budget");
  assertEquals(race.rounds, [[0, 1, 2], [0, 2], [0, 2], [0, 2]]);
});

Deno.test("sequential pruning: TypeScript equals the PyTorch reference on the tiny bundle", async () => {
  const fx = JSON.parse(
    await Deno.readTextFile(`${FIXTURES}/sequential_reference.json`),
  ) as {
    subset: { n: number; seed: number };
    settings: DCSettings;
    labels: number[];
    unet_calls: number[];
    stop: string[];
    exit_at: (number | null)[][];
    mean_errors: number[][];
  };
  const model = new OnnxDiffusionModel(await loadDiffusionBundle(TINY_DIFFUSION), { threads: 1 });
  const test = await loadTest(REPO);
  const set = gather(test, seededSubset(test.n, fx.subset.n, fx.subset.seed));
  const v = await classifyImages(model, set.images, set.n, fx.settings, { batchRows: 7 });
  assertEquals(v.map((r) => r.label), fx.labels);
  assertEquals(v.map((r) => r.unetCalls), fx.unet_calls);
  assertEquals(v.map((r) => r.stop), fx.stop);
  assertEquals(v.map((r) => r.exitAt), fx.exit_at);
  v.forEach((r, i) => assertClose(Array.from(r.meanError), fx.mean_errors[i], 1e-5));
});

Deno.test("a sequential default can be turned off or replaced by stages; one timestep cannot decide", async () => {
  const { resolveSettings, DCSettingsOverrides } = await import("../lib/dc_settings.ts");
  const b = await loadDiffusionBundle(TINY_DIFFUSION);
  const seq = { z: 2, batch: 1, minTimesteps: 3, maxTimesteps: 10, orderSeed: 0 };
  const m = {
    ...b.manifest,
    dc_default: { gridSize: 10, stages: [{ nSamples: 10, keep: 1 }], sequential: seq },
  };
  assertEquals(resolveSettings(m).sequential, seq);
  assertEquals(resolveSettings(m, { sequential: null }).sequential, undefined);
  const staged = resolveSettings(m, {
    stages: [{ nSamples: 5, keep: 2 }, { nSamples: 10, keep: 1 }],
  });
  assertEquals([staged.sequential, staged.stages.length], [undefined, 2]);
  assertEquals(
    DCSettingsOverrides.safeParse({ sequential: { ...seq, minTimesteps: 1 } }).success,
    false,
  );
});

Deno.test("a decided race's posterior is not a certainty: all classes on the shared timesteps", () => {
  const race = new ClassRace(
    3,
    { z: 1, batch: 1, minTimesteps: 2, maxTimesteps: 6, orderSeed: 0 },
    [0, 1, 2, 3, 4, 5],
  );
  const err = [[0.50, 0.52, 0.49, 0.51, 0.5, 0.5], [0.9, 0.91, 0.9, 0.9, 0.9, 0.9], [
    0.51,
    0.5,
    0.52,
    0.53,
    0.51,
    0.52,
  ]];
  for (let js = race.next(); js; js = race.next()) {
    for (const c of race.alive) for (const j of js) race.record(c, err[c][j]);
    race.decide(js.length);
  }
  const r = raceResult(race, 100);
  assertEquals(r.stop, "decided");
  assertEquals(r.label, 0);
  // class 2 is close on the shared timesteps: it keeps real mass, class 1 almost none
  if (!(r.posterior[0] < 0.99 && r.posterior[2] > 0.05 && r.posterior[1] < 1e-6)) {
    throw new Error(`posterior ${Array.from(r.posterior)}`);
  }
});
