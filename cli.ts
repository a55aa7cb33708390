/**
 * `deno task cli …`
 *   keys create [--name NAME]
 *   classify FILE… [--bundle DIR|NAME] [--settings JSON]          one JSON verdict per line
 *   bench classify --n N --seed S [--settings JSON] [--bundle …] [--json PATH|-]
 *
 * `classify` and `bench` run the engine in-process on a local bundle (no server needed).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { config } from "./config.ts";
import type { DiffusionManifest } from "./lib/bundle_manifest.ts";
import { classifyImages, type DCSettings, unetCalls } from "./lib/diffusion_classifier.ts";
import { gather, loadTest, seededSubset } from "./lib/fashion_mnist.ts";
import { decodeImage } from "./lib/image_decode.ts";
import { wilson } from "./lib/stats.ts";
import { loadBundle, OnnxDiffusionModel } from "./gpu-worker/onnx_model.ts";
import { defaultSettings } from "./routes/classify.ts";
import { DCSettingsInput } from "./routes/schemas.ts";
import { Store } from "./store/kv_store.ts";
import { dirname } from "node:path";

function usage(msg?: string): never {
  if (msg) console.error(`error: ${msg}`);
  console.error(`usage:
  deno task cli keys create [--name NAME]
  deno task cli classify FILE... [--bundle DIR|NAME] [--settings JSON]
  deno task cli bench classify --n N --seed S [--settings JSON] [--bundle DIR|NAME] [--threads T] [--errors] [--json PATH|-]`);
  Deno.exit(2);
}

async function openDiffusion(ref: string | undefined, threads: number) {
  const dir = ref && (ref.includes("/") || ref.startsWith("."))
    ? ref
    : join(config.modelsDir, ref ?? config.defaultBundle);
  const b = await loadBundle(dir);
  if (b.manifest.kind !== "diffusion") usage(`${dir} is not a diffusion bundle`);
  return new OnnxDiffusionModel(b as typeof b & { manifest: DiffusionManifest }, {
    threads,
    providers: config.workerProviders,
  });
}

function settingsFor(model: OnnxDiffusionModel, json?: string): DCSettings {
  const base = defaultSettings(model.bundle.manifest);
  if (!json) return base;
  const r = DCSettingsInput.safeParse(JSON.parse(json));
  if (!r.success) {
    usage(
      `--settings: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  return { ...base, ...r.data } as DCSettings;
}

function machine() {
  return {
    os: `${Deno.build.os}-${Deno.build.arch}`,
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    hostname: Deno.hostname(),
  };
}

const [cmd, sub, ...rest] = Deno.args;
if (cmd === "keys" && sub === "create") {
  const { values } = parseArgs({
    args: rest,
    options: { name: { type: "string", default: "default" } },
  });
  if (!config.kvPath.startsWith("http")) {
    await Deno.mkdir(dirname(config.kvPath), { recursive: true });
  }
  const store = await Store.open(config.kvPath);
  const { key, record } = await store.createApiKey(values.name!);
  store.close();
  console.log(JSON.stringify({ key, id: record.id, name: record.name, kv: config.kvPath }));
} else if (cmd === "classify") {
  const { values, positionals } = parseArgs({
    args: [sub, ...rest].filter((a) => a !== undefined),
    allowPositionals: true,
    options: {
      bundle: { type: "string" },
      settings: { type: "string" },
      threads: { type: "string", default: "0" },
    },
  });
  if (positionals.length === 0) usage("no image files");
  const model = await openDiffusion(values.bundle, Number(values.threads));
  const s = settingsFor(model, values.settings);
  for (const file of positionals) {
    const d = await decodeImage(
      await Deno.readFile(file),
      model.imageShape,
      config.limits.maxImagePixels,
    );
    const t0 = performance.now();
    const [v] = await classifyImages(model, d.pixels, 1, s);
    console.log(JSON.stringify({
      file,
      label: v.label,
      className: model.classNames[v.label],
      posterior: Array.from(v.posterior),
      meanError: Array.from(v.meanError),
      stdError: Array.from(v.stdError),
      unetCalls: v.unetCalls,
      settings: s,
      bundle: model.id,
      decoder: d.decoder,
      conversion: d.conversion,
      ms: Math.round(performance.now() - t0),
    }));
  }
} else if (cmd === "bench" && sub === "classify") {
  const { values } = parseArgs({
    args: rest,
    options: {
      n: { type: "string", default: "1024" },
      seed: { type: "string", default: "0" },
      settings: { type: "string" },
      bundle: { type: "string" },
      threads: { type: "string", default: "0" },
      "batch-rows": { type: "string", default: "512" },
      json: { type: "string", default: "-" },
      errors: { type: "boolean", default: false },
    },
  });
  const n = Number(values.n);
  const seed = Number(values.seed);
  if (!Number.isInteger(n) || n < 1 || n > 10000) usage("--n must be an integer in [1, 10000]");
  const model = await openDiffusion(values.bundle, Number(values.threads));
  const s = settingsFor(model, values.settings);
  const test = await loadTest(config.root);
  const subset = gather(test, seededSubset(test.n, n, seed));
  const t0 = performance.now();
  let lastLog = 0;
  const verdicts = await classifyImages(model, subset.images, n, s, {
    batchRows: Number(values["batch-rows"]),
    onProgress: (done, total) => {
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        console.error(
          `[bench] ${done}/${total} UNet calls (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
        );
      }
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const correct = verdicts.filter((v, i) => v.label === subset.labels[i]).length;
  const [lo, hi] = wilson(correct, n);
  const out = {
    benchmark: "classify",
    what:
      "diffusion classifier, clean accuracy on a seeded Fashion-MNIST test subset (TypeScript engine, onnxruntime-node)",
    command: `deno task cli bench classify ${Deno.args.slice(2).join(" ")}`,
    n,
    seed,
    subset: "first n of lib/fashion_mnist.ts seededSubset(10000, n, seed)",
    correct,
    accuracy: correct / n,
    ci95: [lo, hi],
    unet_calls_per_image: unetCalls(s, model.classNames.length),
    unet_calls_total: verdicts.reduce((a, v) => a + v.unetCalls, 0),
    seconds,
    images_per_second: n / seconds,
    schedule: s,
    bundle: model.id,
    provider: model.provider,
    machine: machine(),
    labels: verdicts.map((v) => v.label),
    mean_errors: values.errors ? verdicts.map((v) => Array.from(v.meanError)) : undefined,
  };
  const text = JSON.stringify(out, null, 2);
  if (values.json === "-") console.log(text);
  else await Deno.writeTextFile(values.json!, text + "\n");
} else {
  usage();
}
