/**
 * FAB and FAB-T (Croce & Hein 2020) as fra31/auto-attack's `FABAttack_PT` (spec §4):
 * linearise the decision boundary at x, project both x and the clean x₀ onto the nearest
 * hyperplane (box-constrained), step to a convex combination biased towards x₀ (α ≤ α_max)
 * with overshoot η, keep the smallest-norm misclassified point, and pull every
 * misclassified iterate back towards x₀ by β. Success needs the norm ≤ ε.
 */
import { fabProjection } from "./fab_projection.ts";
import {
  gatherRows,
  type GradientOracle,
  predictions,
  type RandomSource,
  stillRobust,
  targetsByRank,
} from "./oracle.ts";
import { lpDistance, type Norm } from "./projections.ts";

export interface FabConfig {
  norm: Norm;
  eps: number;
  nIter: number;
  nRestarts: number;
  alphaMax?: number;
  eta?: number;
  beta?: number;
  /** FAB-T: target ranks 2 … nTargetClasses+1 */
  targeted?: boolean;
  nTargetClasses?: number;
}

/** One run on samples classified correctly; returns the best adversarial points and norms (1e10 = none). */
export async function fabSingleRun(
  o: GradientOracle,
  x0: Float32Array,
  y: Int32Array,
  cfg: FabConfig,
  rng: RandomSource,
  opts: { randomStart: boolean; targets?: Int32Array },
): Promise<{ adv: Float32Array; norms: Float64Array }> {
  const n = y.length;
  const d = o.size;
  const k = o.numClasses;
  const alphaMax = cfg.alphaMax ?? 0.1;
  const eta = cfg.eta ?? 1.05;
  const beta = cfg.beta ?? 0.9;
  const adv = x0.slice();
  const best = new Float64Array(n).fill(1e10);
  const x = x0.slice();
  if (opts.randomStart) {
    for (let s = 0; s < n; s++) {
      const t = new Float64Array(d);
      let scale = 0;
      if (cfg.norm === "linf") {
        for (let i = 0; i < d; i++) scale = Math.max(scale, Math.abs(t[i] = 2 * rng.uniform() - 1));
      } else {
        for (let i = 0; i < d; i++) scale += (t[i] = rng.normal()) ** 2;
        scale = Math.sqrt(scale);
      }
      for (let i = 0; i < d; i++) {
        x[s * d + i] = Math.min(
          1,
          Math.max(0, x0[s * d + i] + (Math.min(1e10, cfg.eps) * t[i]) / scale * 0.5),
        );
      }
    }
  }
  const dual = (g: ArrayLike<number>, off: number) => {
    let r = 0;
    for (let i = 0; i < d; i++) r += cfg.norm === "linf" ? Math.abs(g[off + i]) : g[off + i] ** 2;
    return cfg.norm === "linf" ? r : Math.sqrt(r);
  };
  const norm = (v: ArrayLike<number>) => {
    let r = 0;
    for (let i = 0; i < v.length; i++) {
      r = cfg.norm === "linf" ? Math.max(r, Math.abs(v[i])) : r + v[i] * v[i];
    }
    return cfg.norm === "linf" ? r : Math.sqrt(r);
  };

  for (let it = 0; it < cfg.nIter; it++) {
    // Δf and Δg for the chosen hyperplane of every sample
    const df = new Float64Array(n);
    const dg = new Float32Array(n * d);
    if (opts.targets) {
      const w = new Float32Array(n * k);
      for (let s = 0; s < n; s++) {
        w[s * k + opts.targets[s]] += 1;
        w[s * k + y[s]] -= 1;
      }
      const r = await o.vjp(x, n, w);
      for (let s = 0; s < n; s++) {
        df[s] = r.logits[s * k + opts.targets[s]] - r.logits[s * k + y[s]];
      }
      dg.set(r.grad);
    } else {
      const rows: { logits: Float32Array; grad: Float32Array }[] = [];
      for (let j = 0; j < k; j++) {
        const w = new Float32Array(n * k);
        for (let s = 0; s < n; s++) w[s * k + j] = 1;
        rows.push(await o.vjp(x, n, w));
      }
      const z = rows[0].logits;
      for (let s = 0; s < n; s++) {
        let bestJ = -1;
        let bestDist = Infinity;
        for (let j = 0; j < k; j++) {
          const dfj = j === y[s] ? 1e10 : z[s * k + j] - z[s * k + y[s]];
          const g = new Float64Array(d);
          for (let i = 0; i < d; i++) g[i] = rows[j].grad[s * d + i] - rows[y[s]].grad[s * d + i];
          const dist = Math.abs(dfj) / (1e-12 + dual(g, 0));
          if (dist < bestDist) { // first minimum on ties, as torch's min
            bestDist = dist;
            bestJ = j;
          }
        }
        df[s] = z[s * k + bestJ] - z[s * k + y[s]];
        for (let i = 0; i < d; i++) {
          dg[s * d + i] = rows[bestJ].grad[s * d + i] - rows[y[s]].grad[s * d + i];
        }
      }
    }
    for (let s = 0; s < n; s++) {
      const off = s * d;
      const w = dg.subarray(off, off + d);
      let b = -df[s];
      for (let i = 0; i < d; i++) b += w[i] * x[off + i];
      const d1 = fabProjection(cfg.norm, x.subarray(off, off + d), w, b);
      const d2 = fabProjection(cfg.norm, x0.subarray(off, off + d), w, b);
      const a1 = Math.max(norm(d1), 1e-8);
      const a2 = Math.max(norm(d2), 1e-8);
      const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), alphaMax);
      for (let i = 0; i < d; i++) {
        const v = (x[off + i] + eta * d1[i]) * (1 - alpha) + (x0[off + i] + d2[i] * eta) * alpha;
        x[off + i] = Math.min(1, Math.max(0, v));
      }
    }
    const pred = predictions(await o.logits(x, n), n, k);
    for (let s = 0; s < n; s++) {
      if (pred[s] === y[s]) continue;
      const off = s * d;
      const xs = x.subarray(off, off + d);
      const t = lpDistance(cfg.norm, xs, x0.subarray(off, off + d));
      if (t < best[s]) {
        adv.set(xs, off);
        best[s] = t;
      }
      for (let i = off; i < off + d; i++) x[i] = x0[i] + (x[i] - x0[i]) * beta;
    }
  }
  return { adv, norms: best };
}

/** `perturb`: untargeted restarts (run 0 from x₀, later runs random) or FAB-T over target ranks. */
export async function fab(
  o: GradientOracle,
  x0: Float32Array,
  y: Int32Array,
  cfg: FabConfig,
  rng: RandomSource,
): Promise<{ xAdv: Float32Array; robust: Uint8Array }> {
  const n = y.length;
  const d = o.size;
  const k = o.numClasses;
  const xAdv = x0.slice();
  const robust = Uint8Array.from(
    predictions(await o.logits(x0, n), n, k),
    (p, i) => (p === y[i] ? 1 : 0),
  );
  const ranks = cfg.targeted
    ? Array.from({ length: cfg.nTargetClasses ?? 9 }, (_, j) => j + 2)
    : [0];
  for (const rank of ranks) {
    for (let restart = 0; restart < cfg.nRestarts; restart++) {
      const idx = stillRobust(robust);
      if (idx.length === 0) return { xAdv, robust };
      const xs = gatherRows(x0, idx, d);
      const ys = Int32Array.from(idx, (s) => y[s]);
      const targets = cfg.targeted
        ? targetsByRank(await o.logits(xs, idx.length), idx.length, k, rank)
        : undefined;
      const { adv } = await fabSingleRun(o, xs, ys, cfg, rng, {
        randomStart: restart > 0,
        targets,
      });
      const pred = predictions(await o.logits(adv, idx.length), idx.length, k);
      idx.forEach((s, j) => {
        const a = adv.subarray(j * d, (j + 1) * d);
        if (
          pred[j] !== y[s] && lpDistance(cfg.norm, a, x0.subarray(s * d, (s + 1) * d)) <= cfg.eps
        ) {
          robust[s] = 0;
          xAdv.set(a, s * d);
        }
      });
    }
  }
  return { xAdv, robust };
}
