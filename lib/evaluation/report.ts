/**
 * The evaluation report: one shape for the service's evaluation job, the CLI's `evaluate` and
 * every cell of `bench table`. Robust = right on the clean image and on its adversarial example
 * (per-example worst case); accuracies carry 95% Wilson intervals; sanity checks (spec §7)
 * compare the run with finished siblings (same target, same images).
 */
import {
  type EvalRun,
  evaluationChecks,
  freshNoiseAccuracy,
  type ReportCheck,
} from "../evaluation_checks.ts";
import { wilson } from "../stats.ts";
import type { EvalItem, EvaluationSpec, PerAttack } from "./spec.ts";

/** What one shard (or a whole in-process run) hands the report. */
export interface ShardOutcome {
  items: EvalItem[];
  perAttack?: PerAttack[];
  reusedAdversarial: boolean;
  computeMs: number;
}

export const ROBUST_DEFINITION =
  "target correct on the clean image and on its adversarial example (per-example worst case)";

export interface ReportOptions {
  /** every shard is in */
  complete: boolean;
  /** finished evaluations of the same target on the same images; null: checks not computed */
  siblings: EvalRun[] | null;
  /** C·H·W of the images (the unbounded-budget check's L2 radius) */
  imageSize: number;
  /** the run's id, as siblings will name it */
  id: string;
}

export function evaluationReport(
  spec: EvaluationSpec,
  shards: ShardOutcome[],
  opts: ReportOptions,
) {
  const items = shards.flatMap((s) => s.items).sort((a, b) => a.index - b.index);
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
  // a DC draws diffusion noise, DiffPure forward noise: both are re-scored with fresh draws
  const stochastic = spec.target.kind !== "classifier";
  // stochastic targets are re-scored under fresh draws: DC noise seeds, DiffPure forward draws
  const t = spec.target;
  const draws = Array.from({ length: spec.rescore ?? 0 }, (_, r) => r + 1);
  const freshSeeds = t.kind === "dc"
    ? draws.map((d) => t.settings.seed + (t.settings.seedMode === "secret" ? 1 : 0) + d)
    : t.kind === "diffpure"
    ? draws
    : null;
  return {
    mode: spec.mode,
    n,
    of: spec.dataset.n,
    complete: opts.complete,
    clean_accuracy: n ? clean / n : null,
    clean_ci95: wilson(clean, n),
    robust_accuracy: n ? robust / n : null,
    ci95: wilson(robust, n),
    robust_definition: ROBUST_DEFINITION,
    attack: spec.attack,
    source: spec.source,
    target: spec.target,
    dataset: spec.dataset,
    per_attack_on_source: perAttack.size
      ? [...perAttack].map(([attack, v]) => ({
        attack,
        robust_accuracy_on_source: v.robust / v.total,
        n: v.total,
      }))
      : null,
    rescored_with_fresh_noise: spec.rescore && freshSeeds
      ? {
        draws: spec.rescore,
        // DC: noise seeds; DiffPure: forward-noise draw numbers under the target's seed
        seeds: freshSeeds,
        robust_accuracy_per_draw: freshNoiseAccuracy(items),
      }
      : null,
    sanity: opts.complete && n > 0 && opts.siblings
      ? evaluationChecks(asRun(opts.id, spec, items), opts.siblings, opts.imageSize, stochastic)
      : null as ReportCheck[] | null,
    adversarial_set: spec.setKey,
    reused_adversarial_examples: shards.length > 0 && shards.every((s) => s.reusedAdversarial),
    worker_seconds: shards.reduce((a, s) => a + s.computeMs, 0) / 1000,
  };
}
export type EvaluationReport = ReturnType<typeof evaluationReport>;

/** A finished evaluation as a sibling for another's sanity checks. */
export function asRun(id: string, spec: EvaluationSpec, items: EvalItem[]): EvalRun {
  return {
    id,
    mode: spec.mode,
    attack: {
      attack: spec.attack.attack,
      norm: spec.attack.norm,
      eps: spec.attack.eps,
      steps: spec.attack.steps,
      version: spec.attack.version,
    },
    items,
  };
}

/** Siblings are evaluations of the same target (bundle, adapter) on the same images. */
export function sameTargetAndImages(a: EvaluationSpec, b: EvaluationSpec): boolean {
  return targetAndImagesKey(a) === targetAndImagesKey(b);
}

/**
 * What makes evaluations comparable per image (the same target on the same images): the
 * store indexes evaluations by it, so a report finds its siblings without a scan.
 */
export function targetAndImagesKey(s: EvaluationSpec): string {
  const adapter = s.target.kind === "dc" ? s.target.adapter : null;
  // a purifier is its diffusion bundle, classifier and depth together
  const purifier = s.target.kind === "diffpure"
    ? `${s.target.classifier}@${s.target.tStar}/${s.target.steps}`
    : null;
  return JSON.stringify([s.target.bundle, adapter, purifier, s.dataset]);
}
