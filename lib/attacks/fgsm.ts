/** FGSM (torchattacks semantics, spec §1): x' = clamp(x0 + ε·sign(∇ CE), 0, 1); targeted uses −CE(t). */
import { crossEntropy } from "./losses.ts";
import type { GradientOracle } from "./oracle.ts";

export interface FgsmConfig {
  eps: number;
  /** per-sample target classes: a targeted attack */
  targets?: Int32Array;
}

export async function fgsm(
  o: GradientOracle,
  x0: Float32Array,
  y: Int32Array,
  cfg: FgsmConfig,
): Promise<Float32Array> {
  const n = y.length;
  const t = cfg.targets;
  const { grad } = await o.lossGrad(x0, n, (z, i) => crossEntropy(z, t ? t[i] : y[i]));
  const dir = t ? -1 : 1;
  const out = new Float32Array(x0.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.min(1, Math.max(0, x0[i] + dir * cfg.eps * Math.sign(grad[i])));
  }
  return out;
}
