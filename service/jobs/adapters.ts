/**
 * Adapters as files: an export is one JSON document — the adapter's record (bundle, step,
 * how it was trained and scored) and its LoRA tensors (float32, the bundle's layout order,
 * base64) with their sha256 — and an import checks all of it against a bundle this deployment
 * serves before storing a new adapter (AdamW moments zero: an import serves verdicts and
 * evaluations, it does not resume training).
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { isDiffusion } from "../../lib/bundle.ts";
import type { DiffusionManifest } from "../../lib/bundle_manifest.ts";
import { fromBase64, toBase64 } from "../../gpu-worker/protocol.ts";
import type { Caller, ServiceDeps } from "../context.ts";
import { ServiceError } from "../errors.ts";
import { type AdapterView, adapterView } from "./finetune.ts";
import { CheckpointScore } from "../../lib/finetune_spec.ts";

export const ADAPTER_FILE = "tmdc-adapter";

export const AdapterFile = z.object({
  format: z.literal(ADAPTER_FILE),
  version: z.literal(1),
  adapter: z.object({
    id: z.string().max(100),
    bundle: z.string().max(200),
    step: z.number().int().nonnegative(),
    loss: z.number(),
    validation: CheckpointScore,
    finetune: z.record(z.string(), z.unknown()),
  }).passthrough().refine(
    // the record goes into one KV value (≤ 64 KiB) with its audit entry
    (a) => JSON.stringify(a).length <= 16_384,
    "the adapter's record is over 16 KiB",
  ),
  lora: z.string().describe("float32 LoRA tensors in the bundle's layout order, base64"),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type AdapterFile = z.infer<typeof AdapterFile>;

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export async function exportAdapter(
  deps: ServiceDeps,
  id: string,
  caller?: Caller,
): Promise<AdapterFile> {
  const view = await adapterView(deps.store, id, caller); // 404: unknown, or not the caller's
  const rec = (await deps.store.getAdapter(id))!;
  const lora = await deps.store.adapterLora(rec);
  return {
    format: ADAPTER_FILE,
    version: 1,
    adapter: view as AdapterFile["adapter"],
    lora: toBase64(lora),
    sha256: sha256(lora),
  };
}

export async function importAdapter(
  deps: ServiceDeps,
  owner: string,
  file: AdapterFile,
): Promise<AdapterView> {
  const refuse = (code: string, detail: string) => new ServiceError(422, code, detail);
  const bundle = deps.registry.resolve(file.adapter.bundle);
  if (!bundle || !isDiffusion(bundle)) {
    throw refuse(
      "unknown-bundle",
      `this deployment serves no diffusion bundle '${file.adapter.bundle}'`,
    );
  }
  const lora = fromBase64(file.lora);
  if (sha256(lora) !== file.sha256) {
    throw refuse("corrupted-adapter", "the LoRA bytes do not match their sha256");
  }
  const floats = (bundle.manifest as DiffusionManifest).lora.tensors
    .reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  if (lora.length !== 4 * floats) {
    throw refuse(
      "adapter-bundle-mismatch",
      `${lora.length} bytes of LoRA; '${bundle.id}' takes ${4 * floats} (its LoRA layout)`,
    );
  }
  const f = new Float32Array(lora.slice().buffer);
  if (f.some((v) => !Number.isFinite(v))) {
    throw refuse("corrupted-adapter", "a LoRA value is not finite");
  }
  const state = new Uint8Array(3 * lora.length); // [LoRA, m = 0, v = 0]
  state.set(lora);
  const a = file.adapter;
  const rec = await deps.store.importAdapter({
    bundle: bundle.id,
    jobId: "imported",
    owner,
    step: a.step,
    loss: a.loss,
    validation: {
      n: a.validation.n,
      clean_accuracy: a.validation.clean_accuracy,
      robust_accuracy: a.validation.robust_accuracy,
    },
    finetune: a.finetune as never,
    importedFrom: a.id,
  }, state);
  return await adapterView(deps.store, rec.id);
}
