/** Request and response schemas: the same zod objects validate and generate OpenAPI. */
import { z } from "zod";

export const Stage = z.object({
  nSamples: z.number().int().min(1).max(1000).describe(
    "timesteps scored in this stage (Li et al.'s subgrid size)",
  ),
  keep: z.number().int().min(1).describe("classes kept after this stage"),
});

export const DCSettingsInput = z.object({
  stages: z.array(Stage).min(1).max(6).optional(),
  gridSize: z.number().int().min(1).max(1000).optional(),
  tRange: z.tuple([z.number().int().min(0), z.number().int().min(1)]).optional(),
  error: z.enum(["l2", "l1"]).optional(),
  timesteps: z.enum(["even", "stratified"]).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  posteriorScale: z.number().positive().max(1e9).optional(),
}).strict().describe("overrides of the bundle's default diffusion-classifier settings");

export const ClassifyOptions = z.object({
  bundle: z.string().min(1).max(200).optional().describe(
    "bundle name or name@version; default: the embedded default",
  ),
  adapter: z.string().min(1).max(200).nullable().optional().describe(
    "LoRA adapter id (Truth Maximization)",
  ),
  settings: DCSettingsInput.optional(),
}).strict();

export const Verdict = z.object({
  id: z.string(),
  jobId: z.string(),
  index: z.number().int(),
  input: z.object({
    name: z.string(),
    source: z.object({
      format: z.string(),
      width: z.number(),
      height: z.number(),
      channels: z.number(),
    }),
    conversion: z.array(z.string()),
    decoder: z.string(),
  }),
  label: z.number().int(),
  className: z.string(),
  classNames: z.array(z.string()),
  posterior: z.array(z.number()),
  meanError: z.array(z.number()),
  stdError: z.array(z.number()),
  timestepsScored: z.array(z.number().int()),
  eliminatedAtStage: z.array(z.number().int().nullable()),
  unetCalls: z.number().int(),
  settings: z.record(z.string(), z.unknown()),
  bundle: z.string(),
  adapter: z.string().nullable(),
  worker: z.object({ id: z.string(), provider: z.string() }),
  timings: z.object({ queuedMs: z.number(), computeMs: z.number() }),
  createdAt: z.string(),
});

export const Job = z.object({
  id: z.string(),
  kind: z.enum(["classify", "evaluate", "finetune"]),
  evaluation: z.record(z.string(), z.unknown()).optional(),
  finetune: z.record(z.string(), z.unknown()).optional(),
  status: z.enum(["creating", "queued", "running", "done", "failed"]),
  bundle: z.string(),
  adapter: z.string().nullable(),
  settings: z.record(z.string(), z.unknown()),
  total: z.number().int(),
  done: z.number().int(),
  failed: z.number().int(),
  progress: z.number().min(0).max(1),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().optional(),
  verdicts: z.array(z.string()).describe("verdict ids, for finished units"),
  errors: z.array(z.object({ index: z.number().int(), error: z.string() })),
});

export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
}).catchall(z.unknown());

export const Model = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  kind: z.enum(["diffusion", "classifier"]),
  image: z.record(z.string(), z.unknown()),
  classes: z.array(z.string()),
  defaultSettings: z.record(z.string(), z.unknown()).optional(),
  metrics: z.unknown().optional(),
  workersOnline: z.number().int(),
});

export const Health = z.object({
  status: z.literal("ok"),
  version: z.string(),
  kv: z.string(),
  bundles: z.number().int(),
  workers: z.number().int(),
});
