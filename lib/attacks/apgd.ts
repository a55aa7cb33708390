/**
 * APGD (Croce & Hein 2020) as fra31/auto-attack's `APGDAttack` behaves (spec §2–§3):
 * momentum 0.75, step η = 2ε halved at checkpoints when the loss oscillated (cond1) or
 * the best loss stalled (cond2), restoring the best point; the latest misclassified
 * iterate is the adversarial example; restarts from fresh random points on the points
 * that are still robust; APGD-T loops over target ranks 2 … nTargets+1.
 */
import { apgdConstants } from "./apgd_schedule.ts";
import { argmax, crossEntropy, dlr, dlrTargeted } from "./losses.ts";
import {
  eotLossGrad,
  gatherRows,
  type GradientOracle,
  type LogitLoss,
  predictions,
  type RandomSource,
  stillRobust,
  targetsByRank,
} from "./oracle.ts";
import type { Norm } from "./projections.ts";

export type ApgdLoss = "ce" | "dlr" | "dlr-targeted";

export interface ApgdConfig {
  norm: Norm;
  eps: number;
  nIter: number;
  nRestarts: number;
  loss: ApgdLoss;
  rho?: number;
  eotIter?: number;
  /** APGD-T: number of target classes (ranks 2 … nTargetClasses+1) */
  nTargetClasses?: number;
}

export interface SingleRunTrace {
  loss: Float64Array[]; // per iteration, per sample
  stepSize: Float64Array[]; // after each iteration
  halved: Uint8Array[]; // per checkpoint
}

export interface SingleRunResult {
  xBest: Float32Array;
  acc: Uint8Array; // 1 = still robust
  lossBest: Float64Array;
  xAdvBest: Float32Array;
  trace: SingleRunTrace;
}

function lossFn(kind: ApgdLoss, y: Int32Array, targets?: Int32Array): LogitLoss {
  if (kind === "ce") return (z, i) => crossEntropy(z, y[i]);
  if (kind === "dlr") return (z, i) => dlr(z, y[i]);
  return (z, i) => dlrTargeted(z, y[i], targets![i]);
}

/** One APGD run on samples that are all currently classified correctly. */
export async function apgdSingleRun(
  o: GradientOracle,
  x0: Float32Array,
  y: Int32Array,
  cfg: ApgdConfig,
  rng: RandomSource,
  opts: { targets?: Int32Array; xInit?: Float32Array } = {},
): Promise<SingleRunResult> {
  const n = y.length;
  const d = o.size;
  const k = o.numClasses;
  const N = cfg.nIter;
  const rho = cfg.rho ?? 0.75;
  const eot = cfg.eotIter ?? 1;
  const eps = cfg.eps;
  const loss = lossFn(cfg.loss, y, opts.targets);
  const clamp01 = (v: number) => Math.min(1, Math.max(0, v));

  // 1. initial point
  let x = new Float32Array(n * d);
  if (opts.xInit) x.set(opts.xInit);
  else {
    for (let s = 0; s < n; s++) {
      const t = new Float64Array(d);
      let scale = 0;
      if (cfg.norm === "linf") {
        for (let i = 0; i < d; i++) scale = Math.max(scale, Math.abs(t[i] = 2 * rng.uniform() - 1));
        scale += 1e-12;
      } else {
        for (let i = 0; i < d; i++) scale += (t[i] = rng.normal()) ** 2;
        scale = Math.sqrt(scale) + 1e-12;
      }
      for (let i = 0; i < d; i++) x[s * d + i] = clamp01(x0[s * d + i] + (eps * t[i]) / scale);
    }
  }

  // 2. bookkeeping
  let r = await eotLossGrad(o, x, n, loss, eot);
  let g = r.grad;
  const xBest = x.slice();
  const gBest = g.slice();
  const lossBest = Float64Array.from(r.loss);
  const acc = new Uint8Array(n);
  const pred0 = predictions(r.logits, n, k);
  for (let s = 0; s < n; s++) acc[s] = pred0[s] === y[s] ? 1 : 0;
  const xAdvBest = x.slice();
  const eta = new Float64Array(n).fill(2 * eps);
  let xPrev = x.slice();
  const { k0, kMin, dec } = apgdConstants(N);
  let kWin = k0;
  let counter = 0;
  const lossBestLast = lossBest.slice();
  const reducedLast = new Uint8Array(n).fill(1);
  const H: Float64Array[] = Array.from({ length: N }, () => new Float64Array(n));
  const trace: SingleRunTrace = { loss: [], stepSize: [], halved: [] };

  const projLinf = (v: number, c: number) => clamp01(Math.min(Math.max(v, c - eps), c + eps));
  const projL2 = (v: Float64Array, off: number) => {
    let nn = 0;
    for (let i = 0; i < d; i++) nn += (v[i] - x0[off + i]) ** 2;
    const norm = Math.sqrt(nn);
    const f = Math.min(eps, norm) / (norm + 1e-12);
    for (let i = 0; i < d; i++) v[i] = clamp01(x0[off + i] + (v[i] - x0[off + i]) * f);
  };

  // 3. iterations
  for (let it = 0; it < N; it++) {
    const a = it === 0 ? 1.0 : 0.75;
    const xNew = new Float32Array(n * d);
    for (let s = 0; s < n; s++) {
      const off = s * d;
      if (cfg.norm === "linf") {
        for (let i = off; i < off + d; i++) {
          const m = x[i] - xPrev[i];
          const z = projLinf(x[i] + eta[s] * Math.sign(g[i]), x0[i]);
          xNew[i] = projLinf(x[i] + a * (z - x[i]) + (1 - a) * m, x0[i]);
        }
      } else {
        let gn = 0;
        for (let i = off; i < off + d; i++) gn += g[i] * g[i];
        const gs = eta[s] / (Math.sqrt(gn) + 1e-12);
        const z = new Float64Array(d);
        for (let i = 0; i < d; i++) z[i] = x[off + i] + gs * g[off + i];
        projL2(z, off);
        const v = new Float64Array(d);
        for (let i = 0; i < d; i++) {
          v[i] = x[off + i] + a * (z[i] - x[off + i]) + (1 - a) * (x[off + i] - xPrev[off + i]);
        }
        projL2(v, off);
        for (let i = 0; i < d; i++) xNew[off + i] = v[i];
      }
    }
    xPrev = x;
    x = xNew;
    r = await eotLossGrad(o, x, n, loss, eot);
    g = r.grad;
    for (let s = 0; s < n; s++) {
      const off = s * d;
      if (argmax(r.logits, s * k, k) !== y[s]) {
        acc[s] = 0;
        xAdvBest.set(x.subarray(off, off + d), off);
      }
      H[it][s] = r.loss[s];
      if (r.loss[s] > lossBest[s]) {
        xBest.set(x.subarray(off, off + d), off);
        gBest.set(g.subarray(off, off + d), off);
        lossBest[s] = r.loss[s];
      }
    }
    trace.loss.push(Float64Array.from(r.loss));
    counter++;
    if (counter === kWin) {
      const halved = new Uint8Array(n);
      for (let s = 0; s < n; s++) {
        let count = 0;
        for (let c = 0; c < kWin; c++) {
          const cur = H[(it - c + N) % N][s];
          const prev = H[(it - c - 1 + N) % N][s]; // Python negative indexing into the zero-initialised history
          if (cur > prev) count++;
        }
        const cond1 = count <= rho * kWin;
        const cond2 = !reducedLast[s] && lossBestLast[s] >= lossBest[s];
        halved[s] = cond1 || cond2 ? 1 : 0;
        if (halved[s]) {
          eta[s] /= 2;
          const off = s * d;
          x.set(xBest.subarray(off, off + d), off);
          g.set(gBest.subarray(off, off + d), off);
        }
        reducedLast[s] = halved[s];
        lossBestLast[s] = lossBest[s];
      }
      trace.halved.push(halved);
      counter = 0;
      kWin = Math.max(kWin - dec, kMin);
    }
    trace.stepSize.push(eta.slice());
  }
  return { xBest, acc, lossBest, xAdvBest, trace };
}

/**
 * `perturb`: attack the points the model classifies correctly; each restart starts fresh
 * on the points still robust. Broken points return their adversarial example, the rest
 * the clean input. APGD-T (loss "dlr-targeted") loops over target ranks.
 */
export async function apgd(
  o: GradientOracle,
  x0: Float32Array,
  y: Int32Array,
  cfg: ApgdConfig,
  rng: RandomSource,
): Promise<{ xAdv: Float32Array; robust: Uint8Array }> {
  const n = y.length;
  const d = o.size;
  const k = o.numClasses;
  const xAdv = x0.slice();
  const clean = await o.logits(x0, n);
  const pred = predictions(clean, n, k);
  const robust = Uint8Array.from(pred, (p, i) => (p === y[i] ? 1 : 0));
  const targeted = cfg.loss === "dlr-targeted";
  if (targeted && k < 4) throw new RangeError("APGD-T needs at least 4 classes");
  if (cfg.loss === "dlr" && k < 3) throw new RangeError("APGD-DLR needs at least 3 classes");
  const ranks = targeted ? Array.from({ length: cfg.nTargetClasses ?? 9 }, (_, j) => j + 2) : [0];
  if (targeted && ranks.length > k - 1) {
    throw new RangeError(`at most ${k - 1} target classes for ${k} classes`);
  }
  for (const rank of ranks) {
    for (let restart = 0; restart < cfg.nRestarts; restart++) {
      const idx = stillRobust(robust);
      if (idx.length === 0) return { xAdv, robust };
      const xs = gatherRows(x0, idx, d);
      const ys = Int32Array.from(idx, (s) => y[s]);
      const targets = targeted
        ? targetsByRank(await o.logits(xs, idx.length), idx.length, k, rank)
        : undefined;
      const res = await apgdSingleRun(o, xs, ys, cfg, rng, { targets });
      idx.forEach((s, j) => {
        if (!res.acc[j]) {
          robust[s] = 0;
          xAdv.set(res.xAdvBest.subarray(j * d, (j + 1) * d), s * d);
        }
      });
    }
  }
  return { xAdv, robust };
}
