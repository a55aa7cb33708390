/**
 * Truth-Maximization fine-tunes: a request (defaults: the paper's) checked against the bundles
 * and the attack quota, stored as a one-unit job for one worker; its progress, checkpoints and
 * best adapter; the adapters it stored, which classify and evaluation requests reference by id.
 */
import { admitJob } from "../quota.ts";
import { z } from "zod";
import { type AttackConfig, AttackConfigSchema } from "../../lib/attacks/config.ts";
import { AttackConfigError, validateAttack } from "../../lib/attacks/registry.ts";
import { defaultSettings } from "../../lib/dc_settings.ts";
import { unetCalls } from "../../lib/diffusion_classifier.ts";
import { bestCheckpoint } from "../../lib/finetune.ts";
import { type FinetuneJobSpec, TMHyperSchema } from "../../lib/finetune_spec.ts";
import { PAPER_TM, paperCheckpoints } from "../../lib/truth_max.ts";
import type { Store } from "../../store/kv_store.ts";
import type { AdapterRecord, CheckpointScore } from "../../store/records.ts";
import type { Caller, ServiceDeps } from "../context.ts";
import { ServiceError } from "../errors.ts";
import { findVisible, type JobView, jobView, paged, UUID } from "./views.ts";
import { Seed } from "../../lib/seed.ts";
import { config } from "../../config.ts";
import { requireBuiltin } from "../builtin_data.ts";

/** The training images not in the validation split's 5,000 (lib/fashion_mnist_split.json). */
const h = TMHyperSchema.shape;

/** What a client sends: every field but the model has the paper's default. */
export const FinetuneRequest = z.object({
  bundle: z.string().min(1).max(200).optional().describe(
    "the diffusion bundle to fine-tune; default: the embedded default",
  ),
  seed: Seed.default(0),
  hyper: z.object({
    lr: h.lr.default(PAPER_TM.lr),
    beta1: h.beta1.default(PAPER_TM.beta1),
    beta2: h.beta2.default(PAPER_TM.beta2),
    weightDecay: h.weightDecay.default(PAPER_TM.weightDecay),
    adamEps: h.adamEps.default(PAPER_TM.adamEps),
    warmupSteps: h.warmupSteps.default(PAPER_TM.warmupSteps),
    batchSize: h.batchSize.default(PAPER_TM.batchSize),
    steps: h.steps.default(PAPER_TM.steps),
  }).strict().prefault({}).describe("AdamW and schedule; default: the paper's"),
  attack: AttackConfigSchema.nullable().default({
    attack: "autoattack",
    norm: "linf",
    eps: 0.05,
    version: "plus",
    seed: 0,
  }).describe(
    "the attack on the source per batch (the paper: AutoAttack plus, Linf 0.05); null trains on clean images",
  ),
  source: z.object({
    kind: z.literal("surrogate"),
    bundle: z.string().min(1).max(200).default(config.defaultSurrogate),
  }).strict().default({ kind: "surrogate", bundle: config.defaultSurrogate }),
  checkpoints: z.array(z.number().int().positive()).min(1).max(200).optional().describe(
    "steps at which to checkpoint; default: the paper's (every 100 to 500, then every 1,000)",
  ),
  pool: z.number().int().min(0).max(55_000).default(0).describe(
    "0: attack each batch online; P: attack P training images once and draw batches from them",
  ),
  validation: z.object({
    // at most 512 of the validation split's 5,000 images: each is scored at every checkpoint
    n: z.number().int().min(1).max(512).default(64),
    seed: Seed.default(0),
  }).strict().prefault({}).describe("the held-out subset every checkpoint is scored on"),
  data: z.enum(["fashion-mnist", "cifar10"]).default("fashion-mnist").describe(
    "training and validation images: Fashion-MNIST's splits, or CIFAR-10's training batches " +
      "from local files (TMDC_CIFAR10_DIR; the last 5,000 are validation)",
  ),
  private: z.boolean().default(false).describe("visible to its owner and admins only"),
}).strict();
export type FinetuneRequest = z.output<typeof FinetuneRequest>;

/** Check a fine-tune against the bundles and the quota, store it as one unit, wake workers. */
export async function createFinetune(
  deps: ServiceDeps,
  owner: string,
  req: FinetuneRequest,
): Promise<JobView> {
  const { store, registry, dispatcher, config } = deps;
  const bundle = registry.diffusion(
    req.bundle ?? config.defaultBundle,
    "Truth Maximization needs a diffusion bundle",
  );
  const source = registry.classifier(req.source.bundle, "the source must be a classifier bundle");
  // the fine-tune's images must fit both models (the test split stands for the data's shape)
  requireBuiltin(req.data === "cifar10" ? "cifar10-test" : "fashion-mnist-test", [bundle, source]);
  // the training split's size: Fashion-MNIST's 55,000, CIFAR-10's 45,000 (50,000 less validation)
  const trainSize = req.data === "cifar10" ? 45_000 : 55_000;
  if (req.pool > trainSize) {
    throw new ServiceError(
      422,
      "invalid-settings",
      `pool ${req.pool} is larger than ${req.data}'s training split (${trainSize} images)`,
    );
  }
  let attack: AttackConfig | null = null;
  if (req.attack) {
    try {
      // the attack runs on every batch: its quota is per training image
      attack = validateAttack(
        req.attack,
        bundle.manifest.classes.length,
        config.limits.maxAttackEvalsPerImage,
      );
    } catch (e) {
      if (!(e instanceof AttackConfigError)) throw e;
      throw new ServiceError(422, "invalid-attack", e.message);
    }
  }
  const { steps } = req.hyper;
  const checkpoints = [...new Set(req.checkpoints ?? paperCheckpoints(steps))].sort((a, b) =>
    a - b
  );
  if (checkpoints.some((s) => s > steps) || !checkpoints.includes(steps)) {
    throw new ServiceError(
      422,
      "invalid-checkpoints",
      `checkpoints must be ≤ steps (${steps}) and include the last step`,
    );
  }
  const finetune: FinetuneJobSpec = {
    hyper: req.hyper,
    seed: req.seed,
    attack,
    source: { kind: "surrogate", bundle: source.id },
    checkpoints,
    validation: req.validation,
    pool: req.pool,
    ...(req.data === "cifar10" ? { data: "cifar10" as const } : {}),
  };
  // each step: the batch's loss and LoRA gradient (the surrogate's attack is not UNet work);
  // each checkpoint: the validation images classified clean and adversarial by the DC
  const perImage = unetCalls(defaultSettings(bundle.manifest), bundle.manifest.classes.length);
  await admitJob(
    deps,
    owner,
    2 * req.hyper.steps * req.hyper.batchSize +
      checkpoints.length * 2 * req.validation.n * perImage,
  );
  const job = await store.createJob({
    kind: "finetune",
    owner,
    ...(req.private ? { private: true } : {}),
    bundle: bundle.id,
    adapter: null,
    settings: defaultSettings(bundle.manifest),
    finetune,
  }, [{ shard: [] }]);
  dispatcher.wake();
  return await jobView(store, job);
}

export interface FinetuneView {
  job: JobView;
  /** optimizer steps taken so far */
  step: number;
  attempts: number;
  checkpoints: {
    step: number;
    adapter: string;
    loss: number;
    validation: CheckpointScore;
    best: boolean;
  }[];
  best_adapter: string | null;
  /** the worker reported the run finished (the best adapter is final) */
  final: boolean;
}

export async function finetuneView(
  store: Store,
  id: string,
  caller?: Caller,
): Promise<FinetuneView> {
  const job = await findVisible(store, id, caller, "finetune", "unknown-finetune", "fine-tune");
  const [unit] = await store.listUnits(job.id);
  const cps = await store.listCheckpoints(job.id);
  const result = await store.getFinetuneResult(job.id);
  const best = result?.best ?? bestCheckpoint(cps)?.id ?? null;
  return {
    job: await jobView(store, job),
    step: unit?.status === "done" ? job.finetune.hyper.steps : unit?.progress?.calls ?? 0,
    attempts: unit?.attempts ?? 0,
    checkpoints: cps.map((a) => ({
      step: a.step,
      adapter: a.id,
      loss: a.loss,
      validation: a.validation,
      best: a.id === best,
    })),
    best_adapter: best,
    final: result !== null,
  };
}

/** An adapter as shown: how it was trained and scored, without its tensors or owner. */
export type AdapterView = Omit<AdapterRecord, "stateBlob" | "owner">;

async function findAdapter(store: Store, id: string, caller?: Caller): Promise<AdapterRecord> {
  const rec = UUID.test(id) ? await store.getAdapter(id) : null;
  if (!rec || !adapterVisible(rec, caller)) {
    throw new ServiceError(404, "unknown-adapter", `unknown adapter '${id}'`);
  }
  return rec;
}

/** A private fine-tune's adapters are its owner's (and admins') only. */
function adapterVisible(rec: AdapterRecord, caller?: Caller): boolean {
  return !rec.private || !caller || caller.admin || caller.id === rec.owner;
}

export async function adapterView(store: Store, id: string, caller?: Caller): Promise<AdapterView> {
  return toAdapterView(await findAdapter(store, id, caller));
}

function toAdapterView(rec: AdapterRecord): AdapterView {
  const { stateBlob: _s, owner: _o, ...view } = rec;
  return view;
}

/** A page of every stored adapter (each checkpoint of each fine-tune), by id. */
export async function listAdapterPage(
  store: Store,
  limit: number,
  cursor?: string,
  caller?: Caller,
) {
  const page = await paged(() => store.listAdaptersPage(limit, cursor));
  const shown = page.adapters.filter((a) => adapterVisible(a, caller));
  return { adapters: shown.map(toAdapterView), next: page.next };
}

/** An adapter id that exists and was trained on `bundle`, or a 404/422. */
export async function resolveAdapter(
  store: Store,
  id: string,
  bundle: string,
  owner: string,
): Promise<AdapterRecord> {
  const rec = await findAdapter(store, id, { id: owner, admin: false });
  if (rec.bundle !== bundle) {
    throw new ServiceError(
      422,
      "adapter-bundle-mismatch",
      `adapter '${id}' was trained on '${rec.bundle}', not '${bundle}'`,
    );
  }
  return rec;
}
