/** What the CLI's benchmarks share: opening bundles, the default DC settings, machine facts. */
import { dirname, join } from "node:path";
import { config } from "../config.ts";
import type { ClassifierManifest, DiffusionManifest } from "../lib/bundle_manifest.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadBundle } from "../lib/bundle.ts";
import { defaultSettings } from "../routes/classify.ts";
import { DCSettingsInput } from "../routes/schemas.ts";
import { Store } from "../store/kv_store.ts";
import { unpackState } from "../lib/truth_max.ts";

export function usageError(msg: string): never {
  console.error(`error: ${msg}`);
  Deno.exit(2);
}

export async function openSurrogate(dir: string, threads: number) {
  const b = await loadBundle(dir);
  if (b.manifest.kind !== "classifier") usageError(`${dir} is not a classifier bundle`);
  return new OnnxClassifier(b as typeof b & { manifest: ClassifierManifest }, { threads });
}

export async function openDiffusion(ref: string | undefined, threads: number) {
  const dir = ref && (ref.includes("/") || ref.startsWith("."))
    ? ref
    : join(config.modelsDir, ref ?? config.defaultBundle);
  const b = await loadBundle(dir);
  if (b.manifest.kind !== "diffusion") usageError(`${dir} is not a diffusion bundle`);
  return new OnnxDiffusionModel(b as typeof b & { manifest: DiffusionManifest }, {
    threads,
    providers: config.workerProviders,
  });
}

export function settingsFor(model: OnnxDiffusionModel, json?: string): DCSettings {
  const base = defaultSettings(model.bundle.manifest);
  if (!json) return base;
  const r = DCSettingsInput.safeParse(JSON.parse(json));
  if (!r.success) {
    usageError(
      `--settings: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  return { ...base, ...r.data } as DCSettings;
}

export function machine() {
  return {
    os: `${Deno.build.os}-${Deno.build.arch}`,
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    hostname: Deno.hostname(),
  };
}

/** An adapter from the deployment's KV (config.kvPath) as LoRA tensors for `model`. */
export async function loadAdapter(id: string, model: OnnxDiffusionModel) {
  const store = await Store.open(config.kvPath);
  try {
    const rec = await store.getAdapter(id);
    if (!rec) usageError(`no adapter '${id}' in ${config.kvPath}`);
    if (rec.bundle !== model.id) {
      usageError(`adapter '${id}' belongs to ${rec.bundle}, not ${model.id}`);
    }
    const lora = unpackState(await store.adapterLora(rec), model.loraLayout, rec.step, false).lora;
    return { rec, lora };
  } finally {
    store.close();
  }
}

/** Print a report (`-`) or write it to a file, creating its folder. */
export async function writeReport(path: string, report: unknown, indent = 2): Promise<void> {
  const text = JSON.stringify(report, null, indent);
  if (path === "-") return console.log(text);
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(path, text + "\n");
}
