/**
 * The one evaluation engine. The service's worker, the CLI's `evaluate` and `bench table` all
 * run an evaluation the same way:
 *
 *   planEvaluation(spec, shardSize) → shards of dataset indices
 *   runShard(shard, models)         → per-image outcomes (+ the adversarial examples made)
 *   evaluationReport(spec, shards)  → the report (lib/evaluation/report.ts)
 *
 * A shard attacks its images on the source (unless stored adversarial examples are handed in:
 * they are made once per (attack, source, images) and reused for every target), scores the
 * target on the clean and adversarial images, and optionally re-scores the adversarial points
 * under fresh noise draws.
 */
import { createHash } from "node:crypto";
import { lpDistance } from "../attacks/projections.ts";
import { countingOracle } from "../attacks/oracle.ts";
import { attackCost, runAttack } from "../attacks/registry.ts";
import type { DCSettings } from "../dc_settings.ts";
import { gather, type LabelledImages, seededSubset } from "../fashion_mnist.ts";
import { BUILTIN_DATASETS } from "../builtin_datasets.ts";
import type { ImageShape, LoraTensors } from "../model.ts";
import type { ShardOutcome } from "./report.ts";
import type { DatasetRef, EvalItem, EvaluationSpec } from "./spec.ts";
import { type ModelSet, openSource, openTarget } from "./targets.ts";

/** The Fashion-MNIST test split's size: seeded subsets are drawn from it. */
export const TEST_SET_SIZE = 10_000;

/** The dataset indices an evaluation covers, in order. */
export function datasetIndices(dataset: DatasetRef): number[] {
  return dataset.name === "uploaded"
    ? Array.from({ length: dataset.n }, (_, i) => i)
    : Array.from(seededSubset(BUILTIN_DATASETS[dataset.name].size, dataset.n, dataset.seed));
}

/** Cut an evaluation's images into shards of at most `shardSize` (one worker unit each). */
export function planEvaluation(spec: Pick<EvaluationSpec, "dataset">, shardSize: number) {
  const indices = datasetIndices(spec.dataset);
  const shards: number[][] = [];
  for (let i = 0; i < indices.length; i += shardSize) {
    shards.push(indices.slice(i, i + shardSize));
  }
  return shards;
}

/** Adversarial examples are keyed by what made them: the same set serves every target. */
export function adversarialSetKey(
  spec: Pick<EvaluationSpec, "attack" | "source" | "dataset">,
): string {
  return createHash("sha256")
    .update(JSON.stringify({ attack: spec.attack, source: spec.source, dataset: spec.dataset }))
    .digest("hex");
}

export interface Shard {
  spec: Pick<EvaluationSpec, "attack" | "source" | "target" | "rescore" | "attackScope">;
  /** the shard's dataset indices and their clean images and labels */
  indices: readonly number[];
  images: LabelledImages;
  shape: ImageShape;
  /** the DC settings a `dc` source follows (the job's settings) */
  dc: DCSettings;
  /** the target adapter's LoRA tensors (an adaptive source on the same DC shares them) */
  lora?: LoraTensors;
  /** stored adversarial examples for every image: reused instead of attacking */
  adv?: Float32Array | null;
  /** the target's clean verdicts when already known (bench table scores them once per run) */
  cleanPred?: Int32Array;
  /**
   * "all": score the target on every adversarial example; "changed": only on those of images
   * it gets right clean whose example differs from the clean image (the others keep their
   * clean verdict, -1 where the clean verdict was wrong) — cheaper, same robust accuracy.
   */
  score?: "all" | "changed";
  /**
   * Progress by phase: "attack" in image evaluations against the attack's cost, "clean",
   * "adversarial" and "rescore r" in the target's unit (UNet calls for a DC).
   */
  onProgress?: (phase: string, done: number, total: number, unit: string) => void;
}

export interface ShardRun extends ShardOutcome {
  /** the adversarial examples (stored ones when reused) */
  xAdv: Float32Array;
  /** the attack's own per-stage figures (AutoAttack), on the images it attacked */
  attackDetail?: { attack: string; robustAccuracy: number; seconds: number }[];
  warnings: string[];
  /** images attacked (all, or those right clean for attackScope "clean-correct") */
  attacked: number;
  /** target verdicts computed on adversarial examples */
  scored: number;
  attackSeconds: number;
}

export async function runShard(shard: Shard, models: ModelSet): Promise<ShardRun> {
  const t0 = performance.now();
  const { spec, images: set, shape } = shard;
  const n = set.n;
  const D = set.images.length / n;
  const target = openTarget(spec.target, models, shard.lora);
  const report = shard.onProgress;
  const phase = (name: string) =>
    report && ((done: number, total: number) => report(name, done, total, "model calls"));
  const rightClean = async () => {
    const clean = shard.cleanPred ?? await target.predict(set.images, n, phase("clean"));
    const idx = [...clean.keys()].filter((i) => clean[i] === set.labels[i]);
    return { clean, idx };
  };
  // Adaptive attacks on costly targets skip the images the target already gets wrong clean.
  let known = spec.attackScope === "clean-correct" ? await rightClean() : undefined;

  let xAdv: Float32Array;
  let attackDetail: ShardRun["attackDetail"];
  let warnings: string[] = [];
  let attacked = 0;
  const ta = performance.now();
  if (shard.adv) {
    xAdv = shard.adv;
  } else {
    const sub = known ? gather(set, Int32Array.from(known.idx)) : set;
    let oracle = openSource(spec.source, models, shard.dc, shard.lora);
    if (report) {
      // the attack's progress: images evaluated against its budget (an upper bound)
      const total = attackCost(spec.attack, oracle.numClasses) * sub.n;
      let done = 0;
      oracle = countingOracle(
        oracle,
        (k) => report("attack", done += k, total, "image evaluations"),
      );
    }
    const out = await runAttack(oracle, sub.images, sub.labels, spec.attack, shape);
    attacked = sub.n;
    if (known) {
      xAdv = set.images.slice();
      known.idx.forEach((i, r) => xAdv.set(out.xAdv.subarray(r * D, (r + 1) * D), i * D));
    } else {
      xAdv = out.xAdv;
    }
    attackDetail = out.perAttack;
    warnings = out.warnings ?? [];
  }
  const attackSeconds = (performance.now() - ta) / 1000;

  known ??= await rightClean();
  const clean = known.clean;
  let adv: Int32Array;
  let scored: number;
  if (shard.score === "changed") {
    const changed = known.idx.filter((i) => {
      const a = xAdv.subarray(i * D, (i + 1) * D);
      const b = set.images.subarray(i * D, (i + 1) * D);
      return a.some((v, j) => v !== b[j]);
    });
    adv = Int32Array.from(clean, (p, i) => (p === set.labels[i] ? p : -1));
    if (changed.length) {
      const x = gather({ ...set, images: xAdv }, Int32Array.from(changed)).images;
      const p = await target.predict(x, changed.length, phase("adversarial"));
      changed.forEach((i, r) => (adv[i] = p[r]));
    }
    scored = changed.length;
  } else {
    adv = await target.predict(xAdv, n, phase("adversarial"));
    scored = n;
  }

  // Spec §7: re-score the adversarial points under fresh noise draws (only images right on the
  // clean image can count as robust; the others are marked -1).
  const R = spec.rescore ?? 0;
  const fresh: number[][] = Array.from({ length: n }, () => []);
  if (R > 0 && target.predictWithDraw) {
    const idx = known.idx;
    const x = gather({ ...set, images: xAdv }, Int32Array.from(idx)).images;
    for (let r = 1; r <= R; r++) {
      const p = idx.length
        ? await target.predictWithDraw(x, idx.length, r, phase(`rescore ${r}/${R}`))
        : new Int32Array();
      fresh.forEach((f) => f.push(-1));
      idx.forEach((i, k) => (fresh[i][r - 1] = p[k]));
    }
  }
  const items: EvalItem[] = shard.indices.map((index, i) => ({
    index,
    label: set.labels[i],
    cleanPred: clean[i],
    advPred: adv[i],
    // in the attack's norm: the report checks it never exceeds ε
    dist: lpDistance(
      spec.attack.norm,
      xAdv.subarray(i * D, (i + 1) * D),
      set.images.subarray(i * D, (i + 1) * D),
    ),
    ...(R > 0 ? { fresh: fresh[i] } : {}),
  }));
  return {
    items,
    perAttack: attackDetail?.map((p) => ({
      attack: p.attack,
      robust: Math.round(p.robustAccuracy * attacked),
      total: attacked,
    })),
    reusedAdversarial: !!shard.adv,
    computeMs: performance.now() - t0,
    xAdv,
    attackDetail,
    warnings,
    attacked,
    scored,
    attackSeconds,
  };
}
