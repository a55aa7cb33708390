/**
 * The models a worker's compute slot holds: one ONNX Runtime model per bundle the worker
 * announced. Bundles are checked (manifest, sha256) once by the worker's main thread with
 * lib/bundle.ts; a slot only opens sessions on them. Diffusion models are wrapped so the units a
 * slot runs at once share UNet calls (lib/packed_model.ts); `gate` counts those units.
 */
import { isClassifier, isDiffusion, type LoadedBundle } from "../lib/bundle.ts";
import type { DiffusionModel, LoraTensors } from "../lib/model.ts";

type LoraLayout = DiffusionModel["loraLayout"];
import { PackedDiffusionModel, type PackingGate } from "../lib/packed_model.ts";
import { unpackState } from "../lib/truth_max.ts";
import { OnnxClassifier, OnnxDiffusionModel, type RuntimeOptions } from "./onnx_model.ts";
import { fromBase64 } from "./protocol.ts";

export interface WorkerModels {
  diffusion: Map<string, PackedDiffusionModel<OnnxDiffusionModel>>;
  classifiers: Map<string, OnnxClassifier>;
}

/** Open a model for each checked bundle (sessions themselves open on first use). */
export function openWorkerModels(
  bundles: readonly LoadedBundle[],
  options: RuntimeOptions,
  gate: PackingGate = { active: 1 },
): WorkerModels {
  const models: WorkerModels = { diffusion: new Map(), classifiers: new Map() };
  for (const b of bundles) {
    if (isDiffusion(b)) {
      models.diffusion.set(
        b.id,
        new PackedDiffusionModel(new OnnxDiffusionModel(b, options), gate),
      );
    } else if (isClassifier(b)) models.classifiers.set(b.id, new OnnxClassifier(b, options));
  }
  return models;
}

/** The model for a bundle id, or an error naming what this worker lacks. */
export function need<T>(m: Map<string, T>, id: string, what: string): T {
  const v = m.get(id);
  if (!v) throw new Error(`this worker does not hold the ${what} bundle ${id}`);
  return v;
}

/** An adapter's LoRA tensors from the frontend's base64 (float32, the bundle's layout order). */
export function loraTensors(model: { loraLayout: LoraLayout }, b64: string): LoraTensors {
  return unpackState(fromBase64(b64), model.loraLayout, 0, false).lora;
}
