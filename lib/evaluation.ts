/**
 * One robustness evaluation: attack a seeded subset on a source model, score a target on
 * the clean and adversarial images. The record says everything needed to rerun it and
 * whether the attack was transferred or adaptive.
 */
import { type AttackConfig, runAttack } from "./attacks/registry.ts";
import type { GradientOracle } from "./attacks/oracle.ts";
import type { ImageShape } from "./model.ts";
import { wilson } from "./stats.ts";
import { type Check, freshNoiseNotOptimistic } from "./sanity.ts";

export type Scorer = (x: Float32Array, n: number) => Promise<Int32Array>;

export interface EvaluationInput {
  images: Float32Array;
  labels: Int32Array;
  shape: ImageShape;
  attack: AttackConfig;
  source: { oracle: GradientOracle; describe: Record<string, unknown> };
  target: {
    score: Scorer;
    describe: Record<string, unknown>;
    rescore?: (x: Float32Array, n: number) => Promise<Int32Array[]>;
  };
  mode: "transfer" | "adaptive" | "white-box";
}

export async function evaluate(inp: EvaluationInput) {
  const n = inp.labels.length;
  const t0 = performance.now();
  const outcome = await runAttack(inp.source.oracle, inp.images, inp.labels, inp.attack, inp.shape);
  const attackSeconds = (performance.now() - t0) / 1000;
  const cleanPred = await inp.target.score(inp.images, n);
  const advPred = await inp.target.score(outcome.xAdv, n);
  let clean = 0;
  let robust = 0;
  let advOnly = 0;
  const robustFlags = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = cleanPred[i] === inp.labels[i];
    const a = advPred[i] === inp.labels[i];
    clean += c ? 1 : 0;
    robust += c && a ? 1 : 0;
    advOnly += a ? 1 : 0;
    robustFlags[i] = c && a ? 1 : 0;
  }
  let rescored:
    | { seeds: number; mean_accuracy: number; per_seed: number[]; check: Check }
    | undefined;
  if (inp.target.rescore) {
    const runs = await inp.target.rescore(outcome.xAdv, n);
    const per = runs.map((p) =>
      p.reduce(
        (a, v, i) => a + (v === inp.labels[i] && cleanPred[i] === inp.labels[i] ? 1 : 0),
        0,
      ) / n
    );
    rescored = {
      seeds: runs.length,
      mean_accuracy: per.reduce((a, v) => a + v, 0) / per.length,
      per_seed: per,
      check: freshNoiseNotOptimistic(robust / n, per, n),
    };
  }
  return {
    mode: inp.mode,
    n,
    clean_accuracy: clean / n,
    clean_ci95: wilson(clean, n),
    robust_accuracy: robust / n,
    ci95: wilson(robust, n),
    robust_definition:
      "target correct on the clean image and on its adversarial example (per-example worst case)",
    accuracy_on_adversarial: advOnly / n,
    attack: inp.attack,
    source: inp.source.describe,
    target: inp.target.describe,
    per_attack: outcome.perAttack,
    warnings: outcome.warnings ?? [],
    rescored_with_fresh_noise: rescored,
    seconds: (performance.now() - t0) / 1000,
    attack_seconds: attackSeconds,
    xAdv: outcome.xAdv,
    robustFlags,
  };
}
