/**
 * PGD in Linf and L2 (torchattacks semantics, spec §1): optional random start, `steps`
 * projected steps, the last iterate is returned. Targeted variants ascend −CE(t); EOT-PGD
 * averages the gradient over `eotIter` draws of a stochastic model.
 */
import { crossEntropy } from "./losses.ts";
import { eotLossGrad, type GradientOracle, type RandomSource } from "./oracle.ts";
import type { Norm } from "./projections.ts";

export interface PgdConfig {
  norm: Norm;
  eps: number;
  alpha: number;
  steps: number;
  randomStart: boolean;
  targets?: Int32Array;
  eotIter?: number;
}

export const PGD_DEFAULTS = {
  linf: { eps: 8 / 255, alpha: 2 / 255, steps: 10, randomStart: true },
  l2: { eps: 1.0, alpha: 0.2, steps: 10, randomStart: true },
} as const;

const clamp01 = (v: number) => Math.min(1, Math.max(0, v));

export async function pgd(
  o: GradientOracle,
  x0: Float32Array,
  y: Int32Array,
  cfg: PgdConfig,
  rng: RandomSource,
): Promise<Float32Array> {
  const n = y.length;
  const d = o.size;
  const x = x0.slice();
  if (cfg.randomStart) {
    if (cfg.norm === "linf") {
      for (let i = 0; i < x.length; i++) x[i] = clamp01(x0[i] + (2 * rng.uniform() - 1) * cfg.eps);
    } else {
      for (let s = 0; s < n; s++) {
        const v = new Float64Array(d);
        let nv = 0;
        for (let i = 0; i < d; i++) nv += (v[i] = rng.normal()) ** 2;
        const r = rng.uniform() * cfg.eps / (Math.sqrt(nv) || 1);
        for (let i = 0; i < d; i++) x[s * d + i] = clamp01(x0[s * d + i] + v[i] * r);
      }
    }
  }
  const sign = cfg.targets ? -1 : 1;
  const loss = (z: Float64Array | Float32Array, i: number) =>
    crossEntropy(z, cfg.targets ? cfg.targets[i] : y[i]);
  for (let step = 0; step < cfg.steps; step++) {
    const { grad } = await eotLossGrad(o, x, n, loss, cfg.eotIter ?? 1);
    for (let s = 0; s < n; s++) {
      const off = s * d;
      if (cfg.norm === "linf") {
        for (let i = off; i < off + d; i++) {
          const v = x[i] + sign * cfg.alpha * Math.sign(grad[i]);
          x[i] = clamp01(x0[i] + Math.min(cfg.eps, Math.max(-cfg.eps, v - x0[i])));
        }
      } else {
        let gn = 0;
        for (let i = off; i < off + d; i++) gn += grad[i] * grad[i];
        const gs = (sign * cfg.alpha) / (Math.sqrt(gn) + 1e-10);
        let dn = 0;
        for (let i = off; i < off + d; i++) {
          x[i] = x[i] + gs * grad[i];
          dn += (x[i] - x0[i]) ** 2;
        }
        const f = Math.min(1, cfg.eps / Math.sqrt(dn));
        for (let i = off; i < off + d; i++) {
          x[i] = clamp01(x0[i] + (x[i] - x0[i]) * (Number.isFinite(f) ? f : 1));
        }
      }
    }
  }
  return x;
}
