/**
 * `bench unet-throughput`: UNet calls per second of a diffusion bundle's classifier graph
 * (`eps_loss`) and its attack graph (`eps_loss_vjp_x`, through the encoder for latent bundles),
 * on the execution provider the worker would pick (CUDA when installed, CPU otherwise: the
 * report says which ran). Rows are random images, timesteps and classes; the first call of each
 * batch size is a warm-up, not timed.
 */
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { OnnxDiffusionModel, type Provider } from "../gpu-worker/onnx_model.ts";
import { imageSize, noiseSize } from "../lib/model.ts";
import { normal, uniform } from "../lib/rng.ts";
import { machine, writeReport } from "./common.ts";

export interface ThroughputOptions {
  bundle: string;
  rows: number[];
  seconds: number;
  providers: Provider[];
  threads: number;
  json: string;
}

export async function unetThroughput(o: ThroughputOptions, argv: readonly string[]) {
  const bundle = await loadDiffusionBundle(o.bundle);
  const model = new OnnxDiffusionModel(bundle, { providers: o.providers, threads: o.threads });
  const D = imageSize(model.imageShape);
  const E = noiseSize(model);
  const K = model.classNames.length;
  const cells = [];
  for (const B of o.rows) {
    // B rows over B / 10 distinct images: what a DC batch looks like (10 classes per image)
    const images = Math.max(1, Math.ceil(B / K));
    const pics = Float32Array.from(uniform(1, 1, images * D));
    // image-major, as the DC and its attacks lay rows out: K classes of one image, then the next
    const x = new Float32Array(B * D);
    const image = Int32Array.from({ length: B }, (_, r) => Math.floor(r / K));
    for (let r = 0; r < B; r++) x.set(pics.subarray(image[r] * D, (image[r] + 1) * D), r * D);
    const rows = {
      x,
      t: Int32Array.from(uniform(2, B, B), (u) => Math.floor(u * model.numTimesteps)),
      eps: normal(3, B, B * E),
      cls: Int32Array.from({ length: B }, (_, r) => r % K),
      image,
    };
    for (const graph of ["eps_loss", "eps_loss_vjp_x"] as const) {
      const w = new Float32Array(B).fill(1 / B);
      const call = () =>
        graph === "eps_loss"
          ? model.epsLoss(rows)
          : model.epsLossVjpX(rows, w, new Float32Array(B));
      await call(); // warm-up: session creation, allocator growth
      let calls = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < o.seconds * 1000 || calls === 0) {
        await call();
        calls++;
      }
      const s = (performance.now() - t0) / 1000;
      cells.push({
        graph,
        rows_per_call: B,
        distinct_images_per_call: images,
        calls,
        seconds: +s.toFixed(3),
        unet_calls_per_s: +((calls * B) / s).toFixed(1),
      });
      console.error(`[throughput] ${graph} B=${B}: ${((calls * B) / s).toFixed(1)} UNet calls/s`);
    }
  }
  const m = bundle.manifest;
  await writeReport(o.json, {
    benchmark: "unet-throughput",
    what: "UNet calls per second (one call = one (image, timestep, noise, class) row) of the " +
      "classifier graph and the attack graph; rows image-major (10 per image); a latent " +
      "bundle's encodings are cached after the warm-up (as when the DC scores one image on " +
      "many rows), its attack graph passes back through the encoder once per image",
    command: `deno task cli bench unet-throughput ${argv.join(" ")}`,
    bundle: model.id,
    kind: m.kind,
    dtype: m.kind === "latent-diffusion" ? m.dtype : "float32",
    image: model.imageShape,
    noise: model.noiseShape,
    provider_requested: o.providers,
    provider_used: model.provider,
    cells,
    machine: machine(),
  });
}
