/**
 * FGSM (torchattacks semantics, spec §1): x' = clamp(x0 + ε·sign(∇ CE), 0, 1); targeted uses −CE(t).
 * Under L2 the one step is the fast gradient method (Goodfellow et al.; Kurakin et al.):
 * x' = clamp(x0 + ε·∇/‖∇‖₂, 0, 1), the single-step counterpart of PGD-L2.
 */
import { crossEntropy } from "./losses.ts";
import { eotLossGrad, type GradientOracle } from "./oracle.ts";
import type { Norm } from "./projections.ts";

export interface FgsmConfig {
  eps: number;
  norm?: Norm;
  /** per-sample target classes: a targeted attack */
  targets?: Int32Array;
  /** gradient draws averaged for a stochastic model (EOT); 1 for a deterministic one */
  eotIter?: number;
}

export async function fgsm(
  o: GradientOracle,
  x0: Float32Array,
  y: Int32Array,
  cfg: FgsmConfig,
): Promise<Float32Array> {
  const n = y.length;
  const d = x0.length / n;
  const t = cfg.targets;
  const loss = (z: Float32Array | Float64Array, i: number) => crossEntropy(z, t ? t[i] : y[i]);
  const { grad } = await eotLossGrad(o, x0, n, loss, cfg.eotIter ?? 1);
  const dir = t ? -1 : 1;
  const out = new Float32Array(x0.length);
  for (let s = 0; s < n; s++) {
    let scale = 0;
    if (cfg.norm === "l2") {
      let g2 = 0;
      for (let j = s * d; j < (s + 1) * d; j++) g2 += grad[j] * grad[j];
      scale = cfg.eps / (Math.sqrt(g2) + 1e-12);
    }
    for (let j = s * d; j < (s + 1) * d; j++) {
      const step = cfg.norm === "l2" ? scale * grad[j] : cfg.eps * Math.sign(grad[j]);
      out[j] = Math.min(1, Math.max(0, x0[j] + dir * step));
    }
  }
  return out;
}
