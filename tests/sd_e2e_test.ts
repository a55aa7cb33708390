/**
 * The paper's setting end to end (issue 15), real processes: a worker announces the tiny
 * Stable-Diffusion-shaped bundle; /v1/classify takes a CIFAR-sized PNG and returns the verdict
 * the in-process engine gives, with the model's upsampling in its conversions; an adaptive
 * evaluation runs on `cifar10-test` read from a full-size binary test batch in TMDC_CIFAR10_DIR;
 * a Truth-Maximization job trains on CIFAR-10's training batches and its adapter classifies.
 */
import sharp from "sharp";
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { Cluster, waitFor } from "./cluster.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import { defaultSettings } from "../lib/dc_settings.ts";
import { decodeImage } from "../lib/image_decode.ts";
import { uniform } from "../lib/rng.ts";

const FIXTURES = new URL("./fixtures", import.meta.url).pathname;

/** Seeded CIFAR-10 binary records (label i mod 10). */
function records(n: number, seed: number): Uint8Array {
  const rec = 3073;
  const bytes = new Uint8Array(n * rec);
  const u = uniform(seed, 0xc1fb, bytes.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(u[i] * 256);
  for (let i = 0; i < n; i++) bytes[i * rec] = i % 10;
  return bytes;
}

/**
 * A models folder with the tiny SD bundle and a tiny CIFAR-10 surrogate; a CIFAR-10 folder in
 * the official binary layout: a full-size test batch (10,000 records) and five small training
 * batches (20 records each: 90 train, 10 validation).
 */
async function setup() {
  const models = await Deno.makeTempDir({ prefix: "tmdc-sd-models-" });
  for (const b of ["sd-tiny-cifar10", "tiny-cifar-surrogate"]) {
    await Deno.mkdir(join(models, b));
    for await (const e of Deno.readDir(join(FIXTURES, b))) {
      await Deno.copyFile(join(FIXTURES, b, e.name), join(models, b, e.name));
    }
  }
  const cifar = await Deno.makeTempDir({ prefix: "tmdc-cifar-" });
  const bin = join(cifar, "cifar-10-batches-bin");
  await Deno.mkdir(bin);
  await Deno.writeFile(join(bin, "test_batch.bin"), records(10_000, 5));
  for (let b = 1; b <= 5; b++) {
    await Deno.writeFile(join(bin, `data_batch_${b}.bin`), records(20, 10 + b));
  }
  return { models, cifar };
}

Deno.test({
  name:
    "e2e: a worker serves the tiny SD bundle: CIFAR-sized PNG verdict over HTTP, cifar10-test evaluation",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { models, cifar } = await setup();
    const c = await Cluster.create(models, "sd-tiny-cifar10", { TMDC_CIFAR10_DIR: cifar });
    try {
      await c.startFrontend();
      const key = await c.apiKey();
      const auth = { authorization: `Bearer ${key}` };
      c.startWorker("w1");
      await waitFor(async () => {
        const ms = (await (await fetch(`${c.url}/v1/models`, { headers: auth })).json()).models;
        const m = ms.find((m: { id: string }) => m.id === "sd-tiny-cifar10@1.0.0");
        return m?.workersOnline === 1 ? m : undefined;
      }, "the worker to announce the SD bundle");

      // a 32×32 RGB PNG, as a CIFAR-10 user would send it
      const raw = Uint8Array.from(uniform(9, 1, 32 * 32 * 3), (v) => Math.floor(v * 256));
      const png = new Uint8Array(
        await sharp(raw, { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer(),
      );
      const fd = new FormData();
      fd.append("image", new Blob([png.slice()], { type: "image/png" }), "cifar.png");
      const r = await fetch(`${c.url}/v1/classify`, { method: "POST", body: fd, headers: auth });
      assertEquals(r.status, 200);
      const v = (await r.json()).verdicts[0];
      assertEquals(v.unetCalls, 10 * 4 + 5 * 16); // the bundle's paper-shaped default
      assert_(
        v.input.conversion.some((s: string) => s.startsWith("upsampled 32×32 → 64×64 (bicubic")),
        JSON.stringify(v.input.conversion),
      );
      // the same verdict as the engine in this process on the decoded image
      const bundle = await loadDiffusionBundle(join(models, "sd-tiny-cifar10"));
      const model = new OnnxDiffusionModel(bundle, { threads: 1 });
      const d = await decodeImage(png, model.imageShape, 1e6);
      const [local] = await classifyImages(model, d.pixels, 1, defaultSettings(bundle.manifest));
      assertEquals(v.label, local.label);
      const rel = v.meanError.map((e: number, k: number) =>
        Math.abs(e - local.meanError[k]) / local.meanError[k]
      );
      assert_(Math.max(...rel) < 1e-5, `mean errors differ by ${Math.max(...rel)}`);

      // an adaptive evaluation on CIFAR-10's test batch through the SD bundle's own gradients
      const jh = { ...auth, "content-type": "application/json" };
      const small = { stages: [{ nSamples: 2, keep: 1 }], gridSize: 4 };
      const e = await fetch(`${c.url}/v1/evaluations`, {
        method: "POST",
        headers: jh,
        body: JSON.stringify({
          target: { bundle: "sd-tiny-cifar10", settings: small },
          source: { kind: "dc", bundle: "sd-tiny-cifar10", timesteps: 2 },
          attack: { attack: "pgd", norm: "linf", eps: 8 / 255, steps: 2 },
          dataset: { name: "cifar10-test", n: 3, seed: 0 },
        }),
      });
      assertEquals(e.status, 202, await e.clone().text());
      const url = c.url + e.headers.get("location");
      const done = await waitFor(
        async () => {
          const j = await (await fetch(url, { headers: auth })).json();
          if (j.job.status === "failed") throw new Error(JSON.stringify(j.job));
          return j.job.status === "done" ? j : undefined;
        },
        "the CIFAR-10 evaluation",
        120_000,
      );
      assertEquals(done.report.n, 3);
      assertEquals(done.report.mode, "adaptive");
      assert_(done.report.robust_accuracy <= done.report.clean_accuracy);

      // a bundle that does not take CIFAR-10's shape, and no data folder: clear refusals
      const wrong = await fetch(`${c.url}/v1/evaluations`, {
        method: "POST",
        headers: jh,
        body: JSON.stringify({
          target: { bundle: "sd-tiny-cifar10" },
          source: { kind: "dc", bundle: "sd-tiny-cifar10" },
          attack: { attack: "fgsm", norm: "linf", eps: 0.03 },
          dataset: { name: "fashion-mnist-test", n: 2 },
        }),
      });
      assertEquals([wrong.status, (await wrong.json()).code], [422, "dataset-mismatch"]);

      // Truth Maximization on CIFAR-10's training batches, examples from the CIFAR-10 surrogate
      const ft = await fetch(`${c.url}/v1/finetunes`, {
        method: "POST",
        headers: jh,
        body: JSON.stringify({
          bundle: "sd-tiny-cifar10",
          data: "cifar10",
          source: { kind: "surrogate", bundle: "tiny-cifar-surrogate" },
          hyper: { lr: 1e-3, warmupSteps: 0, batchSize: 2, steps: 4 },
          attack: { attack: "fgsm", norm: "linf", eps: 8 / 255 },
          checkpoints: [2, 4],
          validation: { n: 2, seed: 0 },
        }),
      });
      assertEquals(ft.status, 202, await ft.clone().text());
      const ftUrl = c.url + ft.headers.get("location");
      const tuned = await waitFor(
        async () => {
          const j = await (await fetch(ftUrl, { headers: auth })).json();
          if (j.job.status === "failed") throw new Error(JSON.stringify(j.job));
          return j.job.status === "done" ? j : undefined;
        },
        "the CIFAR-10 fine-tune",
        180_000,
      );
      assertEquals(tuned.checkpoints.map((p: { step: number }) => p.step), [2, 4]);
      // its adapter classifies through the SD bundle
      const fd2 = new FormData();
      fd2.append("image", new Blob([png.slice()], { type: "image/png" }), "cifar.png");
      fd2.append("options", JSON.stringify({ adapter: tuned.checkpoints[1].adapter }));
      const r2 = await fetch(`${c.url}/v1/classify`, { method: "POST", body: fd2, headers: auth });
      assertEquals(r2.status, 200);
      const v2 = (await r2.json()).verdicts[0];
      assertEquals(v2.adapter, tuned.checkpoints[1].adapter);
      // the wrong data for the bundle: refused before any work
      const bad = await fetch(`${c.url}/v1/finetunes`, {
        method: "POST",
        headers: jh,
        body: JSON.stringify({
          bundle: "sd-tiny-cifar10",
          data: "fashion-mnist",
          source: { kind: "surrogate", bundle: "tiny-cifar-surrogate" },
        }),
      });
      assertEquals([bad.status, (await bad.json()).code], [422, "dataset-mismatch"]);
    } finally {
      await c.shutdown();
      await Deno.remove(cifar, { recursive: true });
    }
  },
});
