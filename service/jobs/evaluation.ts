/**
 * Robustness evaluations as jobs sharded over workers: a request is checked against the bundles,
 * the adapter, the settings and the attack quota, completed into an EvaluationSpec
 * (lib/evaluation/spec.ts), planned into shards by the evaluation engine and stored; its report
 * is the engine's report (lib/evaluation/report.ts) over the shards finished so far, with sanity
 * checks against finished siblings (same target, same images).
 *
 * Adversarial examples are made once per (attack, source, images) and reused for every target:
 * a second evaluation that differs only in its target scores the stored images.
 */
import { z } from "zod";
import { type AttackConfig, AttackConfigSchema } from "../../lib/attacks/config.ts";
import { AttackConfigError, attackCost, validateAttack } from "../../lib/attacks/registry.ts";
import { unetCalls } from "../../lib/diffusion_classifier.ts";
import { admitJob } from "../quota.ts";
import { bundleShape, isClassifier, isDiffusion } from "../../lib/bundle.ts";
import {
  type DCSettings,
  DCSettingsOverrides,
  PAPER_SETTINGS,
  resolveSettings,
  SettingsError,
} from "../../lib/dc_settings.ts";
import {
  adversarialSetKey,
  datasetIndices,
  planEvaluation,
  TEST_SET_SIZE,
} from "../../lib/evaluation/engine.ts";
import {
  asRun,
  type EvaluationReport,
  evaluationReport,
  sameTargetAndImages,
} from "../../lib/evaluation/report.ts";
import {
  type DatasetRef,
  evaluationMode,
  type EvaluationSpec,
  type SourceSpec,
  type TargetSpec,
} from "../../lib/evaluation/spec.ts";
import type { EvalRun } from "../../lib/evaluation_checks.ts";
import { BUILTIN_DATASETS } from "../../lib/builtin_datasets.ts";
import { requireBuiltin } from "../builtin_data.ts";
import { encodePng } from "../../lib/image_decode.ts";
import { type ImageShape, imageSize, shapeText } from "../../lib/model.ts";
import type { EvaluationJob } from "../../store/records.ts";
import type { Caller, ServiceDeps } from "../context.ts";
import { ServiceError } from "../errors.ts";
import { resolveAdapter } from "./finetune.ts";
import { findVisible, type JobView, jobView, visibleTo } from "./views.ts";
import { Seed } from "../../lib/seed.ts";
import { config } from "../../config.ts";

const BundleRef = z.string().min(1).max(200);

/** DiffPure's purifier settings (lib/diffpure.ts); the diffusion bundle is the target's/source's. */
const Purifier = z.object({
  classifier: BundleRef.describe("the classifier bundle that labels the purified image"),
  tStar: z.number().int().min(1).max(999).default(100).describe("diffusion depth t*"),
  steps: z.number().int().min(1).max(100).default(5).describe("DDIM steps back to 0 (≤ t*)"),
  seed: Seed.default(0).describe("forward-noise seed"),
}).strict();

/** What a client sends; the service completes it into an EvaluationSpec. */
export const EvaluationRequest = z.object({
  target: z.object({
    bundle: BundleRef.optional().describe("the model scored; default: the embedded default"),
    adapter: z.string().max(200).nullable().optional().describe(
      "LoRA adapter id (a Truth-Maximization checkpoint) of a diffusion target",
    ),
    settings: DCSettingsOverrides.optional(),
    purify: Purifier.optional().describe(
      "DiffPure: the target diffusion bundle purifies (forward to t*, DDIM back), this classifier labels",
    ),
  }).strict(),
  source: z.discriminatedUnion("kind", [
    z.object({
      kind: z.literal("diffpure"),
      bundle: BundleRef.optional().describe("the purifying diffusion bundle"),
      ...Purifier.shape,
    }).strict().describe(
      "adaptive on DiffPure: exact gradients through every reverse step, a fresh forward-noise " +
        "draw per gradient (set the attack's eotIter for EOT)",
    ),
    z.object({
      kind: z.literal("surrogate"),
      bundle: BundleRef.default(config.defaultSurrogate),
    }).strict().describe("transfer: attack a surrogate classifier"),
    z.object({
      kind: z.literal("dc"),
      bundle: BundleRef.optional(),
      timesteps: z.number().int().min(1).max(1000).default(10).describe(
        "pairs per class each gradient averages over: an even grid of timesteps (estimator " +
          "even, at most 100), or a fresh subset of the classifier's own grid pairs (own)",
      ),
      estimator: z.enum(["even", "own"]).optional().describe(
        "even (default): the oracle's own even timesteps and noise; own: the exact white-box " +
          "estimate — the target's own (timestep, noise) grid pairs, error and weights",
      ),
      noise: z.enum(["fixed", "fresh"]).default("fixed").describe(
        "fixed: the same noise every step; fresh: new noise per gradient (EOT)",
      ),
      logitScale: z.number().positive().max(1e6).default(100),
    }).strict().describe("adaptive: attack the diffusion classifier through its own gradients"),
  ]),
  attack: AttackConfigSchema,
  dataset: z.discriminatedUnion("name", [
    z.object({
      name: z.literal("fashion-mnist-test"),
      n: z.number().int().min(1).max(TEST_SET_SIZE),
      seed: Seed.default(0),
    }).strict().describe("a seeded subset of the Fashion-MNIST test split"),
    z.object({
      name: z.literal("cifar10-test"),
      n: z.number().int().min(1).max(BUILTIN_DATASETS["cifar10-test"].size),
      seed: Seed.default(0),
    }).strict().describe(
      "a seeded subset of CIFAR-10's test batch, read from local files (TMDC_CIFAR10_DIR)",
    ),
    z.object({
      name: z.literal("uploaded"),
      id: z.uuid(),
    }).strict().describe("a set stored with POST /v1/datasets"),
  ]),
  shardSize: z.number().int().min(1).max(64).default(8).describe("images per worker unit"),
  private: z.boolean().default(false).describe("visible to its owner and admins only"),
  rescore: z.number().int().min(0).max(20).default(0).describe(
    "re-score the adversarial points with this many fresh noise draws (diffusion targets)",
  ),
}).strict();
export type EvaluationRequest = z.output<typeof EvaluationRequest>;

/** Check and complete a request, plan its shards, store the job and wake workers. */
export async function createEvaluation(
  deps: ServiceDeps,
  owner: string,
  req: EvaluationRequest,
): Promise<JobView> {
  const { store, registry, dispatcher, config } = deps;
  const target = registry.get(req.target.bundle ?? config.defaultBundle, "target");
  const adapter = req.target.adapter
    ? (await resolveAdapter(store, req.target.adapter, target.id, owner)).id
    : null;
  const source = registry.get(req.source.bundle ?? config.defaultBundle, "source");
  const wantSource = req.source.kind === "surrogate" ? "classifier" : "diffusion";
  // A purifier: a diffusion bundle, a classifier taking its images, t* inside its schedule.
  // A DiffPure target uses neither an adapter nor DC settings: refused rather than ignored.
  if (req.target.purify && (req.target.adapter || req.target.settings)) {
    throw new ServiceError(
      422,
      "invalid-settings",
      "a DiffPure target purifies with the base model: adapter and DC settings do not apply",
    );
  }
  for (const p of [req.target.purify, req.source.kind === "diffpure" ? req.source : undefined]) {
    if (!p) continue;
    const diffusion = p === req.target.purify ? target : source;
    if (!isDiffusion(diffusion) || diffusion.manifest.kind !== "diffusion") {
      throw new ServiceError(
        422,
        "wrong-bundle-kind",
        "DiffPure purifies with a pixel-space diffusion bundle (latent bundles have no eps_pred graphs)",
      );
    }
    const clf = registry.classifier(p.classifier, "DiffPure labels with a classifier");
    const [ds, cs] = [bundleShape(diffusion.manifest), bundleShape(clf.manifest)];
    if (
      shapeText(ds) !== shapeText(cs) ||
      clf.manifest.classes.length !== diffusion.manifest.classes.length
    ) {
      throw new ServiceError(
        422,
        "source-target-mismatch",
        `DiffPure: '${clf.id}' (${clf.manifest.classes.length} classes, ${
          shapeText(cs)
        }) does not ` +
          `label '${diffusion.id}''s images (${diffusion.manifest.classes.length} classes, ${
            shapeText(ds)
          })`,
      );
    }
    const T = diffusion.manifest.schedule.num_timesteps;
    if (p.steps > p.tStar || p.tStar >= T) {
      throw new ServiceError(
        422,
        "invalid-settings",
        `DiffPure: need steps ≤ t* < ${T} (got steps ${p.steps}, t* ${p.tStar})`,
      );
    }
  }
  if (wantSource === "classifier" ? !isClassifier(source) : !isDiffusion(source)) {
    throw new ServiceError(
      422,
      "wrong-bundle-kind",
      `source '${source.id}' is a ${source.manifest.kind}; a ${req.source.kind} source needs a ${wantSource}`,
    );
  }
  const K = target.manifest.classes.length;
  const dcBundle = [target, source].find(isDiffusion);
  let settings: DCSettings = PAPER_SETTINGS;
  if (dcBundle) {
    try {
      settings = resolveSettings(dcBundle.manifest, req.target.settings);
    } catch (e) {
      if (!(e instanceof SettingsError)) throw e;
      throw new ServiceError(422, "invalid-settings", `settings: ${e.message}`);
    }
  }
  if (req.source.kind === "dc") {
    const most = req.source.estimator === "own" ? settings.gridSize : 100;
    if (req.source.timesteps > most) {
      throw new ServiceError(
        422,
        "invalid-settings",
        `source timesteps ${req.source.timesteps}: at most ${most} for estimator ${
          req.source.estimator ?? "even"
        }${req.source.estimator === "own" ? " (the classifier's grid)" : ""}`,
      );
    }
  }
  // Quota in model evaluations per image; a DC gradient costs 2·K·T UNet calls.
  const perGradient = req.source.kind === "dc"
    ? 2 * K * req.source.timesteps
    : req.source.kind === "diffpure"
    ? 2 * req.source.steps + 1
    : 1;
  let attack: AttackConfig;
  try {
    attack = validateAttack(
      req.attack,
      K,
      Math.floor(config.limits.maxAttackEvalsPerImage / perGradient),
    );
  } catch (e) {
    if (!(e instanceof AttackConfigError)) throw e;
    throw new ServiceError(422, "invalid-attack", e.message);
  }
  // An adaptive attack on a fine-tuned DC differentiates through the same adapter.
  const sourceSpec: SourceSpec = req.source.kind === "diffpure"
    ? {
      ...req.source,
      bundle: source.id,
      classifier: registry.classifier(req.source.classifier).id,
    }
    : req.source.kind === "dc" && source.id === target.id && adapter
    ? { ...req.source, bundle: source.id, adapter }
    : { ...req.source, bundle: source.id };
  const dataset = await datasetRef(deps, req.dataset, target);
  // The whole request's price: images × the attack's model evaluations per image × each one's
  // cost in UNet calls (a per-image cap alone let n = 10,000 × 2M evaluations through).
  const total = dataset.n * attackCost(attack, K) * perGradient;
  if (total > config.limits.maxEvaluationCalls) {
    throw new ServiceError(
      422,
      "over-quota",
      `this evaluation needs ~${total.toExponential(2)} model calls; one request may spend ${
        config.limits.maxEvaluationCalls.toExponential(2)
      } (fewer images or a cheaper attack)`,
    );
  }
  // The attack is made on the source's input and scored on the target's: they must agree.
  const [ts, ss] = [bundleShape(target.manifest), bundleShape(source.manifest)];
  if (JSON.stringify(ts) !== JSON.stringify(ss) || source.manifest.classes.length !== K) {
    throw new ServiceError(
      422,
      "source-target-mismatch",
      `source '${source.id}' (${source.manifest.classes.length} classes, ${
        shapeText(ss)
      }) and target '${target.id}' (${K} classes, ${shapeText(ts)}) do not take the same images`,
    );
  }
  const purify = req.target.purify;
  const targetSpec: TargetSpec = purify && isDiffusion(target)
    ? {
      kind: "diffpure",
      bundle: target.id,
      ...purify,
      classifier: registry.classifier(purify.classifier).id,
    }
    : isDiffusion(target)
    ? { kind: "dc", bundle: target.id, adapter, settings }
    : { kind: "classifier", bundle: target.id };
  if (req.rescore > 0 && targetSpec.kind === "classifier") {
    throw new ServiceError(
      422,
      "invalid-rescore",
      `rescore draws fresh diffusion noise; the target '${target.id}' is a deterministic classifier`,
    );
  }
  const evaluation: EvaluationSpec = {
    attack,
    source: sourceSpec,
    target: targetSpec,
    dataset,
    // a private evaluation keeps its adversarial examples to itself (its owner's own set)
    setKey: adversarialSetKey({ attack, source: sourceSpec, dataset }) +
      (req.private ? `:${owner}` : ""),
    mode: evaluationMode(sourceSpec, targetSpec),
    ...(req.rescore > 0 ? { rescore: req.rescore } : {}),
  };
  const shards = planEvaluation(evaluation, req.shardSize).map((shard) => ({ shard }));
  // the attack's price, and scoring every image clean and adversarial on a DC target
  const scoring = targetSpec.kind === "dc"
    ? 2 * unetCalls(settings!, K) * dataset.n
    : targetSpec.kind === "diffpure"
    ? 2 * (2 * targetSpec.steps + 1) * dataset.n // forward noise, the DDIM steps, the classifier
    : 2 * dataset.n;
  await admitJob(deps, owner, total + scoring * (1 + req.rescore));
  const job = await store.createJob(
    {
      kind: "evaluate",
      owner,
      ...(req.private ? { private: true } : {}),
      bundle: target.id,
      adapter,
      settings,
      evaluation,
    },
    shards,
  );
  dispatcher.wake();
  return await jobView(store, job);
}

/** The images an evaluation covers: a test subset, or an uploaded set that fits the target. */
async function datasetRef(
  { store }: ServiceDeps,
  ref: EvaluationRequest["dataset"],
  target: ReturnType<ServiceDeps["registry"]["get"]>,
): Promise<DatasetRef> {
  if (ref.name !== "uploaded") {
    // a built-in test split: its classes and image shape must be the target's
    requireBuiltin(ref.name, [target]);
    return ref;
  }
  const ds = await store.getDataset(ref.id);
  if (!ds) throw new ServiceError(404, "unknown-dataset", `no dataset '${ref.id}'`);
  const want = bundleShape(target.manifest);
  const K = target.manifest.classes.length;
  if (
    ds.numClasses !== K || ds.shape.channels !== want.channels ||
    ds.shape.height !== want.height || ds.shape.width !== want.width
  ) {
    throw new ServiceError(
      422,
      "dataset-mismatch",
      `dataset '${ds.id}' (${ds.numClasses} classes, ${ds.shape.channels}×${ds.shape.height}×${ds.shape.width}) does not fit '${target.id}'`,
    );
  }
  return { name: "uploaded", id: ds.id, n: ds.n, sha256: ds.sha256 };
}

/**
 * The shape of an evaluation's images: an uploaded set's own, else the target bundle's (the
 * Fashion-MNIST test split is fed to it as it is); null when neither is known any more.
 */
async function evaluationShape(
  { store, registry }: ServiceDeps,
  spec: EvaluationSpec,
): Promise<ImageShape | null> {
  if (spec.dataset.name === "uploaded") {
    return (await store.getDataset(spec.dataset.id))?.shape ?? null;
  }
  const b = registry.bundles.get(spec.target.bundle) ?? registry.bundles.get(spec.source.bundle);
  return b ? bundleShape(b.manifest) : null;
}

export interface EvaluationView {
  job: JobView;
  report: EvaluationReport;
  /** the dataset indices evaluated, in order (the adversarial PNGs are named by them) */
  images: number[];
}

/** The job and its report so far (sanity checks once every shard is in). */
export async function evaluationView(
  deps: ServiceDeps,
  id: string,
  caller?: Caller,
): Promise<EvaluationView> {
  const job = await findEvaluation(deps, id, caller);
  return {
    job: await jobView(deps.store, job),
    report: await reportOf(deps, job, caller),
    images: datasetIndices(job.evaluation.dataset),
  };
}

async function reportOf(
  deps: ServiceDeps,
  job: EvaluationJob,
  caller?: Caller,
): Promise<EvaluationReport> {
  const { store } = deps;
  const spec = job.evaluation;
  const shards = await store.listEvalResults(job.id);
  const complete = job.status === "done";
  const shape = await evaluationShape(deps, spec);
  let siblings: EvalRun[] | null = null;
  if (complete && shape) {
    siblings = [];
    // the evaluation-group index holds exactly the jobs of this target on these images
    for (const j of await store.listEvaluationGroup(spec)) {
      if (
        j.kind !== "evaluate" || j.id === job.id || j.status !== "done" ||
        !sameTargetAndImages(j.evaluation, spec) || !visibleTo(j, caller)
      ) continue;
      const items = (await store.listEvalResults(j.id)).flatMap((s) => s.items);
      siblings.push(asRun(j.id, j.evaluation, items));
    }
  }
  return evaluationReport(spec, shards, {
    complete,
    siblings,
    imageSize: shape ? imageSize(shape) : 0,
    id: job.id,
  });
}

function findEvaluation(
  { store }: ServiceDeps,
  id: string,
  caller?: Caller,
): Promise<EvaluationJob> {
  return findVisible(store, id, caller, "evaluate", "unknown-evaluation", "evaluation");
}

/** One stored adversarial example (`{index}.png`) as a PNG in the evaluation's image shape. */
export async function adversarialPng(
  deps: ServiceDeps,
  id: string,
  file: string,
  caller?: Caller,
): Promise<Uint8Array> {
  const job = await findEvaluation(deps, id, caller);
  const m = /^(\d{1,5})\.png$/.exec(file);
  const rec = m ? await deps.store.getAdversarial(job.evaluation.setKey, Number(m[1])) : null;
  const bytes = rec && await deps.store.getBlob(rec.blob);
  if (!bytes) {
    throw new ServiceError(404, "unknown-adversarial", `no adversarial example '${file}' (yet)`);
  }
  const shape = await evaluationShape(deps, job.evaluation);
  if (!shape || imageSize(shape) * 4 !== bytes.byteLength) {
    throw new ServiceError(
      404,
      "unknown-adversarial",
      `the image shape of '${file}' is no longer known (its target bundle or set is gone)`,
    );
  }
  const pixels = new Float32Array(bytes.slice().buffer);
  return await encodePng(pixels, shape);
}
