/**
 * The API's named schemas: the service's request schemas and lib/'s spec schemas, named for the
 * OpenAPI document, and the response shapes. The same zod objects validate requests and write
 * /v1/openapi.json, so the two cannot drift; each response schema is checked against the service
 * type it documents (the `Documents` assertions below fail to compile when they part).
 */
import { zodToOpenAPIRegistry } from "@asteasolutions/zod-to-openapi";
import { z } from "@hono/zod-openapi";
import { AttackConfigSchema } from "../lib/attacks/config.ts";
import { DCSettingsOverrides, DCSettingsSchema } from "../lib/dc_settings.ts";
import type { EvaluationReport } from "../lib/evaluation/report.ts";
import {
  DatasetRef,
  EvaluationMode,
  EvaluationSpec,
  SourceSpec,
  TargetSpec,
} from "../lib/evaluation/spec.ts";
import { CheckpointScore, FinetuneJobSpec } from "../lib/finetune_spec.ts";
import { ClassifyOptions as ClassifyOptionsSchema } from "../service/jobs/classify.ts";
import type { DatasetView } from "../service/jobs/datasets.ts";
import { EvaluationRequest as EvaluationRequestSchema } from "../service/jobs/evaluation.ts";
import { AdapterFile as AdapterFileSchema } from "../service/jobs/adapters.ts";
import {
  type AdapterView,
  FinetuneRequest as FinetuneRequestSchema,
  type FinetuneView,
} from "../service/jobs/finetune.ts";
import type { JobView } from "../service/jobs/views.ts";
import type { ModelView } from "../service/registry.ts";
import type { Verdict as VerdictRecord } from "../store/records.ts";

/** Compile-time check: a value of the service type `T` is a valid `S` response. */
type Documents<S extends z.ZodType, T extends z.input<S>> = T;

/**
 * Give a schema of lib/ or service/ a component name in the document. The name is kept in
 * zod-to-openapi's metadata registry, keyed by the schema object, so every request or response
 * schema that embeds it (optional, nullable, in a union) writes a $ref; the schema itself and
 * the layers that own it stay free of OpenAPI.
 */
function named<S extends z.ZodType>(schema: S, refId: string): S {
  zodToOpenAPIRegistry.add(schema, { _internal: { refId } });
  return schema;
}

// ---- requests (input mode: fields with defaults are optional) ----

export const DCSettings = named(DCSettingsOverrides, "DCSettings");
export const AttackConfig = named(AttackConfigSchema, "AttackConfig");
/**
 * Only referenced from the multipart body's hand-written schema, so it is registered as a
 * component (routes/classify.ts); `.extend({})` makes a copy that carries zod-openapi's methods.
 */
export const ClassifyOptions = ClassifyOptionsSchema.extend({}).openapi("ClassifyOptions");
export const EvaluationRequest = named(EvaluationRequestSchema, "EvaluationRequest");
export const FinetuneRequest = named(FinetuneRequestSchema, "FinetuneRequest");
export const AdapterFile = named(AdapterFileSchema, "AdapterFile");

// ---- specs as stored (complete: every default filled in) ----

const Settings = named(DCSettingsSchema, "DCSettingsComplete");
const Evaluation = named(EvaluationSpec, "EvaluationSpec");
const Finetune = named(FinetuneJobSpec, "FinetuneSpec");
named(SourceSpec, "SourceSpec");
named(TargetSpec, "TargetSpec");
named(DatasetRef, "DatasetRef");
named(CheckpointScore, "CheckpointScore");

// ---- responses ----

export const Job = z.object({
  id: z.string(),
  kind: z.enum(["classify", "evaluate", "finetune"]),
  status: z.enum(["creating", "queued", "running", "done", "failed", "cancelled"]),
  bundle: z.string(),
  adapter: z.string().nullable(),
  settings: Settings.nullable().describe("the DC settings; null for a discriminative classifier"),
  evaluation: Evaluation.optional(),
  finetune: Finetune.optional(),
  total: z.number().int(),
  done: z.number().int(),
  failed: z.number().int(),
  progress: z.number().min(0).max(1),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().optional(),
  verdicts: z.array(z.string()).describe("verdict ids ({jobId}.{index}) of finished units"),
  errors: z.array(z.object({ index: z.number().int(), error: z.string() })),
}).openapi("Job");
export type _Job = Documents<typeof Job, JobView>;

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
  meanError: z.array(z.number()).describe(
    "per class (DC); empty for a discriminative classifier's verdict (stop: forward)",
  ),
  stdError: z.array(z.number()).describe("per class (DC); empty for a classifier's verdict"),
  timestepsScored: z.array(z.number().int()).describe(
    "per class (DC); empty for a classifier's verdict",
  ),
  eliminatedAtStage: z.array(z.number().int().nullable()).describe(
    "per class: the stage a class left at (null: never; every class null in a classifier's verdict)",
  ),
  unetCalls: z.number().int(),
  stop: z.enum(["stages", "decided", "budget", "forward"]).optional().describe(
    "why scoring stopped: the staged schedule ran out, one class was left (sequential), the budget; " +
      "forward: a discriminative classifier's single pass (no error estimates)",
  ),
  exitAt: z.array(z.number().int().nullable()).optional().describe(
    "sequential pruning: timesteps scored when each class left the race (null: never left)",
  ),
  settings: Settings.nullable(),
  bundle: z.string(),
  adapter: z.string().nullable(),
  worker: z.object({ id: z.string(), provider: z.string() }),
  timings: z.object({ queuedMs: z.number(), computeMs: z.number() }),
  createdAt: z.string(),
}).openapi("Verdict");
export type _Verdict = Documents<typeof Verdict, VerdictRecord>;

export const Accepted = z.object({ job: Job }).openapi("Accepted");
export const Classified = z.object({ job: Job, verdicts: z.array(Verdict) }).openapi("Classified");
export const JobVerdicts = z.object({ job: z.string(), verdicts: z.array(Verdict) }).openapi(
  "JobVerdicts",
);

const Interval = z.tuple([z.number(), z.number()]).describe("95% Wilson interval");
const ReportCheck = z.object({
  name: z.string(),
  ok: z.boolean(),
  status: z.enum(["passed", "failed", "not-run"]),
  detail: z.string(),
  against: z.array(z.string()).optional().describe("the sibling evaluations compared with"),
});

export const EvaluationReportSchema = z.object({
  mode: EvaluationMode,
  n: z.number().int().describe("images scored so far"),
  of: z.number().int().describe("images in the evaluation"),
  complete: z.boolean(),
  clean_accuracy: z.number().nullable(),
  clean_ci95: Interval,
  robust_accuracy: z.number().nullable(),
  ci95: Interval,
  robust_definition: z.string(),
  attack: AttackConfig,
  source: SourceSpec,
  target: TargetSpec,
  dataset: DatasetRef,
  per_attack_on_source: z.array(z.object({
    attack: z.string(),
    robust_accuracy_on_source: z.number(),
    n: z.number().int(),
  })).nullable(),
  rescored_with_fresh_noise: z.object({
    draws: z.number().int(),
    seeds: z.array(z.number().int()),
    robust_accuracy_per_draw: z.array(z.number()),
  }).nullable(),
  sanity: z.array(ReportCheck).nullable().describe(
    "spec §7 checks against finished siblings (same target, same images); null until complete",
  ),
  adversarial_set: z.string(),
  reused_adversarial_examples: z.boolean(),
  worker_seconds: z.number(),
}).openapi("EvaluationReport");
export type _Report = Documents<typeof EvaluationReportSchema, EvaluationReport>;

export const EvaluationDetail = z.object({
  job: Job,
  report: EvaluationReportSchema,
  images: z.array(z.number().int()).describe(
    "the dataset indices evaluated, in order: GET …/adversarial/{index}.png for each",
  ),
}).openapi("Evaluation");

export const FinetuneDetail = z.object({
  job: Job,
  step: z.number().int(),
  attempts: z.number().int(),
  checkpoints: z.array(z.object({
    step: z.number().int(),
    adapter: z.string(),
    loss: z.number(),
    validation: CheckpointScore,
    best: z.boolean(),
  })),
  best_adapter: z.string().nullable(),
  final: z.boolean().describe("the run finished: best_adapter is final"),
}).openapi("Finetune");
export type _Finetune = Documents<typeof FinetuneDetail, FinetuneView>;

export const Adapter = z.object({
  id: z.string(),
  bundle: z.string(),
  jobId: z.string(),
  step: z.number().int(),
  loss: z.number(),
  validation: CheckpointScore,
  finetune: Finetune,
  createdAt: z.string(),
}).openapi("Adapter");
export type _Adapter = Documents<typeof Adapter, AdapterView>;

export const Dataset = z.object({
  id: z.string(),
  name: z.string(),
  n: z.number().int(),
  shape: z.object({
    channels: z.number().int(),
    height: z.number().int(),
    width: z.number().int(),
  }),
  numClasses: z.number().int(),
  labels: z.array(z.number().int()),
  files: z.array(z.string()),
  sha256: z.string(),
  createdAt: z.string(),
}).openapi("Dataset");
export type _Dataset = Documents<typeof Dataset, DatasetView>;

export const Model = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  kind: z.enum(["diffusion", "latent-diffusion", "classifier"]),
  image: z.object({
    channels: z.number().int(),
    height: z.number().int(),
    width: z.number().int(),
    value_range: z.tuple([z.number(), z.number()]),
  }),
  classes: z.array(z.string()),
  defaultSettings: Settings.optional(),
  metrics: z.unknown().optional().describe(
    "measured figures (clean accuracy with its interval, robust accuracy by attack), each with its command",
  ),
  architecture: z.record(z.string(), z.unknown()).optional(),
  training: z.unknown().optional().describe("clean, or PGD adversarial training with ε and steps"),
  workersOnline: z.number().int(),
}).openapi("Model");
export type _Model = Documents<typeof Model, ModelView>;

export const Models = z.object({
  models: z.array(Model),
  rejected: z.array(z.object({ dir: z.string(), error: z.string() })).describe(
    "bundle folders refused at start-up, with the reason",
  ),
  workers: z.array(
    z.object({ id: z.string(), bundles: z.array(z.string()) }).catchall(z.unknown()),
  ).describe("workers online"),
}).openapi("Models");

export const Health = z.object({
  status: z.literal("ok"),
  version: z.string(),
  kv: z.enum(["local", "remote"]),
  bundles: z.number().int(),
  workers: z.number().int(),
}).openapi("Health");

export const Ready = z.object({
  status: z.enum(["ready", "not-ready"]),
  checks: z.object({
    workers: z.number().int().describe("workers connected (≥ 1 to be ready)"),
    default_bundle: z.string().nullable().describe("the default bundle served, or null"),
    kv_writable: z.boolean(),
  }),
  problems: z.array(z.string()),
}).openapi("Ready");

/** `?limit=&cursor=` of every listing; `next` in the answer is the following page's cursor. */
export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(1000).optional(),
});

/** A listing's answer: one page of `items` under `key`, and the following page's cursor. */
export function pageOf<K extends string, T extends z.ZodType>(key: K, item: T) {
  return z.object(
    { [key]: z.array(item), next: z.string().nullable() } as
      & { [P in K]: z.ZodArray<T> }
      & { next: z.ZodNullable<z.ZodString> },
  );
}

/** Ids in paths: anything (an unknown id is a 404 problem, not a validation error). */
export const IdParam = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" } }),
});
