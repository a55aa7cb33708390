/**
 * Automatic checks that a robustness number is believable (spec §7; Carlini et al. 2019,
 * Tramèr et al. 2020). Each check returns { ok, detail } so reports can list them; they
 * are pure functions over per-example outcomes (1 = still robust).
 */

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);

/** Robust accuracy over an ε sweep must not increase with ε. */
export function budgetMonotone(sweep: { eps: number; robust: number }[], slack = 0): Check {
  const s = [...sweep].sort((a, b) => a.eps - b.eps);
  const bad = s.slice(1).filter((p, i) => p.robust > s[i].robust + slack);
  return {
    name: "accuracy non-increasing in ε",
    ok: bad.length === 0,
    detail: s.map((p) => `ε=${p.eps}: ${(p.robust * 100).toFixed(1)}%`).join(", "),
  };
}

/**
 * With an unbounded budget (Linf ε = 1, or L2 ε = √d) every image in [0,1]^d is reachable:
 * accuracy must be ≤ `chance` (0 for deterministic models).
 */
export function unboundedBudget(robust: number, chance = 0, budget = "Linf ε = 1"): Check {
  return {
    name: `${budget} reaches ${(chance * 100).toFixed(0)}%`,
    ok: robust <= chance,
    detail: `robust accuracy ${(robust * 100).toFixed(1)}% (allowed ≤ ${
      (chance * 100).toFixed(1)
    }%)`,
  };
}

/** Two-sided exact sign test on discordant pairs: p-value for b successes out of b + c at ½. */
export function signTestP(b: number, c: number): number {
  const m = b + c;
  if (m === 0) return 1;
  const k = Math.min(b, c);
  let tail = 0;
  let logC = 0; // log C(m, 0)
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(m - i + 1) - Math.log(i);
    tail += Math.exp(logC - m * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

/**
 * Doubling iterations / restarts / EOT must not change the result beyond noise: the per-point
 * outcomes of the two runs are compared with a paired sign test; more points robust after
 * doubling than noise allows is a bug flag, fewer means the attack had not converged.
 */
export function doublingStable(base: Uint8Array, doubled: Uint8Array, alpha = 0.01): Check {
  let b = 0; // robust only in the doubled run
  let c = 0; // robust only in the base run
  for (let i = 0; i < base.length; i++) {
    if (doubled[i] && !base[i]) b++;
    if (base[i] && !doubled[i]) c++;
  }
  const p = signTestP(b, c);
  return {
    name: "doubling the attack budget changes nothing beyond noise",
    ok: p > alpha,
    detail: `robust ${sum(base)} → ${
      sum(doubled)
    } of ${base.length}; discordant ${b} up / ${c} down; sign test p = ${p.toPrecision(3)}`,
  };
}

/**
 * Points broken by a transfer (or black-box) attack but not by the white-box one are a sign of
 * gradient masking: a correct white-box attack should find at least what a weaker one found.
 */
export function transferNotStronger(
  whiteBoxRobust: Uint8Array,
  transferRobust: Uint8Array,
  maxShare = 0.002,
): Check {
  const flagged: number[] = [];
  for (let i = 0; i < whiteBoxRobust.length; i++) {
    if (whiteBoxRobust[i] && !transferRobust[i]) flagged.push(i);
  }
  return {
    name: "white-box breaks everything transfer breaks",
    ok: flagged.length / whiteBoxRobust.length <= maxShare,
    detail: flagged.length
      ? `${flagged.length} points broken only by transfer: ${flagged.slice(0, 20).join(", ")}`
      : "none",
  };
}

/** FGSM must not beat the iterative attack at the same ε. */
export function singleStepNotStronger(
  fgsmRobust: number,
  iterativeRobust: number,
  slack = 0,
): Check {
  return {
    name: "FGSM not stronger than the iterative attack",
    ok: fgsmRobust + slack >= iterativeRobust,
    detail: `FGSM ${(fgsmRobust * 100).toFixed(1)}%, iterative ${
      (iterativeRobust * 100).toFixed(1)
    }%`,
  };
}

/**
 * Spec §7, stochastic models: the adversarial points are re-scored with fresh noise draws. The
 * reported figure uses one fixed draw (the deployed DC is deterministic); it must not be
 * optimistic, i.e. not above the fresh-draw mean by more than 1.96 standard errors.
 */
export function freshNoiseNotOptimistic(fixed: number, fresh: number[], m: number): Check {
  const mean = fresh.reduce((s, v) => s + v, 0) / fresh.length;
  const se = Math.sqrt(Math.max(mean * (1 - mean), 1 / (4 * m)) / m);
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  return {
    name: `fixed-noise accuracy not above ${fresh.length} fresh noise draws`,
    ok: fresh.length >= 1 && fixed <= mean + 1.96 * se,
    detail: `fixed ${pct(fixed)}; fresh mean ${pct(mean)} (min ${pct(Math.min(...fresh))}, max ${
      pct(Math.max(...fresh))
    }) on ${m} images`,
  };
}
