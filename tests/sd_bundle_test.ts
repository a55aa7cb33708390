/**
 * The paper's setting on a tiny Stable-Diffusion-shaped bundle (issue 15): the TypeScript engine
 * on the converted ONNX graphs against the PyTorch reference DC built from the diffusers
 * components (tests/fixtures/sd_reference.json, `python -m tmdc_compiler.make_sd_fixture`), the
 * chain rule through the encoder, and a Truth-Maximization step on latents.
 */
import { assert_ as assert, assertEquals } from "./assert.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import { defaultSettings } from "../lib/dc_settings.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadBundle, loadDiffusionBundle } from "../lib/bundle.ts";
import { imageSize, noiseSize } from "../lib/model.ts";
import { normal, uniform } from "../lib/rng.ts";
import { initState, PAPER_TM, trainStep } from "../lib/truth_max.ts";
import { PackedDiffusionModel } from "../lib/packed_model.ts";
import { assertClose } from "./helpers.ts";

const DIR = new URL("./fixtures/sd-tiny-cifar10", import.meta.url).pathname;
const ref = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/sd_reference.json", import.meta.url)),
);
const bundle = await loadDiffusionBundle(DIR);
const model = new OnnxDiffusionModel(bundle, { threads: 1 });
const N = ref.images.n as number;
const images = Float32Array.from(uniform(ref.images.seed, ref.images.stream, N * 3 * 32 * 32));

Deno.test("a latent-diffusion manifest: CIFAR-sized input, 4×8×8 latents, prompts, SD 2's schedule", () => {
  const m = bundle.manifest;
  assertEquals(m.kind, "latent-diffusion");
  assertEquals(model.imageShape, { channels: 3, height: 32, width: 32 });
  assertEquals(model.noiseShape, { channels: 4, height: 8, width: 8 });
  if (m.kind !== "latent-diffusion") throw new Error("unreachable");
  assertEquals(m.latent.resolution, 64);
  assertEquals(m.latent.scaling_factor, 0.18215);
  assertEquals(m.schedule, {
    kind: "scaled_linear",
    num_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
  });
  assertEquals(m.conditioning.prompts[3], "a blurry photo of a cat.");
  assertEquals(m.null_class, 10);
  // LoRA on every attention projection the paper targets, self- and cross-attention
  for (const tgt of ["to_q", "to_k", "to_v", "to_out.0"]) {
    assert(m.lora.tensors.some((t) => t.name.endsWith(`attn2.${tgt}.A`)), `attn2.${tgt}`);
    assert(m.lora.tensors.some((t) => t.name.endsWith(`attn1.${tgt}.A`)), `attn1.${tgt}`);
  }
});

Deno.test("TS engine = PyTorch reference DC on the diffusers components: labels, calls, errors", async () => {
  const s = defaultSettings(bundle.manifest);
  assertEquals(s, { ...s, ...ref.settings });
  const out = await classifyImages(model, images, N, s, { batchRows: 24 });
  out.forEach((v, i) => {
    const r = ref.verdicts[i];
    assertEquals(v.label, r.label, `image ${i}: label`);
    assertEquals(v.unetCalls, r.unetCalls, `image ${i}: calls`);
    assertEquals(Array.from(v.count), r.counts, `image ${i}: counts`);
    assertClose(Array.from(v.meanError), r.meanError, 1e-4, `image ${i}: mean errors`);
  });
});

Deno.test("latent gradients reach the image: pooled rows = the sum of single-row passes; FD agrees", async () => {
  const D = imageSize(model.imageShape);
  const E = noiseSize(model);
  const x0 = images.subarray(0, D);
  const x1 = images.subarray(D, 2 * D);
  const rowsOf = (xs: Float32Array[], ts: number[], cs: number[]) => {
    const x = new Float32Array(xs.length * D);
    xs.forEach((r, k) => x.set(r, k * D));
    return {
      x,
      t: Int32Array.from(ts),
      eps: normal(7, 1, xs.length * E),
      cls: Int32Array.from(cs),
    };
  };
  const rows = {
    ...rowsOf([x0, x0, x1], [100, 400, 250], [3, 5, 10]),
    image: Int32Array.of(0, 0, 1),
  };
  const w = Float32Array.from([1, 0.5, 2]);
  const zero = new Float32Array(3);
  const pooled = await model.epsLossVjpX(rows, w, zero);
  const single = async (r: number) => {
    const one = {
      x: rows.x.slice(r * D, (r + 1) * D),
      t: rows.t.slice(r, r + 1),
      eps: rows.eps.slice(r * E, (r + 1) * E),
      cls: rows.cls.slice(r, r + 1),
    };
    return (await model.epsLossVjpX(one, w.slice(r, r + 1), zero.slice(0, 1))).gradX;
  };
  const [g0, g1, g2] = [await single(0), await single(1), await single(2)];
  const sum01 = g0.map((v, p) => v + g1[p]);
  assertClose(Array.from(pooled.gradX.subarray(0, D)), Array.from(sum01), 1e-4, "image 0 pooled");
  assert(pooled.gradX.subarray(D, 2 * D).every((v) => v === 0), "second row of image 0 carries 0");
  assertClose(Array.from(pooled.gradX.subarray(2 * D)), Array.from(g2), 1e-4, "image 1");
  // a central finite difference along the gradient (float32 graphs: a loose tolerance)
  const g = sum01;
  const norm = Math.sqrt(g.reduce((a, v) => a + v * v, 0));
  assert(norm > 0, "the gradient is not zero");
  const h = 1e-2;
  const along = async (sign: number) => {
    const xs = x0.map((v, p) => v + sign * h * g[p] / norm);
    const r2 = rowsOf([xs, xs], [100, 400], [3, 5]);
    r2.eps = rows.eps.slice(0, 2 * E);
    const l = await model.epsLoss(r2);
    return w[0] * l.l2[0] + w[1] * l.l2[1];
  };
  const fd = (await along(1) - await along(-1)) / (2 * h);
  assertClose([fd], [norm], 2e-2, "directional derivative");
});

Deno.test("identical pixels of two different images are never pooled together; packed callers stay apart", async () => {
  const D = imageSize(model.imageShape);
  const E = noiseSize(model);
  const x0 = images.subarray(0, D);
  const x = new Float32Array(4 * D);
  for (let r = 0; r < 4; r++) x.set(x0, r * D); // images 0 and 1 have the same pixels
  const rows = {
    x,
    t: Int32Array.of(100, 400, 100, 400),
    eps: normal(3, 3, 4 * E),
    cls: Int32Array.of(1, 2, 7, 8),
  };
  const w = Float32Array.of(1, 1, 1, 1);
  const zero = new Float32Array(4);
  const lone = async (image: number[]) => {
    const at = image.map((_, k) => k);
    const g = await model.epsLossVjpX({ ...rows, image: Int32Array.from(image) }, w, zero);
    return at.map((k) => g.gradX.subarray(k * D, (k + 1) * D));
  };
  const [a0, , a2] = await lone([0, 0, 1, 1]);
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, q) => s + q * q, 0));
  assert(norm(a0) > 0 && norm(a2) > 0, "each image gets its own, nonzero, gradient");
  assert(Math.abs(norm(a0) - norm(a2)) / norm(a0) > 1e-3, "different classes, different gradients");
  // without indices nothing pools: four rows, four gradients, the same sums
  const [b0, b1, b2, b3] = await lone([0, 1, 2, 3]);
  assertClose(Array.from(b0.map((v, p) => v + b1[p])), Array.from(a0), 1e-4, "image 0's sum");
  assertClose(Array.from(b2.map((v, p) => v + b3[p])), Array.from(a2), 1e-4, "image 1's sum");
  const none = await model.epsLossVjpX(rows, w, zero);
  assertClose(Array.from(none.gradX.subarray(0, D)), Array.from(b0), 1e-4, "unindexed rows");

  // two callers packed into one call, both with image index 0: each gets its lone gradient
  const packed = new PackedDiffusionModel(model, { active: 2 });
  const half = (k: number) => ({
    x: x.slice(2 * k * D, (2 * k + 2) * D),
    t: rows.t.slice(2 * k, 2 * k + 2),
    eps: rows.eps.slice(2 * k * E, (2 * k + 2) * E),
    cls: rows.cls.slice(2 * k, 2 * k + 2),
    image: Int32Array.of(0, 0),
  });
  const [p0, p1] = await Promise.all(
    [0, 1].map((k) => packed.epsLossVjpX(half(k), w.slice(0, 2), zero.slice(0, 2))),
  );
  assertEquals(packed.stats.calls, 1);
  assertClose(Array.from(p0.gradX.subarray(0, D)), Array.from(a0), 1e-4, "caller 0");
  assertClose(Array.from(p1.gradX.subarray(0, D)), Array.from(a2), 1e-4, "caller 1");
});

Deno.test("Truth Maximization runs on latents: a step changes the LoRA and the loss", async () => {
  const s = initState(model.loraLayout, 1);
  const h = { ...PAPER_TM, lr: 1e-2, warmupSteps: 0 };
  const x = images.slice(0, 2 * imageSize(model.imageShape));
  const y = Int32Array.from([3, 7]);
  const before = s.lora.map((a) => a.slice());
  const l0 = await trainStep(model, s, h, 0, x, y);
  assert(Number.isFinite(l0) && l0 > 0, `loss ${l0}`);
  assert(s.lora.some((a, i) => a.some((v, j) => v !== before[i][j])), "LoRA moved");
});

Deno.test("a corrupted SD bundle is refused naming the file", async () => {
  const tmp = await Deno.makeTempDir();
  for await (const e of Deno.readDir(DIR)) {
    await Deno.copyFile(`${DIR}/${e.name}`, `${tmp}/${e.name}`);
  }
  const f = await Deno.open(`${tmp}/weights.bin`, { write: true });
  await f.seek(100, Deno.SeekMode.Start);
  await f.write(new Uint8Array([1, 2, 3, 4]));
  f.close();
  const err = await loadBundle(tmp).then(() => null, (e) => e as Error);
  assert(err && /weights\.bin/.test(err.message), String(err));
  await Deno.remove(tmp, { recursive: true });
});
