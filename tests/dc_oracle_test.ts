/** The adaptive-attack oracle through the diffusion classifier: logits and finite differences. */
import { assert_, assertEquals } from "./assert.ts";
import { dcOracle, evenTimesteps, ownPairsOracle } from "../lib/attacks/dc_oracle.ts";
import { crossEntropy, dlr } from "../lib/attacks/losses.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { reference, TINY_DIFFUSION } from "./helpers.ts";
import { pgd } from "../lib/attacks/pgd.ts";
import { PortableRandom } from "../lib/rng.ts";

const b = await loadDiffusionBundle(TINY_DIFFUSION);
const model = new OnnxDiffusionModel(b, {
  threads: 1,
});
const x = Float32Array.from(reference.images as number[]).subarray(0, 2 * 784);
const y = Int32Array.from((reference.labels as number[]).slice(0, 2));

Deno.test("fixed-noise DC logits are −scale × the classifier's mean errors on the same grid", async () => {
  const ts = evenTimesteps(8);
  const o = dcOracle(model, { timesteps: ts, error: "l2", scale: 10, noise: "fixed", seed: 0 });
  const z = await o.logits(x, 2);
  const [v] = await classifyImages(model, x.subarray(0, 784), 1, {
    stages: [{ nSamples: 8, keep: 1 }],
    gridSize: 8,
    tRange: [0, 1000],
    error: "l2",
    timesteps: "even",
    seed: 0,
    posteriorScale: 1,
  });
  for (let c = 0; c < 10; c++) assert_(Math.abs(z[c] + 10 * v.meanError[c]) < 1e-5, `class ${c}`);
  assertEquals(Array.from(await o.logits(x, 2)), Array.from(z)); // deterministic
});

Deno.test("DC input gradient of CE and DLR matches central differences", async () => {
  const o = dcOracle(model, {
    timesteps: evenTimesteps(4),
    error: "l2",
    scale: 50,
    noise: "fixed",
    seed: 1,
  });
  for (
    const loss of [
      (z: Float32Array | Float64Array, i: number) => crossEntropy(z, y[i]),
      (z: Float32Array | Float64Array, i: number) => dlr(z, y[i]),
    ]
  ) {
    const { grad } = await o.lossGrad(x, 2, loss);
    const rng = new PortableRandom(3);
    for (let k = 0; k < 4; k++) {
      // A random direction: the directional derivative is large enough for float32 differences.
      const dir = Float32Array.from({ length: x.length }, () => rng.normal());
      const h = 1e-2;
      const f = async (s: number) => {
        const xs = Float32Array.from(x, (v, i) => v + s * h * dir[i]);
        const r = await o.lossGrad(xs, 2, loss);
        return r.loss[0] + r.loss[1];
      };
      const fd = ((await f(1)) - (await f(-1))) / (2 * h);
      let an = 0;
      for (let i = 0; i < x.length; i++) an += grad[i] * dir[i];
      assert_(
        Math.abs(fd - an) <= 0.02 * Math.abs(an) + 1e-4,
        `directional derivative ${an} vs finite difference ${fd}`,
      );
    }
  }
});

Deno.test("fresh noise makes the oracle stochastic; PGD through it stays in the ball", async () => {
  const o = dcOracle(model, {
    timesteps: evenTimesteps(2),
    error: "l2",
    scale: 50,
    noise: "fresh",
    seed: 0,
  });
  assert_(o.stochastic);
  const a = await o.logits(x, 1);
  const c = await o.logits(x, 1);
  assert_(a.some((v, i) => v !== c[i]));
  const adv = await pgd(o, x, y, {
    norm: "linf",
    eps: 0.05,
    alpha: 0.02,
    steps: 2,
    randomStart: true,
    eotIter: 2,
  }, new PortableRandom(0));
  for (let i = 0; i < x.length; i++) {
    assert_(Math.abs(adv[i] - x[i]) <= 0.05 + 1e-6 && adv[i] >= 0 && adv[i] <= 1);
  }
});

const restricted = {
  stages: [{ nSamples: 4, keep: 3 }, { nSamples: 8, keep: 1 }],
  gridSize: 8,
  tRange: [0, 1000] as [number, number],
  error: "l2" as const,
  timesteps: "stratified" as const,
  seed: 5,
  posteriorScale: 1,
};

Deno.test("own-pairs oracle with every pair: −scale × the classifier's own full-grid mean errors", async () => {
  const o = ownPairsOracle(model, restricted, { scale: 10, noise: "fixed" });
  assert_(!o.stochastic);
  const z = await o.logits(x, 2);
  // one stage scoring the whole grid: the classifier's mean error over its own 8 pairs
  const v = await classifyImages(model, x, 2, {
    ...restricted,
    stages: [{ nSamples: 8, keep: 1 }],
  });
  for (let i = 0; i < 2; i++) {
    for (let c = 0; c < 10; c++) {
      assert_(Math.abs(z[i * 10 + c] + 10 * v[i].meanError[c]) < 1e-5, `image ${i} class ${c}`);
    }
  }
});

Deno.test("subsampled own-pairs VJP is an unbiased estimate of the full-grid VJP", async () => {
  const full = ownPairsOracle(model, restricted, { scale: 10, noise: "fixed" });
  const sub = ownPairsOracle(model, restricted, { scale: 10, noise: "fixed", pairsPerCall: 2 });
  assert_(sub.stochastic);
  const rng = new PortableRandom(9);
  const w = Float32Array.from({ length: 10 }, () => rng.normal()); // fixed logit weights
  const dir = Float32Array.from({ length: 784 }, () => rng.normal());
  const proj = (g: Float32Array) => g.reduce((s, v, i) => s + v * dir[i], 0);
  const x1 = x.subarray(0, 784);
  const target = proj((await full.vjp(x1, 1, w)).grad);
  // the directional derivative of each estimate; by the CLT their mean is within 4 standard
  // errors of the full one unless the estimate is biased (false alarm ≈ 6e-5)
  const N = 150;
  const s: number[] = [];
  for (let k = 0; k < N; k++) s.push(proj((await sub.vjp(x1, 1, w)).grad));
  const mean = s.reduce((a, v) => a + v, 0) / N;
  const sd = Math.sqrt(s.reduce((a, v) => a + (v - mean) ** 2, 0) / (N - 1));
  assert_(sd > 0, "subsets differ");
  assert_(
    Math.abs(mean - target) < 4 * sd / Math.sqrt(N),
    `mean estimate ${mean} vs full ${target} (sd ${sd})`,
  );
  assertEquals(sub.unetCalls, N * 10 * 2);
});
