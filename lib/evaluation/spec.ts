/**
 * What an evaluation is, as one zod schema shared by the HTTP API, the stored job, the worker
 * protocol, the CLI and `bench table`: an attack made on a *source* (a surrogate classifier,
 * or the diffusion classifier itself) and scored on a *target* over a set of labelled images.
 */
import { z } from "zod";
import { AttackConfigSchema } from "../attacks/config.ts";
import { DCSettingsSchema } from "../dc_settings.ts";
import { Seed } from "../seed.ts";

const BundleId = z.string().min(1).max(200);

/**
 * DiffPure: purify with the diffusion bundle (forward to t*, DDIM back in `steps`), classify with
 * the classifier bundle (lib/diffpure.ts). `seed`: its forward-noise draws (draw 0 for the verdict,
 * fresh draws 1, 2, … for re-scoring and for each gradient of an adaptive attack).
 */
const DiffPureFields = {
  kind: z.literal("diffpure"),
  bundle: BundleId,
  classifier: BundleId,
  tStar: z.number().int().min(1).max(999),
  steps: z.number().int().min(1).max(100),
  seed: Seed,
};

/** Where adversarial examples are made (gradients are taken). */
export const SourceSpec = z.discriminatedUnion("kind", [
  /** full gradients through every reverse step, a fresh noise draw per gradient (pair with EOT) */
  z.object(DiffPureFields).strict(),
  z.object({ kind: z.literal("surrogate"), bundle: BundleId }).strict(),
  z.object({
    kind: z.literal("dc"),
    bundle: BundleId,
    /**
     * pairs each call of the attack's estimate averages over: an even grid of timesteps in the
     * DC's tRange with the oracle's own noise (estimator "even"), or a fresh uniform subset of
     * the DC's own (timestep, noise) grid pairs (estimator "own": unbiased for the mean the
     * classifier decides on; as many as its grid = exactly that mean)
     */
    timesteps: z.number().int().min(1).max(1000),
    /** absent: "even" (what every evaluation before the exact white-box attack ran) */
    estimator: z.enum(["even", "own"]).optional(),
    noise: z.enum(["fixed", "fresh"]),
    logitScale: z.number().positive().max(1e6),
    /** an adaptive attack on a fine-tuned DC differentiates through the target's adapter */
    adapter: z.string().nullable().optional(),
  }).strict(),
]);
export type SourceSpec = z.infer<typeof SourceSpec>;

/** What is scored: a kind of model (lib/evaluation/targets.ts holds the dispatch table). */
export const TargetSpec = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("dc"),
    bundle: BundleId,
    adapter: z.string().nullable(),
    settings: DCSettingsSchema,
  }).strict(),
  z.object({ kind: z.literal("classifier"), bundle: BundleId }).strict(),
  z.object(DiffPureFields).strict(),
]);
export type TargetSpec = z.infer<typeof TargetSpec>;

export const DatasetRef = z.discriminatedUnion("name", [
  z.object({ name: z.literal("fashion-mnist-test"), n: z.number().int().min(1), seed: Seed })
    .strict(),
  z.object({ name: z.literal("cifar10-test"), n: z.number().int().min(1), seed: Seed }).strict(),
  z.object({
    name: z.literal("uploaded"),
    id: z.string(),
    n: z.number().int().min(1),
    sha256: z.string(),
  }).strict(),
]);
export type DatasetRef = z.infer<typeof DatasetRef>;

export const EvaluationMode = z.enum(["transfer", "adaptive", "white-box"]);
export type EvaluationMode = z.infer<typeof EvaluationMode>;

export const EvaluationSpec = z.object({
  /** complete (validateAttack has filled the defaults) */
  attack: AttackConfigSchema,
  source: SourceSpec,
  target: TargetSpec,
  dataset: DatasetRef,
  /** sha256 of (attack, source, dataset): adversarial examples are shared across targets */
  setKey: z.string(),
  mode: EvaluationMode,
  /** fresh noise draws (DC seeds settings.seed + 1 … + R) the adversarial points are re-scored with */
  rescore: z.number().int().min(0).max(20).optional(),
  /**
   * "all": attack every image; "clean-correct": attack only the images the target gets right
   * clean (the others cannot be robust) — what `bench table` does for costly adaptive attacks
   */
  attackScope: z.enum(["all", "clean-correct"]).optional(),
}).strict();
export type EvaluationSpec = z.infer<typeof EvaluationSpec>;

/** One image's outcome. */
export const EvalItem = z.object({
  index: z.number().int().min(0),
  label: z.number().int().min(0),
  cleanPred: z.number().int(),
  advPred: z.number().int(),
  /** distance of the adversarial example from the clean image, in the attack's norm */
  dist: z.number().min(0).optional(),
  /** the DC's verdicts on the adversarial example under each fresh noise draw (-1: not scored) */
  fresh: z.array(z.number().int()).optional(),
});
export type EvalItem = z.infer<typeof EvalItem>;

export const PerAttack = z.object({
  attack: z.string(),
  robust: z.number().int().min(0),
  total: z.number().int().min(0),
});
export type PerAttack = z.infer<typeof PerAttack>;

/**
 * transfer: made on a surrogate, scored on another model; adaptive: made through the DC that
 * is scored; white-box: a classifier attacked through its own gradients.
 */
export function evaluationMode(source: SourceSpec, target: TargetSpec): EvaluationMode {
  if (source.kind === "diffpure" && target.kind === "diffpure") {
    const same = source.bundle === target.bundle && source.classifier === target.classifier &&
      source.tStar === target.tStar && source.steps === target.steps;
    return same ? "adaptive" : "transfer";
  }
  if (source.bundle !== target.bundle) return "transfer";
  if (source.kind === "dc" && target.kind === "dc") return "adaptive";
  if (source.kind === "surrogate" && target.kind === "classifier") return "white-box";
  return "transfer";
}
