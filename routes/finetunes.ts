/**
 * POST /v1/finetunes (a Truth-Maximization job on one worker), GET /v1/finetunes/{id}
 * (progress, checkpoints, the best adapter), GET /v1/adapters/{id}.
 */
import { Hono } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { bestCheckpoint } from "../lib/finetune.ts";
import { PAPER_TM, paperCheckpoints } from "../lib/truth_max.ts";
import { type AttackConfig, AttackConfigError, validateAttack } from "../lib/attacks/registry.ts";
import type { Store } from "../store/kv_store.ts";
import type { AdapterRecord, FinetuneJob, FinetuneJobSpec } from "../store/records.ts";
import type { AuthEnv } from "./auth.ts";
import { defaultSettings } from "./classify.ts";
import { jobView } from "./jobs.ts";
import { problem } from "./problem.ts";
import { jsonBody } from "./upload.ts";
import type { Registry } from "./registry.ts";
import type { Dispatcher } from "./workers.ts";

const VALIDATION_SPLIT_SIZE = 5000;

export const FinetuneRequest = z.object({
  bundle: z.string().min(1).max(200).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
  hyper: z.object({
    lr: z.number().positive().max(1).default(PAPER_TM.lr),
    beta1: z.number().min(0).lt(1).default(PAPER_TM.beta1),
    beta2: z.number().min(0).lt(1).default(PAPER_TM.beta2),
    weightDecay: z.number().min(0).max(1).default(PAPER_TM.weightDecay),
    adamEps: z.number().positive().max(1).default(PAPER_TM.adamEps),
    warmupSteps: z.number().int().min(0).max(1_000_000).default(PAPER_TM.warmupSteps),
    batchSize: z.number().int().min(1).max(256).default(PAPER_TM.batchSize),
    steps: z.number().int().min(1).max(100_000).default(PAPER_TM.steps),
  }).strict().default({} as never),
  /** the paper: AutoAttack plus Linf 0.05 on the surrogate; null trains on clean images */
  attack: z.object({
    attack: z.string().min(1).max(40),
    norm: z.enum(["linf", "l2"]),
    eps: z.number(),
    steps: z.number().int().optional(),
    restarts: z.number().int().optional(),
    version: z.enum(["standard", "plus", "rand"]).optional(),
    seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
  }).strict().nullable().default({
    attack: "autoattack",
    norm: "linf",
    eps: 0.05,
    version: "plus",
    seed: 0,
  }),
  source: z.object({
    kind: z.literal("surrogate"),
    bundle: z.string().min(1).max(200).default("resnet14-fmnist"),
  }).strict().default({ kind: "surrogate", bundle: "resnet14-fmnist" }),
  /** steps at which to checkpoint; default: the paper's (every 100 to 500, then every 1,000) */
  checkpoints: z.array(z.number().int().positive()).min(1).max(200).optional(),
  /** 0: attack each batch online; P: attack P training images once and draw batches from them */
  pool: z.number().int().min(0).max(55_000).default(0),
  validation: z.object({
    n: z.number().int().min(1).max(512).default(64),
    seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
  }).strict().default({ n: 64, seed: 0 }),
}).strict();

/** An adapter id that exists and belongs to `bundle`, or a problem+json 404/422. */
export async function resolveAdapter(
  store: Store,
  id: string,
  bundle: string,
): Promise<AdapterRecord> {
  const rec = /^[0-9a-f-]{36}$/.test(id) ? await store.getAdapter(id) : null;
  if (!rec) throw problem(404, `unknown adapter '${id}'`, { code: "unknown-adapter" });
  if (rec.bundle !== bundle) {
    throw problem(422, `adapter '${id}' was trained on '${rec.bundle}', not '${bundle}'`, {
      code: "adapter-bundle-mismatch",
    });
  }
  return rec;
}

export function finetuneRoutes(
  deps: { store: Store; registry: Registry; dispatcher: Dispatcher; config: Config },
) {
  const { store, registry, dispatcher, config } = deps;
  const app = new Hono<AuthEnv>();

  app.post("/finetunes", async (c) => {
    const req = await jsonBody(c, FinetuneRequest, "the fine-tune request");
    const bundle = registry.resolve(req.bundle ?? config.defaultBundle);
    if (!bundle || bundle.manifest.kind !== "diffusion") {
      throw problem(
        bundle ? 422 : 404,
        bundle
          ? `bundle '${bundle.id}' is a ${bundle.manifest.kind}; Truth Maximization needs a diffusion bundle`
          : `unknown bundle '${req.bundle}'`,
        { code: bundle ? "wrong-bundle-kind" : "unknown-bundle" },
      );
    }
    const source = registry.resolve(req.source.bundle);
    if (!source || source.manifest.kind !== "classifier") {
      throw problem(source ? 422 : 404, `the source must be a classifier bundle`, {
        code: source ? "wrong-bundle-kind" : "unknown-bundle",
      });
    }
    const manifest = bundle.manifest as DiffusionManifest;
    let attack: AttackConfig | null = null;
    if (req.attack) {
      try {
        // the attack runs on every batch: its quota is per training image
        attack = validateAttack(
          req.attack as AttackConfig,
          manifest.classes.length,
          config.limits.maxAttackEvalsPerImage,
        );
      } catch (e) {
        if (!(e instanceof AttackConfigError)) throw e;
        throw problem(422, e.message, { code: "invalid-attack" });
      }
    }
    const { steps } = req.hyper;
    const checkpoints = [...new Set(req.checkpoints ?? paperCheckpoints(steps))].sort((a, b) =>
      a - b
    );
    if (checkpoints.some((s) => s > steps) || !checkpoints.includes(steps)) {
      throw problem(
        422,
        `checkpoints must be ≤ steps (${steps}) and include the last step`,
        { code: "invalid-checkpoints" },
      );
    }
    if (req.validation.n > VALIDATION_SPLIT_SIZE) {
      throw problem(422, "validation.n exceeds the validation split", { code: "invalid-request" });
    }
    const finetune: FinetuneJobSpec = {
      hyper: req.hyper,
      seed: req.seed,
      attack: attack as FinetuneJobSpec["attack"],
      source: { kind: "surrogate", bundle: source.id },
      checkpoints,
      validation: req.validation,
      pool: req.pool,
    };
    const settings: DCSettings = defaultSettings(manifest);
    const job = await store.createJob({
      kind: "finetune",
      owner: c.get("apiKey").id,
      bundle: bundle.id,
      adapter: null,
      settings,
      finetune,
    }, [{ shard: [] }]);
    dispatcher.wake();
    return c.json({ job: await jobView(store, job) }, 202, {
      Location: `/v1/finetunes/${job.id}`,
    });
  });

  const getFinetune = async (id: string): Promise<FinetuneJob> => {
    const job = /^[0-9a-f-]{36}$/.test(id) ? await store.getJob(id) : null;
    if (!job || job.kind !== "finetune") {
      throw problem(404, `no fine-tune '${id}'`, { code: "unknown-finetune" });
    }
    return job;
  };

  app.get("/finetunes/:id", async (c) => {
    const job = await getFinetune(c.req.param("id"));
    const [unit] = await store.listUnits(job.id);
    const cps = await store.listCheckpoints(job.id);
    const result = await store.getFinetuneResult(job.id);
    const best = result?.best ?? bestCheckpoint(cps)?.id ?? null;
    return c.json({
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
    });
  });

  app.get("/adapters/:id", async (c) => {
    const id = c.req.param("id");
    const rec = /^[0-9a-f-]{36}$/.test(id) ? await store.getAdapter(id) : null;
    if (!rec) throw problem(404, `unknown adapter '${id}'`, { code: "unknown-adapter" });
    const { stateBlob: _s, owner: _o, ...view } = rec;
    return c.json(view);
  });
  return app;
}
