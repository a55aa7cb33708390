/** z = W x + b as a GradientOracle, exact in float64: the model the attack fixtures were recorded on. */
import type { GradientOracle } from "../lib/attacks/oracle.ts";

export function linearOracle(
  W: ArrayLike<number>,
  b: ArrayLike<number>,
  k: number,
  d: number,
): GradientOracle {
  const logits = (x: Float32Array, n: number) => {
    const z = new Float32Array(n * k);
    for (let s = 0; s < n; s++) {
      for (let j = 0; j < k; j++) {
        let a = b[j];
        for (let i = 0; i < d; i++) a += W[j * d + i] * x[s * d + i];
        z[s * k + j] = a;
      }
    }
    return z;
  };
  const vjp = (x: Float32Array, n: number, w: Float32Array) => {
    const grad = new Float32Array(n * d);
    for (let s = 0; s < n; s++) {
      for (let i = 0; i < d; i++) {
        let g = 0;
        for (let j = 0; j < k; j++) g += w[s * k + j] * W[j * d + i];
        grad[s * d + i] = g;
      }
    }
    return { logits: logits(x, n), grad };
  };
  return {
    numClasses: k,
    size: d,
    stochastic: false,
    logits: (x, n) => Promise.resolve(logits(x, n)),
    vjp: (x, n, w) => Promise.resolve(vjp(x, n, w)),
    lossGrad(x, n, loss) {
      const z = logits(x, n);
      const w = new Float32Array(n * k);
      const l = new Float64Array(n);
      for (let s = 0; s < n; s++) {
        const r = loss(z.subarray(s * k, (s + 1) * k), s);
        l[s] = r.loss;
        w.set(r.grad, s * k);
      }
      return Promise.resolve({ logits: z, loss: l, grad: vjp(x, n, w).grad });
    },
  };
}
