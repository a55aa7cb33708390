/**
 * Per-timestep weights: the fit finds the timesteps that separate classes on synthetic grids,
 * the settings carry them (checked against the grid, dropped with another grid), and the
 * weighted engine equals the PyTorch reference (staged and sequential) and the grid simulator.
 */
import { assert_, assertEquals, assertThrows } from "./assert.ts";
import { fitTimestepWeights } from "../lib/timestep_weights.ts";
import { DCSettingsOverrides, resolveSettings, SettingsError } from "../lib/dc_settings.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { classifyImages, weightsAt } from "../lib/diffusion_classifier.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { fullGridErrors, simulateSequential, simulateStaged } from "../lib/error_grid.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { uniform } from "../lib/rng.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { assertClose, FIXTURES, REPO, TINY_DIFFUSION } from "./helpers.ts";

/** n images × K classes × G timesteps: timesteps < 4 carry the label, the rest loud noise. */
function synthetic(n: number, K: number, G: number, seed: number) {
  const u = uniform(seed, 1, n * (K * G + 1));
  let k = 0;
  const rnd = () => u[k++];
  const err = new Float32Array(n * K * G);
  const labels = Array.from({ length: n }, () => Math.floor(rnd() * K));
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < K; c++) {
      for (let j = 0; j < G; j++) {
        const signal = j < 4 && c === labels[i] ? -0.05 : 0;
        const noise = (rnd() - 0.5) * (j < 4 ? 0.04 : 0.4);
        err[(i * K + c) * G + j] = 0.5 + signal + noise;
      }
    }
  }
  return { err, labels };
}

const accuracy = (err: Float32Array, labels: number[], K: number, G: number, w: number[]) => {
  let right = 0;
  labels.forEach((y, i) => {
    const score = Array.from({ length: K }, (_, c) => {
      let s = 0;
      for (let j = 0; j < G; j++) s += w[j] * err[(i * K + c) * G + j];
      return s;
    });
    if (score.indexOf(Math.min(...score)) === y) right++;
  });
  return right / labels.length;
};

Deno.test("the weight fit puts the weight on the timesteps that separate classes", () => {
  const K = 4, G = 12;
  const fit = synthetic(300, K, G, 1);
  const held = synthetic(300, K, G, 2);
  const w = fitTimestepWeights(fit.err, fit.labels, K, G, fit.labels.map((_, i) => i)).weights;
  assertEquals(w.length, G);
  assertClose([w.reduce((a, v) => a + v, 0) / G], [1], 1e-4);
  const informative = w.slice(0, 4).reduce((a, v) => a + v, 0) / 4;
  const rest = w.slice(4).reduce((a, v) => a + v, 0) / (G - 4);
  assert_(informative > 2 * rest, `weights ${w}`);
  const uniform = accuracy(held.err, held.labels, K, G, Array(G).fill(1));
  const learned = accuracy(held.err, held.labels, K, G, w);
  assert_(learned > uniform + 0.1, `held-out accuracy ${learned} vs uniform ${uniform}`);
  // deterministic: the same errors give the same weights
  assertEquals(
    fitTimestepWeights(fit.err, fit.labels, K, G, [0, 1, 2, 3]).weights,
    fitTimestepWeights(fit.err, fit.labels, K, G, [0, 1, 2, 3]).weights,
  );
});

Deno.test("weights belong to a grid: checked against it, dropped with another grid or norm", async () => {
  const b = await loadDiffusionBundle(TINY_DIFFUSION);
  const weights = Array.from({ length: 10 }, (_, j) => 0.5 + j / 10);
  const m = {
    ...b.manifest,
    dc_default: { gridSize: 10, stages: [{ nSamples: 10, keep: 1 }], weights },
  };
  assertEquals(resolveSettings(m).weights, weights);
  assertEquals(resolveSettings(m, { weights: null }).weights, undefined);
  assertEquals(
    resolveSettings(m, { gridSize: 20, stages: [{ nSamples: 20, keep: 1 }] }).weights,
    undefined,
  );
  assertEquals(resolveSettings(m, { error: "l1" }).weights, undefined);
  assertEquals(resolveSettings(m, { seed: 3 }).weights, weights); // the grid is the same
  assertThrows(
    () => resolveSettings(m, { weights: [1, 2, 3] }),
    SettingsError,
    "3 given for a grid of 10",
  );
  assertEquals(DCSettingsOverrides.safeParse({ weights: [1, 0] }).success, false);
  // an attack's own timesteps take the weight of the grid cell they fall in
  const s = resolveSettings(m);
  assertEquals(weightsAt(s, [0, 99, 100, 950, 999]), [0.5, 0.5, 0.6, 1.4, 1.4]);
});

Deno.test("weighted DC: TypeScript equals the PyTorch reference, staged and sequential, and the grid simulator", async () => {
  const fx = JSON.parse(await Deno.readTextFile(`${FIXTURES}/sequential_reference.json`)) as {
    subset: { n: number; seed: number };
    weighted: {
      settings: DCSettings;
      labels: number[];
      unet_calls: number[];
      mean_errors: number[][];
    }[];
  };
  const model = new OnnxDiffusionModel(await loadDiffusionBundle(TINY_DIFFUSION), { threads: 1 });
  const test = await loadTest(REPO);
  const set = gather(test, seededSubset(test.n, fx.subset.n, fx.subset.seed));
  assertEquals(fx.weighted.map((c) => Boolean(c.settings.sequential)), [true, false]);
  const grid = await fullGridErrors(model, set.images, set.n, {
    ...fx.weighted[0].settings,
    sequential: undefined,
  });
  for (const c of fx.weighted) {
    const v = await classifyImages(model, set.images, set.n, c.settings, { batchRows: 7 });
    assertEquals(v.map((r) => r.label), c.labels);
    assertEquals(v.map((r) => r.unetCalls), c.unet_calls);
    v.forEach((r, i) => assertClose(Array.from(r.meanError), c.mean_errors[i], 1e-5));
    // the weights change the errors the classifier sums: not the unweighted means
    const plain = await classifyImages(model, set.images, set.n, {
      ...c.settings,
      weights: undefined,
    });
    assert_(plain.some((r, i) => Math.abs(r.meanError[0] - v[i].meanError[0]) > 1e-4));
    for (let i = 0; i < set.n; i++) {
      const sim = c.settings.sequential
        ? simulateSequential(grid, i, c.settings)
        : simulateStaged(grid, i, c.settings);
      assertEquals(sim.label, v[i].label);
      assertEquals("unetCalls" in sim ? sim.unetCalls : sim.calls, v[i].unetCalls);
    }
  }
});
