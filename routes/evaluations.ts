/**
 * POST /v1/evaluations: an attack evaluation as a job sharded over workers.
 * GET  /v1/evaluations/{id}: the job and its report (so far).
 * GET  /v1/evaluations/{id}/adversarial/{index}.png: a stored adversarial example.
 *
 * Adversarial examples are generated once per (attack, source, subset) and reused for every
 * target: a second evaluation that differs only in its target scores the stored images.
 */
import { Hono } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import { type AttackConfig, AttackConfigError, validateAttack } from "../lib/attacks/registry.ts";
import {
  checkSettings as validateSettings,
  type DCSettings,
  PAPER_SETTINGS,
} from "../lib/dc_settings.ts";
import { seededSubset } from "../lib/fashion_mnist.ts";
import { encodePng } from "../lib/image_decode.ts";
import { wilson } from "../lib/stats.ts";
import { sha256hex, type Store } from "../store/kv_store.ts";
import type { EvalItem, EvaluationJob, EvaluationSpec, Job } from "../store/records.ts";
import { type EvalRun, evaluationChecks, freshNoiseAccuracy } from "../lib/evaluation_checks.ts";
import type { AuthEnv } from "./auth.ts";
import { defaultSettings } from "./classify.ts";
import { jobView } from "./jobs.ts";
import { problem } from "./problem.ts";
import { jsonBody } from "./upload.ts";
import { resolveAdapter } from "./finetunes.ts";
import type { Registry } from "./registry.ts";
import { DCSettingsInput } from "./schemas.ts";
import type { Dispatcher } from "./workers.ts";

const TEST_SET_SIZE = 10000;

export const EvaluationRequest = z.object({
  target: z.object({
    bundle: z.string().min(1).max(200).optional(),
    adapter: z.string().max(200).nullable().optional(),
    settings: DCSettingsInput.optional(),
  }).strict(),
  source: z.discriminatedUnion("kind", [
    z.object({
      kind: z.literal("surrogate"),
      bundle: z.string().min(1).max(200).default("resnet14-fmnist"),
    }).strict(),
    z.object({
      kind: z.literal("dc"),
      bundle: z.string().min(1).max(200).optional(),
      timesteps: z.number().int().min(1).max(100).default(10),
      noise: z.enum(["fixed", "fresh"]).default("fixed"),
      logitScale: z.number().positive().max(1e6).default(100),
    }).strict(),
  ]),
  attack: z.object({
    attack: z.string().min(1).max(40),
    norm: z.enum(["linf", "l2"]),
    eps: z.number(),
    steps: z.number().int().optional(),
    alpha: z.number().positive().optional(),
    restarts: z.number().int().optional(),
    randomStart: z.boolean().optional(),
    eotIter: z.number().int().optional(),
    version: z.enum(["standard", "plus", "rand"]).optional(),
    nTargetClasses: z.number().int().optional(),
    queries: z.number().int().min(1).max(100_000).optional(),
    seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
  }).strict(),
  dataset: z.discriminatedUnion("name", [
    z.object({
      name: z.literal("fashion-mnist-test"),
      n: z.number().int().min(1).max(TEST_SET_SIZE),
      seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
    }).strict(),
    z.object({
      name: z.literal("uploaded"),
      id: z.string().uuid(),
    }).strict(),
  ]),
  shardSize: z.number().int().min(1).max(64).default(8),
  /** spec §7: re-score the adversarial points with this many fresh noise draws (DC targets) */
  rescore: z.number().int().min(0).max(20).default(0),
}).strict();

export function evaluationRoutes(
  deps: { store: Store; registry: Registry; dispatcher: Dispatcher; config: Config },
) {
  const { store, registry, dispatcher, config } = deps;
  const app = new Hono<AuthEnv>();

  app.post("/", async (c) => {
    const req = await jsonBody(c, EvaluationRequest, "the evaluation request");

    const resolve = (ref: string, role: string) => {
      const b = registry.resolve(ref);
      if (!b) {
        throw problem(404, `unknown ${role} bundle '${ref}'`, {
          code: "unknown-bundle",
          available: [...registry.bundles.keys()],
        });
      }
      return b;
    };
    const target = resolve(req.target.bundle ?? config.defaultBundle, "target");
    const adapter = req.target.adapter
      ? (await resolveAdapter(store, req.target.adapter, target.id)).id
      : null;
    const source = resolve(req.source.bundle ?? config.defaultBundle, "source");
    const wantSource = req.source.kind === "surrogate" ? "classifier" : "diffusion";
    if (source.manifest.kind !== wantSource) {
      throw problem(
        422,
        `source '${source.id}' is a ${source.manifest.kind}; a ${req.source.kind} source needs a ${wantSource}`,
        {
          code: "wrong-bundle-kind",
        },
      );
    }
    const dcBundle = [target, source].find((b) => b.manifest.kind === "diffusion");
    const settings: DCSettings = dcBundle
      ? {
        ...defaultSettings(dcBundle.manifest as DiffusionManifest),
        ...req.target.settings,
      } as DCSettings
      : PAPER_SETTINGS;
    const K = target.manifest.classes.length;
    if (dcBundle) {
      try {
        validateSettings(
          settings,
          K,
          (dcBundle.manifest as DiffusionManifest).schedule.num_timesteps,
        );
      } catch (e) {
        throw problem(422, `settings: ${(e as Error).message}`, { code: "invalid-settings" });
      }
    }
    // Quota in model evaluations per image; a DC gradient costs 2·K·T UNet calls.
    const perGradient = req.source.kind === "dc" ? 2 * K * req.source.timesteps : 1;
    let attack: AttackConfig;
    try {
      attack = validateAttack(
        req.attack as AttackConfig,
        K,
        Math.floor(config.limits.maxAttackEvalsPerImage / perGradient),
      );
    } catch (e) {
      if (!(e instanceof AttackConfigError)) throw e;
      throw problem(422, e.message, { code: "invalid-attack" });
    }
    // An adaptive attack on a fine-tuned DC differentiates through the same adapter.
    const sourceSpec = req.source.kind === "dc" && source.id === target.id && adapter
      ? { ...req.source, bundle: source.id, adapter }
      : { ...req.source, bundle: source.id };
    let dataset: EvaluationSpec["dataset"];
    if (req.dataset.name === "uploaded") {
      const ds = await store.getDataset(req.dataset.id);
      if (!ds) {
        throw problem(404, `no dataset '${req.dataset.id}'`, { code: "unknown-dataset" });
      }
      const img = target.manifest.image;
      if (
        ds.numClasses !== K || ds.shape.channels !== img.channels ||
        ds.shape.height !== img.height || ds.shape.width !== img.width
      ) {
        throw problem(
          422,
          `dataset '${ds.id}' (${ds.numClasses} classes, ${ds.shape.channels}×${ds.shape.height}×${ds.shape.width}) does not fit '${target.id}'`,
          { code: "dataset-mismatch" },
        );
      }
      dataset = { name: "uploaded", id: ds.id, n: ds.n, sha256: ds.sha256 };
    } else {
      dataset = req.dataset;
    }
    const setKey = sha256hex(JSON.stringify({ attack, source: sourceSpec, dataset }));
    const targetKind = target.manifest.kind === "diffusion" ? "dc" as const : "classifier" as const;
    const mode = req.source.kind === "dc" && targetKind === "dc" && source.id === target.id
      ? "adaptive" as const
      : req.source.kind === "surrogate" && targetKind === "classifier" && source.id === target.id
      ? "white-box" as const
      : "transfer" as const;
    if (req.rescore > 0 && targetKind !== "dc") {
      throw problem(
        422,
        `rescore draws fresh diffusion noise; the target '${target.id}' is a deterministic classifier`,
        { code: "invalid-rescore" },
      );
    }
    const evaluation: EvaluationSpec = {
      attack: attack as EvaluationSpec["attack"],
      source: sourceSpec,
      target: targetKind === "dc"
        ? { kind: "dc", bundle: target.id, adapter, settings }
        : { kind: "classifier", bundle: target.id },
      dataset,
      setKey,
      mode,
      ...(req.rescore > 0 ? { rescore: req.rescore } : {}),
    };
    const indices = dataset.name === "uploaded"
      ? Array.from({ length: dataset.n }, (_, i) => i)
      : Array.from(seededSubset(TEST_SET_SIZE, dataset.n, dataset.seed));
    const shards: { shard: number[] }[] = [];
    for (let i = 0; i < indices.length; i += req.shardSize) {
      shards.push({ shard: indices.slice(i, i + req.shardSize) });
    }
    const job = await store.createJob(
      {
        kind: "evaluate",
        owner: c.get("apiKey").id,
        bundle: target.id,
        adapter,
        settings,
        evaluation,
      },
      shards,
    );
    dispatcher.wake();
    return c.json({ job: await jobView(store, job) }, 202, {
      Location: `/v1/evaluations/${job.id}`,
    });
  });

  const getEvaluation = async (id: string): Promise<EvaluationJob> => {
    const job = /^[0-9a-f-]{36}$/.test(id) ? await store.getJob(id) : null;
    if (!job || job.kind !== "evaluate") {
      throw problem(404, `no evaluation '${id}'`, { code: "unknown-evaluation" });
    }
    return job;
  };

  app.get("/:id", async (c) => {
    const job = await getEvaluation(c.req.param("id"));
    return c.json({ job: await jobView(store, job), report: await evaluationReport(store, job) });
  });

  app.get("/:id/adversarial/:file", async (c) => {
    const job = await getEvaluation(c.req.param("id"));
    const m = /^(\d{1,5})\.png$/.exec(c.req.param("file"));
    const rec = m ? await store.getAdversarial(job.evaluation.setKey, Number(m[1])) : null;
    const bytes = rec && await store.getBlob(rec.blob);
    if (!bytes) {
      throw problem(404, `no adversarial example '${c.req.param("file")}' (yet)`, {
        code: "unknown-adversarial",
      });
    }
    const png = await encodePng(
      new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
      {
        channels: 1,
        height: 28,
        width: 28,
      },
    );
    return c.body(png.slice().buffer, 200, { "content-type": "image/png" });
  });
  return app;
}

/** Aggregate the finished shards: accuracy with Wilson intervals, per-attack cumulative accuracy. */
export async function evaluationReport(store: Store, job: EvaluationJob) {
  const shards = await store.listEvalResults(job.id);
  const items = shards.flatMap((s) => s.items);
  const n = items.length;
  const clean = items.filter((it) => it.cleanPred === it.label).length;
  const robust = items.filter((it) => it.cleanPred === it.label && it.advPred === it.label).length;
  const perAttack = new Map<string, { robust: number; total: number }>();
  for (const s of shards) {
    for (const p of s.perAttack ?? []) {
      const e = perAttack.get(p.attack) ?? { robust: 0, total: 0 };
      perAttack.set(p.attack, { robust: e.robust + p.robust, total: e.total + p.total });
    }
  }
  const ev = job.evaluation;
  return {
    mode: ev.mode,
    n,
    of: ev.dataset.n,
    complete: job.status === "done",
    clean_accuracy: n ? clean / n : null,
    clean_ci95: wilson(clean, n),
    robust_accuracy: n ? robust / n : null,
    ci95: wilson(robust, n),
    robust_definition:
      "target correct on the clean image and on its adversarial example (per-example worst case)",
    attack: ev.attack,
    source: ev.source,
    target: {
      ...ev.target,
      adapter: job.adapter,
      settings: ev.target.kind === "dc" ? job.settings : undefined,
    },
    dataset: ev.dataset,
    per_attack_on_source: perAttack.size
      ? [...perAttack].map(([attack, v]) => ({
        attack,
        robust_accuracy_on_source: v.robust / v.total,
        n: v.total,
      }))
      : null,
    rescored_with_fresh_noise: ev.rescore
      ? {
        draws: ev.rescore,
        seeds: Array.from({ length: ev.rescore }, (_, r) => job.settings.seed + r + 1),
        robust_accuracy_per_draw: freshNoiseAccuracy(items),
      }
      : null,
    sanity: await sanityChecks(store, job, items),
    adversarial_set: ev.setKey,
    reused_adversarial_examples: shards.length > 0 && shards.every((s) => s.reusedAdversarial),
    worker_seconds: shards.reduce((a, s) => a + s.computeMs, 0) / 1000,
  };
}

/** Spec §7 checks against this evaluation's finished siblings (same target, adapter, images). */
async function sanityChecks(store: Store, job: EvaluationJob, items: EvalItem[]) {
  if (job.status !== "done" || items.length === 0) return null;
  const ev = job.evaluation;
  const same = (j: Job): j is EvaluationJob =>
    j.kind === "evaluate" && j.id !== job.id && j.status === "done" && j.bundle === job.bundle &&
    j.adapter === job.adapter &&
    JSON.stringify(j.evaluation.dataset) === JSON.stringify(ev.dataset);
  const siblings: EvalRun[] = [];
  for (const j of (await store.listJobs("evaluate")).filter(same)) {
    const its = (await store.listEvalResults(j.id)).flatMap((s) => s.items);
    siblings.push({
      id: j.id,
      mode: j.evaluation.mode,
      attack: asAttack(j.evaluation),
      items: its,
    });
  }
  return evaluationChecks(
    { id: job.id, mode: ev.mode, attack: asAttack(ev), items },
    siblings,
    28 * 28,
    ev.target.kind === "dc",
  );
}

function asAttack(ev: EvaluationSpec): EvalRun["attack"] {
  const a = ev.attack as Record<string, unknown>;
  return {
    attack: String(a.attack),
    norm: String(a.norm),
    eps: Number(a.eps),
    steps: a.steps as number | undefined,
    version: a.version as string | undefined,
  };
}
