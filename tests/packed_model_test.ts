/**
 * Packing several callers' rows into one model call (lib/packed_model.ts) on the tiny real
 * bundle: each caller gets what it would get alone, calls are shared when units run at once,
 * a lone caller is sent at once, and a failed call fails only the requests packed into it.
 */
import { assert_, assertEquals, assertRejects } from "./assert.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import type { EpsRows } from "../lib/model.ts";
import { PackedDiffusionModel } from "../lib/packed_model.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { REPO, TINY_DIFFUSION } from "./helpers.ts";

const SETTINGS: DCSettings = {
  stages: [{ nSamples: 20, keep: 1 }],
  gridSize: 20,
  tRange: [0, 1000],
  error: "l2",
  timesteps: "even",
  seed: 3,
  posteriorScale: 1,
  sequential: { z: 1, batch: 2, minTimesteps: 4, maxTimesteps: 16, orderSeed: 1 },
};

async function setup() {
  const onnx = new OnnxDiffusionModel(await loadDiffusionBundle(TINY_DIFFUSION), { threads: 1 });
  const test = await loadTest(REPO);
  const set = gather(test, seededSubset(test.n, 3, 11));
  const D = set.images.length / set.n;
  const image = (i: number) => set.images.slice(i * D, (i + 1) * D);
  return { onnx, image, D };
}

Deno.test("units classified at once share UNet calls and get exactly their lone verdicts", async () => {
  const { onnx, image } = await setup();
  const alone = await Promise.all([0, 1, 2].map(async (i) => {
    const m = new PackedDiffusionModel(onnx, { active: 1 });
    const [v] = await classifyImages(m, image(i), 1, SETTINGS);
    return { v, calls: m.stats.calls, requests: m.stats.requests };
  }));
  // a lone caller is sent at once: one call per request
  for (const a of alone) assertEquals(a.calls, a.requests);

  const gate = { active: 3 };
  const packed = new PackedDiffusionModel(onnx, gate);
  const together = await Promise.all([0, 1, 2].map(async (i) => {
    try {
      return (await classifyImages(packed, image(i), 1, SETTINGS))[0];
    } finally {
      gate.active--; // a finished unit leaves the gate, as the slot does
    }
  }));
  together.forEach((v, i) => {
    assertEquals(v.label, alone[i].v.label);
    assertEquals(v.unetCalls, alone[i].v.unetCalls);
    assertEquals(Array.from(v.meanError), Array.from(alone[i].v.meanError), `image ${i}`);
    assertEquals(v.exitAt, alone[i].v.exitAt);
  });
  const loneCalls = alone.reduce((a, x) => a + x.calls, 0);
  assertEquals(packed.stats.requests, loneCalls);
  assert_(packed.stats.calls < loneCalls * 0.6, `${packed.stats.calls} packed vs ${loneCalls}`);
});

Deno.test("packed input gradients equal the lone ones; a failed call rejects only its requests", async () => {
  const { onnx, image, D } = await setup();
  const rows = (i: number, n: number): EpsRows => {
    const x = new Float32Array(n * D);
    const eps = new Float32Array(n * D);
    for (let r = 0; r < n; r++) {
      x.set(image(i), r * D);
      for (let p = 0; p < D; p++) eps[r * D + p] = Math.sin(p * 0.37 + r + i);
    }
    return {
      x,
      eps,
      t: Int32Array.from({ length: n }, (_, r) => 100 + 200 * r),
      cls: Int32Array.from({ length: n }, (_, r) => r % 10),
    };
  };
  const w = (n: number, k: number) => Float32Array.from({ length: n }, (_, r) => 0.5 + r + k);
  const a = rows(0, 3), b = rows(1, 2);
  const loneA = await onnx.epsLossVjpX(a, w(3, 0), w(3, 1));
  const loneB = await onnx.epsLossVjpX(b, w(2, 2), w(2, 3));
  const packed = new PackedDiffusionModel(onnx, { active: 2 });
  const [pa, pb] = await Promise.all([
    packed.epsLossVjpX(a, w(3, 0), w(3, 1)),
    packed.epsLossVjpX(b, w(2, 2), w(2, 3)),
  ]);
  assertEquals(packed.stats.calls, 1);
  assertEquals(Array.from(pa.gradX), Array.from(loneA.gradX));
  assertEquals(Array.from(pb.gradX), Array.from(loneB.gradX));
  assertEquals(Array.from(pb.l2), Array.from(loneB.l2));

  // rows that cannot run (a timestep past the schedule) fail their call, not the model
  const bad = { ...rows(2, 1), t: Int32Array.from([99999]) };
  const gate = { active: 2 };
  const m = new PackedDiffusionModel(onnx, gate);
  const p1 = m.epsLoss(bad);
  const p2 = m.epsLoss(rows(0, 1));
  await assertRejects(() => p1);
  await assertRejects(() => p2);
  gate.active = 1;
  const after = await m.epsLoss(rows(0, 1));
  assertEquals(after.l2.length, 1);
});
