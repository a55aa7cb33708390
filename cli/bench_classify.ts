/** `bench classify`: clean accuracy of the DC on a seeded Fashion-MNIST test subset. */
import { config } from "../config.ts";
import { classifyImages, unetCalls } from "../lib/diffusion_classifier.ts";
import { gather, seededSubset } from "../lib/fashion_mnist.ts";
import { datasetMismatch, loadBuiltin } from "../lib/builtin_datasets.ts";
import { wilson } from "../lib/stats.ts";
import {
  loadAdapter,
  machine,
  openDiffusion,
  settingsFor,
  usageError,
  writeReport,
} from "../bench/common.ts";
import { defineCommand } from "./command.ts";
import { Progress } from "./progress.ts";
import { DATASET, DIFFUSION_BUNDLE, THREADS } from "./shared_options.ts";

export const benchClassify = defineCommand({
  summary: "clean accuracy of the diffusion classifier on a seeded test subset",
  options: {
    dataset: DATASET,
    n: { type: "int", min: 1, max: 10000, default: 1024, help: "images of the seeded subset" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "subset seed" },
    settings: { type: "settings", help: "overrides of the bundle's default DC settings" },
    bundle: DIFFUSION_BUNDLE,
    adapter: { type: "string", arg: "ID", help: "a TMDC adapter (LoRA) from the service's KV" },
    threads: THREADS,
    "batch-rows": { type: "int", min: 1, default: 512, help: "UNet rows per model call" },
    errors: { type: "boolean", help: "include every image's mean errors in the report" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  async run(values, _, argv) {
    const { n, seed } = values;
    const model = await openDiffusion(values.bundle, values.threads);
    const s = settingsFor(model, values.settings);
    const adapter = values.adapter ? await loadAdapter(values.adapter, model) : undefined;
    const misfit = datasetMismatch(values.dataset, model.imageShape, model.classNames.length);
    if (misfit) usageError(misfit);
    const test = await loadBuiltin(values.dataset, config.root);
    if (n > test.n) usageError(`--n ${n}: ${values.dataset} has ${test.n} images`);
    const subset = gather(test, seededSubset(test.n, n, seed));
    const progress = new Progress("bench classify");
    const t0 = performance.now();
    const verdicts = await classifyImages(model, subset.images, n, s, {
      batchRows: values["batch-rows"],
      lora: adapter?.lora,
      onProgress: progress.callback(`DC on ${n} images`, "UNet calls"),
    });
    progress.end();
    const seconds = (performance.now() - t0) / 1000;
    const correct = verdicts.filter((v, i) => v.label === subset.labels[i]).length;
    const [lo, hi] = wilson(correct, n);
    const out = {
      benchmark: "classify",
      what:
        `diffusion classifier, clean accuracy on a seeded ${values.dataset} subset (TypeScript engine, onnxruntime-node)`,
      command: `deno task cli bench classify ${argv.join(" ")}`,
      n,
      seed,
      dataset: values.dataset,
      subset: `seededSubset(${test.n}, n, seed) of ${values.dataset} (lib/fashion_mnist.ts)`,
      correct,
      accuracy: correct / n,
      ci95: [lo, hi],
      unet_calls_per_image: unetCalls(s, model.classNames.length),
      mean_unet_calls_per_image: verdicts.reduce((a, v) => a + v.unetCalls, 0) / n,
      unet_calls_total: verdicts.reduce((a, v) => a + v.unetCalls, 0),
      seconds,
      images_per_second: n / seconds,
      schedule: s,
      bundle: model.id,
      adapter: adapter
        ? { id: adapter.rec.id, step: adapter.rec.step, run: adapter.rec.jobId }
        : null,
      provider: model.provider,
      machine: machine(),
      labels: verdicts.map((v) => v.label),
      // per image: sequential pruning spends a different number on each
      unet_calls: verdicts.map((v) => v.unetCalls),
      mean_errors: values.errors ? verdicts.map((v) => Array.from(v.meanError)) : undefined,
    };
    await writeReport(values.json, out);
  },
});
