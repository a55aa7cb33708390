/**
 * DiffPure (lib/diffpure.ts) against the PyTorch reference on the tiny bundle: the purified
 * images, the classifier's logits on them, and the exact input gradient through every reverse
 * step (fixture: make_diffpure_fixture, autograd). Also: the schedule equals the compiler's.
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { loadClassifierBundle, loadDiffusionBundle } from "../lib/bundle.ts";
import {
  alphasCumprod,
  ddimTimesteps,
  forwardNoise,
  purify,
  purifyBackward,
} from "../lib/diffpure.ts";
import { loadTest } from "../lib/fashion_mnist.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { assertClose, FIXTURES, REPO, TINY_DIFFUSION, TINY_SURROGATE } from "./helpers.ts";

Deno.test("DiffPure: purified images, logits and the full input gradient equal the PyTorch reference", async () => {
  const fx = JSON.parse(await Deno.readTextFile(`${FIXTURES}/diffpure_reference.json`)) as {
    settings: { tStar: number; steps: number };
    seed: number;
    draw: number;
    n: number;
    labels: number[];
    purified: number[];
    logits: number[];
    grad: number[];
  };
  const model = new OnnxDiffusionModel(await loadDiffusionBundle(TINY_DIFFUSION), { threads: 1 });
  const clf = new OnnxClassifier(await loadClassifierBundle(TINY_SURROGATE), { threads: 1 });
  const test = await loadTest(REPO);
  const D = 784;
  const x = test.images.slice(0, fx.n * D);
  const noise = forwardNoise(fx.seed, fx.draw, D);
  const run = await purify(model, x, fx.n, fx.settings, noise);
  assertClose(Array.from(run.x0), fx.purified, 1e-5, "purified images");
  const z = await clf.logits(run.x0, fx.n);
  assertClose(Array.from(z), fx.logits, 1e-5, "logits");
  // d Σ CE / d logits = softmax − onehot, then back through the classifier and the purifier
  const K = 10;
  const w = new Float32Array(fx.n * K);
  for (let i = 0; i < fx.n; i++) {
    const row = z.subarray(i * K, (i + 1) * K);
    const max = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - max));
    const s = e.reduce((a, v) => a + v, 0);
    for (let c = 0; c < K; c++) w[i * K + c] = e[c] / s - (c === fx.labels[i] ? 1 : 0);
  }
  const { gradX } = await clf.logitsVjpX(run.x0, w, fx.n);
  const g = await purifyBackward(model, run, fx.n, fx.settings, gradX);
  assertClose(Array.from(g), fx.grad, 1e-3, "input gradient");
});

Deno.test("DiffPure: the schedule is the compiler's; bad settings and bundles without graphs are refused", async () => {
  const abar = alphasCumprod({
    kind: "ddpm_linear",
    num_timesteps: 1000,
    beta_start: 1e-4,
    beta_end: 0.02,
  });
  // torch: cumprod(1 − linspace(1e-4, 0.02, 1000, float64)).float(), bit for bit
  assertEquals([abar[0], abar[500], abar[999]], [
    0.9998999834060669,
    0.07779666036367416,
    4.0358296246267855e-5,
  ]);
  assertEquals(ddimTimesteps({ tStar: 100, steps: 4 }), [100, 75, 50, 25]);
  let threw = false;
  try {
    ddimTimesteps({ tStar: 3, steps: 4 });
  } catch {
    threw = true;
  }
  assertEquals(threw, true);
  const model = new OnnxDiffusionModel(await loadDiffusionBundle(TINY_DIFFUSION), { threads: 1 });
  const bare = Object.assign(Object.create(model), { epsPred: undefined, id: "bare" });
  await assertRejects(
    () => purify(bare, new Float32Array(784), 1, { tStar: 10, steps: 2 }, new Float32Array(784)),
    Error,
    "add_purifier_graphs",
  );
});
