import { assertEquals, assertRejects } from "./assert.ts";
import { join } from "node:path";
import { BundleError } from "../lib/bundle_manifest.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadBundle, loadClassifierBundle, loadDiffusionBundle } from "../lib/bundle.ts";
import { assertClose, reference, TINY_DIFFUSION, TINY_SURROGATE } from "./helpers.ts";

const f32 = (a: number[]) => Float32Array.from(a);
const rows = reference.rows;
const eps = {
  x: f32(rows.x),
  t: Int32Array.from(rows.t),
  eps: f32(rows.eps),
  cls: Int32Array.from(rows.cls),
};
const lora = (rows.lora as number[][]).map(f32);

async function diffusion() {
  const b = await loadDiffusionBundle(TINY_DIFFUSION);
  return new OnnxDiffusionModel(b, { threads: 1 });
}

Deno.test("eps_loss through the adapter equals PyTorch (LoRA non-zero)", async () => {
  const m = await diffusion();
  const o = await m.epsLoss(eps, lora);
  assertClose(o.l2, rows.l2, 1e-5, "l2");
  assertClose(o.l1, rows.l1, 1e-5, "l1");
});

Deno.test("a dynamic-batch graph capped at 2 rows per call (3 chunks) equals PyTorch", async () => {
  const b = await loadDiffusionBundle(TINY_DIFFUSION);
  const m = new OnnxDiffusionModel(b, {
    threads: 1,
    maxRows: 2,
  });
  const o = await m.epsLoss(eps, lora);
  assertEquals(o.l2.length, 5);
  assertClose(o.l2, rows.l2, 1e-5, "l2");
  assertClose(o.l1, rows.l1, 1e-5, "l1");
});

Deno.test("vjp_x over 5 rows with a fixed batch of 3 (padded second chunk) equals autograd", async () => {
  const m = await diffusion();
  const o = await m.epsLossVjpX(eps, f32(rows.w_l2), f32(rows.w_l1), lora);
  assertEquals(o.gradX.length, 5 * 784);
  assertClose(o.l2, rows.l2, 1e-5, "l2");
  assertClose(o.gradX, rows.grad_x, 1e-4, "grad_x");
});

Deno.test("LoRA gradients summed over chunks equal autograd of the whole batch", async () => {
  const m = await diffusion();
  const o = await m.epsLossGradLora(eps, f32(rows.w_l2), lora);
  assertEquals(o.grads.length, m.loraLayout.length);
  o.grads.forEach((g, i) => assertClose(g, rows.grad_lora_w_l2[i], 1e-4, m.loraLayout[i].name));
});

Deno.test("surrogate logits and VJP equal PyTorch", async () => {
  const b = await loadClassifierBundle(TINY_SURROGATE);
  const c = new OnnxClassifier(b, { threads: 1 });
  const x = f32(reference.images).subarray(0, 3 * 784);
  assertClose(await c.logits(x, 3), reference.surrogate.logits, 1e-5, "logits");
  const o = await c.logitsVjpX(x, f32(reference.surrogate.w), 3);
  assertClose(o.gradX, reference.surrogate.grad_x, 1e-4, "grad_x");
});

Deno.test("rows out of range are refused", async () => {
  const m = await diffusion();
  await assertRejects(
    () => m.epsLoss({ ...eps, t: Int32Array.from([0, 1, 2, 3, 1000]) }),
    RangeError,
  );
  await assertRejects(
    () => m.epsLoss({ ...eps, cls: Int32Array.from([0, 1, 2, 3, 11]) }),
    RangeError,
  );
});

async function tamperedCopy(edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = await Deno.makeTempDir();
  for await (const e of Deno.readDir(TINY_DIFFUSION)) {
    await Deno.copyFile(join(TINY_DIFFUSION, e.name), join(dir, e.name));
  }
  await edit(dir);
  return dir;
}

Deno.test("a bundle file that does not match its sha256 is refused", async () => {
  const dir = await tamperedCopy(async (d) => {
    const p = join(d, "eps_loss.onnx.data");
    const bytes = await Deno.readFile(p);
    bytes[100] ^= 0xff;
    await Deno.writeFile(p, bytes);
  });
  await assertRejects(() => loadBundle(dir), BundleError, "does not match its manifest sha256");
});

Deno.test("a manifest missing a field is refused, naming the field", async () => {
  for (const field of ["classes", "lora", "files"]) {
    const dir = await tamperedCopy(async (d) => {
      const m = JSON.parse(await Deno.readTextFile(join(d, "manifest.json")));
      delete m[field];
      await Deno.writeTextFile(join(d, "manifest.json"), JSON.stringify(m));
    });
    await assertRejects(() => loadBundle(dir), BundleError, `missing the field ${field}`);
  }
});

Deno.test("a missing graph file and broken JSON are refused", async () => {
  const gone = await tamperedCopy((d) => Deno.remove(join(d, "eps_loss_vjp_x.onnx")));
  await assertRejects(() => loadBundle(gone), BundleError, "'eps_loss_vjp_x.onnx' is missing");
  const bad = await tamperedCopy((d) => Deno.writeTextFile(join(d, "manifest.json"), "{not json"));
  await assertRejects(() => loadBundle(bad), BundleError, "not valid JSON");
});
