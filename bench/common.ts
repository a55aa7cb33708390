/** What the CLI's benchmarks share: opening bundles, the default DC settings, machine facts. */
import { dirname } from "node:path";
import { config } from "../config.ts";
import { type DCSettings, type DCSettingsOverrides, resolveSettings } from "../lib/dc_settings.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadClassifierBundle, loadDiffusionBundle } from "../lib/bundle.ts";
import { Store } from "../store/kv_store.ts";
import { unpackState } from "../lib/truth_max.ts";
import { UsageError } from "../cli/errors.ts";
import { bundleDir } from "../cli/paths.ts";

/** Refuse the command's input: cli.ts prints `error: msg` (one line) and exits 2. */
export function usageError(msg: string): never {
  throw new UsageError(msg);
}

/** A classifier bundle by name or folder (BundleError if it is not one). */
export async function openSurrogate(ref: string, threads: number) {
  return new OnnxClassifier(await loadClassifierBundle(bundleDir(ref)), { threads });
}

/** A diffusion bundle by name or folder; the deployment's default bundle when absent. */
export async function openDiffusion(ref: string | undefined, threads: number) {
  return new OnnxDiffusionModel(await loadDiffusionBundle(bundleDir(ref)), {
    threads,
    providers: config.workerProviders,
  });
}

/** The bundle's default DC settings with `overrides` (SettingsError if they do not fit it). */
export function settingsFor(
  model: OnnxDiffusionModel,
  overrides?: DCSettingsOverrides,
): DCSettings {
  return resolveSettings(model.bundle.manifest, overrides);
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
