/**
 * The worker protocol: JSON text frames over the WebSocket `/v1/workers/ws`, validated with
 * these schemas on both ends (service/dispatcher.ts and gpu-worker/main.ts).
 *
 *   worker → frontend   hello (first; carries the worker token and its capacity), take,
 *                       heartbeat, result (by kind), checkpoint (fine-tune), fail
 *   frontend → worker   welcome, unit (by kind), none, wake, error
 *
 * `unit` and `result` are unions by `kind`: "classify" | "evaluation" | "finetune". A unit is
 * identified by its reference (job id, unit index, lease token); every message about a unit
 * carries it, and the frontend accepts only the current lease's token.
 */
import { Buffer } from "node:buffer";
import { z } from "zod";
import { DCSettingsSchema } from "../lib/dc_settings.ts";
import { EvalItem, EvaluationSpec, PerAttack } from "../lib/evaluation/spec.ts";
import { CheckpointScore, FinetuneJobSpec } from "../lib/finetune_spec.ts";

/** float32 bytes (CHW pixels, LoRA tensors, optimizer state), base64 */
const Base64 = z.string();
const BundleId = z.string().min(1).max(200);

const UnitRefFields = {
  jobId: z.string().min(1).max(100),
  idx: z.number().int().nonnegative(),
  token: z.string().min(1).max(100),
};
export const UnitRef = z.object(UnitRefFields);
export type UnitRef = z.infer<typeof UnitRef>;

export const UNIT_KINDS = ["classify", "evaluation", "finetune"] as const;
export type UnitKind = (typeof UNIT_KINDS)[number];

// ---- frontend → worker: units ----

export const ClassifyUnitMsg = z.object({
  type: z.literal("unit"),
  kind: z.literal("classify"),
  ...UnitRefFields,
  bundle: BundleId,
  adapter: z.string().nullable(),
  /** the adapter's LoRA tensors (float32, layout order); null = base model */
  lora: Base64.nullable(),
  /** null: the bundle is a discriminative classifier (its logits give the verdict) */
  settings: DCSettingsSchema.nullable(),
  /** float32 CHW pixels in the bundle's image shape */
  pixels: Base64,
});
export type ClassifyUnitMsg = z.infer<typeof ClassifyUnitMsg>;

export const EvaluationUnitMsg = z.object({
  type: z.literal("unit"),
  kind: z.literal("evaluation"),
  ...UnitRefFields,
  spec: EvaluationSpec,
  /**
   * the job's DC settings: a DC *source* attacking a classifier target has its settings only
   * here (the spec's target carries settings only when the target is a DC)
   */
  settings: DCSettingsSchema,
  /** the target adapter's LoRA tensors; null = base model */
  lora: Base64.nullable(),
  /** dataset indices of this shard */
  indices: z.array(z.number().int().nonnegative()),
  /** an uploaded set's clean images (float32 each) and labels for these indices */
  images: z.object({ pixels: z.array(Base64), labels: z.array(z.number().int()) }).nullable(),
  /** stored adversarial examples for every index, or null: attack anew */
  adv: z.array(Base64).nullable(),
});
export type EvaluationUnitMsg = z.infer<typeof EvaluationUnitMsg>;

export const FinetuneUnitMsg = z.object({
  type: z.literal("unit"),
  kind: z.literal("finetune"),
  ...UnitRefFields,
  bundle: BundleId,
  settings: DCSettingsSchema,
  finetune: FinetuneJobSpec,
  /** the last stored checkpoint (resume), or null: start from LoRA's initialisation */
  resume: z.object({ step: z.number().int().nonnegative(), state: Base64 }).nullable(),
});
export type FinetuneUnitMsg = z.infer<typeof FinetuneUnitMsg>;

export const FrontendUnit = z.discriminatedUnion("kind", [
  ClassifyUnitMsg,
  EvaluationUnitMsg,
  FinetuneUnitMsg,
]);
export type FrontendUnit = z.infer<typeof FrontendUnit>;

export const FrontendMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("welcome"), leaseMs: z.number(), heartbeatMs: z.number() }),
  FrontendUnit,
  z.object({ type: z.literal("none") }),
  z.object({ type: z.literal("wake") }),
  /** the unit's job was cancelled: stop it (its result would be refused as stale) */
  z.object({ type: z.literal("cancel"), ...UnitRefFields }),
  z.object({ type: z.literal("error"), message: z.string() }),
]);
export type FrontendMessage = z.infer<typeof FrontendMessage>;

// ---- worker → frontend: results ----

/**
 * Names a worker reports about itself (its id, its execution provider) end up in stored records
 * and on the page: plain tokens only, so nothing a worker says can carry markup.
 */
const WorkerName = z.string().min(1).max(100).regex(
  /^[A-Za-z0-9_.:@+-]+$/,
  "letters, digits and _ . : @ + - only",
);

const Computed = { computeMs: z.number().nonnegative(), provider: WorkerName };

export const ClassifyResultMsg = z.object({
  type: z.literal("result"),
  kind: z.literal("classify"),
  ...UnitRefFields,
  label: z.number().int(),
  errorSum: z.array(z.number()),
  errorSumSq: z.array(z.number()),
  count: z.array(z.number().int()),
  posterior: z.array(z.number()),
  meanError: z.array(z.number()),
  stdError: z.array(z.number()),
  unetCalls: z.number().int().nonnegative(),
  /** the classes still in the running after each elimination stage (sequential: each round) */
  survivors: z.array(z.array(z.number().int())),
  stop: z.enum(["stages", "decided", "budget", "forward"]),
  /** sequential pruning: timesteps scored when each class left the race */
  exitAt: z.array(z.number().int().nullable()).optional(),
  ...Computed,
});
export type ClassifyResultMsg = z.infer<typeof ClassifyResultMsg>;

export const EvaluationResultMsg = z.object({
  type: z.literal("result"),
  kind: z.literal("evaluation"),
  ...UnitRefFields,
  items: z.array(EvalItem.extend({
    /** float32 CHW adversarial pixels; null when the example was reused from the stored set */
    adv: Base64.nullable(),
  })),
  perAttack: z.array(PerAttack).optional(),
  ...Computed,
});
export type EvaluationResultMsg = z.infer<typeof EvaluationResultMsg>;

/** A fine-tune ends with this; its checkpoints were sent before, one `checkpoint` each. */
export const FinetuneResultMsg = z.object({
  type: z.literal("result"),
  kind: z.literal("finetune"),
  ...UnitRefFields,
  ...Computed,
});
export type FinetuneResultMsg = z.infer<typeof FinetuneResultMsg>;

export const WorkerResult = z.discriminatedUnion("kind", [
  ClassifyResultMsg,
  EvaluationResultMsg,
  FinetuneResultMsg,
]);
export type WorkerResult = z.infer<typeof WorkerResult>;

export const CheckpointMsg = z.object({
  type: z.literal("checkpoint"),
  ...UnitRefFields,
  step: z.number().int().positive(),
  loss: z.number(),
  validation: CheckpointScore,
  /** float32 [LoRA…, AdamW m…, v…] in the bundle's layout order */
  state: Base64,
});
export type CheckpointMsg = z.infer<typeof CheckpointMsg>;

export const Progress = z.object({
  calls: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
}).refine((p) => p.calls <= p.total, "progress: calls must not exceed total");
export type Progress = z.infer<typeof Progress>;

export const WorkerMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("hello"),
    token: z.string(),
    worker: z.object({
      id: WorkerName,
      bundles: z.array(BundleId).max(1000),
      provider: WorkerName,
      threads: z.number().int(),
      version: z.string().max(100),
      /** units it runs at once (one per device by default); the frontend never leases more */
      capacity: z.number().int().min(1).max(256),
    }),
  }),
  z.object({ type: z.literal("take") }),
  z.object({ type: z.literal("heartbeat"), ...UnitRefFields, progress: Progress.optional() }),
  WorkerResult,
  CheckpointMsg,
  z.object({ type: z.literal("fail"), ...UnitRefFields, error: z.string() }),
]);
export type WorkerMessage = z.infer<typeof WorkerMessage>;

/** What a unit runner returns for a unit of kind K: the result message less type and reference. */
export type ResultBody<K extends UnitKind> = Omit<
  Extract<WorkerResult, { kind: K }>,
  "type" | "kind" | keyof UnitRef
>;
export type ClassifyResult = ResultBody<"classify">;
export type EvaluationResult = ResultBody<"evaluation">;
export type FinetuneResult = ResultBody<"finetune">;

export function unitRef(m: UnitRef): UnitRef {
  return { jobId: m.jobId, idx: m.idx, token: m.token };
}

/** base64 of bytes (node:buffer's codec is native: no per-byte JS loop on megabyte payloads). */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Bytes of a base64 string (a fresh, 4-byte-aligned buffer: float32 views need no copy). */
export function fromBase64(s: string): Uint8Array {
  const b = Buffer.from(s, "base64");
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** float32 view of base64 bytes. */
export function float32FromBase64(s: string): Float32Array {
  const b = fromBase64(s);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength >> 2);
}
