/**
 * Messages between the frontend and GPU workers over the WebSocket `/v1/workers/ws`.
 * JSON text frames; both ends validate with these schemas.
 *
 * worker → frontend: hello (first, carries the worker token), take, heartbeat, result, fail
 * frontend → worker: welcome, unit, none, wake, error
 */
import { z } from "zod";
import { DCSettingsSchema as Settings } from "../lib/dc_settings.ts";
import { EvaluationSpec } from "../lib/evaluation/spec.ts";
import { FinetuneJobSpec } from "../lib/finetune_spec.ts";

/** A Truth-Maximization run as the worker receives it (routes/finetunes.ts validates it first). */
export const FinetuneSpecSchema = FinetuneJobSpec;
export type FinetuneSpecMsg = z.infer<typeof FinetuneSpecSchema>;

const UnitRef = { jobId: z.string(), idx: z.number().int().nonnegative(), token: z.string() };

export const WorkerMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("hello"),
    token: z.string(),
    worker: z.object({
      id: z.string().min(1).max(200),
      bundles: z.array(z.string()),
      provider: z.string(),
      threads: z.number().int(),
      version: z.string(),
    }),
  }),
  z.object({ type: z.literal("take") }),
  z.object({
    type: z.literal("heartbeat"),
    ...UnitRef,
    progress: z.object({ calls: z.number().int(), total: z.number().int() }).optional(),
  }),
  z.object({
    type: z.literal("result"),
    ...UnitRef,
    result: z.object({
      label: z.number().int(),
      errorSum: z.array(z.number()),
      errorSumSq: z.array(z.number()),
      count: z.array(z.number().int()),
      posterior: z.array(z.number()),
      meanError: z.array(z.number()),
      stdError: z.array(z.number()),
      unetCalls: z.number().int(),
      survivors: z.array(z.array(z.number().int())),
      computeMs: z.number(),
      provider: z.string(),
    }),
  }),
  z.object({ type: z.literal("fail"), ...UnitRef, error: z.string() }),
  z.object({
    type: z.literal("ft-checkpoint"),
    ...UnitRef,
    step: z.number().int().positive(),
    loss: z.number(),
    validation: z.object({
      n: z.number().int(),
      clean_accuracy: z.number(),
      robust_accuracy: z.number(),
    }),
    /** float32 [LoRA…, AdamW m…, v…] in the bundle's layout order, base64 */
    state: z.string(),
  }),
  z.object({
    type: z.literal("ft-result"),
    ...UnitRef,
    computeMs: z.number(),
    provider: z.string(),
  }),
  z.object({
    type: z.literal("eval-result"),
    ...UnitRef,
    items: z.array(z.object({
      index: z.number().int(),
      label: z.number().int(),
      cleanPred: z.number().int(),
      advPred: z.number().int(),
      /** distance of the adversarial example from the clean image, in the attack's norm */
      dist: z.number(),
      /** verdicts under fresh noise draws (-1: wrong on the clean image, not scored) */
      fresh: z.array(z.number().int()).optional(),
      /** float32 CHW pixels, base64; null when the example was reused from the stored set */
      adv: z.string().nullable(),
    })),
    perAttack: z.array(
      z.object({ attack: z.string(), robust: z.number().int(), total: z.number().int() }),
    ).optional(),
    computeMs: z.number(),
    provider: z.string(),
  }),
]);
export type WorkerMessage = z.infer<typeof WorkerMessage>;
export type UnitResult = Extract<WorkerMessage, { type: "result" }>["result"];

export const FrontendMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("welcome"), leaseMs: z.number(), heartbeatMs: z.number() }),
  z.object({
    type: z.literal("unit"),
    ...UnitRef,
    kind: z.literal("classify"),
    bundle: z.string(),
    adapter: z.string().nullable(),
    /** the adapter's LoRA tensors (float32, layout order), base64; null = base model */
    lora: z.string().nullable(),
    settings: Settings,
    /** float32 CHW pixels, base64 */
    pixels: z.string(),
  }),
  z.object({
    type: z.literal("eval-unit"),
    ...UnitRef,
    evaluation: EvaluationSpec.omit({ setKey: true, mode: true }),
    settings: Settings,
    /** the target adapter's LoRA tensors, base64; null = base model */
    lora: z.string().nullable(),
    indices: z.array(z.number().int()),
    /** an uploaded set's clean images (base64 float32 each) and labels for these indices */
    images: z.object({ pixels: z.array(z.string()), labels: z.array(z.number().int()) })
      .nullable(),
    /** stored adversarial examples for every index (base64 float32), or null: attack anew */
    adv: z.array(z.string()).nullable(),
  }),
  z.object({
    type: z.literal("finetune-unit"),
    ...UnitRef,
    bundle: z.string(),
    settings: Settings,
    finetune: FinetuneSpecSchema,
    /** the last stored checkpoint (resume), or null: start from LoRA's initialisation */
    resume: z.object({ step: z.number().int(), state: z.string() }).nullable(),
  }),
  z.object({ type: z.literal("none") }),
  z.object({ type: z.literal("wake") }),
  z.object({ type: z.literal("error"), message: z.string() }),
]);
export type FrontendMessage = z.infer<typeof FrontendMessage>;

export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
