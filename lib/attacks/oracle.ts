/**
 * What an attack needs from a model: logits, and the input gradient of a per-sample loss
 * on the logits. Built from any Classifier (surrogate bundles) by chaining the loss
 * gradient through `logitsVjpX`; the diffusion classifier provides its own (adaptive
 * attacks) with fixed noise or EOT.
 */
import type { Classifier } from "../model.ts";

export type LogitLoss = (
  z: Float64Array | Float32Array,
  i: number,
) => { loss: number; grad: Float64Array };

export interface GradientOracle {
  readonly numClasses: number;
  /** C·H·W */
  readonly size: number;
  /** true when repeated calls on the same input may differ (EOT needed) */
  readonly stochastic: boolean;
  logits(x: Float32Array, n: number): Promise<Float32Array>;
  /** per-sample loss and d loss_i / d x_i for every sample */
  lossGrad(
    x: Float32Array,
    n: number,
    loss: LogitLoss,
  ): Promise<{ logits: Float32Array; loss: Float64Array; grad: Float32Array }>;
  /** logits and d(Σ_j w_ij z_ij)/dx_i with fixed weights w (n × K): FAB's Jacobian rows */
  vjp(
    x: Float32Array,
    n: number,
    w: Float32Array,
  ): Promise<{ logits: Float32Array; grad: Float32Array }>;
}

export interface RandomSource {
  uniform(): number;
  normal(): number;
}

export function classifierOracle(c: Classifier): GradientOracle {
  const k = c.classNames.length;
  const size = c.imageShape.channels * c.imageShape.height * c.imageShape.width;
  return {
    numClasses: k,
    size,
    stochastic: false,
    logits: (x, n) => c.logits(x, n),
    async lossGrad(x, n, loss) {
      const z = await c.logits(x, n);
      const { w, loss: l } = lossWeights(z, n, k, loss);
      const { gradX } = await c.logitsVjpX(x, w, n);
      return { logits: z, loss: l, grad: gradX };
    },
    async vjp(x, n, w) {
      const r = await c.logitsVjpX(x, w, n);
      return { logits: r.logits, grad: r.gradX };
    },
  };
}

/**
 * Each sample's loss on its logits and d loss / d logits as VJP weights (n × K): what every
 * oracle chains back through its own model.
 */
export function lossWeights(z: Float32Array, n: number, k: number, loss: LogitLoss) {
  const w = new Float32Array(n * k);
  const l = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = loss(z.subarray(i * k, (i + 1) * k), i);
    l[i] = r.loss;
    w.set(r.grad, i * k);
  }
  return { w, loss: l };
}

/** Gradient averaged over `m` draws (EOT); loss and logits are the last draw's (as APGD). */
export async function eotLossGrad(
  o: GradientOracle,
  x: Float32Array,
  n: number,
  loss: LogitLoss,
  m: number,
) {
  if (m <= 1 || !o.stochastic) return o.lossGrad(x, n, loss);
  const sum = new Float32Array(n * o.size);
  let last!: Awaited<ReturnType<GradientOracle["lossGrad"]>>;
  for (let k = 0; k < m; k++) {
    last = await o.lossGrad(x, n, loss);
    for (let i = 0; i < sum.length; i++) sum[i] += last.grad[i];
  }
  for (let i = 0; i < sum.length; i++) sum[i] /= m;
  return { ...last, grad: sum };
}

export function predictions(z: Float32Array, n: number, k: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (z[i * k + j] > z[i * k + best]) best = j;
    out[i] = best;
  }
  return out;
}

/** Rows `idx` of a batch of `d`-sized samples, packed. */
export function gatherRows(x: Float32Array, idx: readonly number[], d: number): Float32Array {
  const out = new Float32Array(idx.length * d);
  idx.forEach((s, j) => out.set(x.subarray(s * d, (s + 1) * d), j * d));
  return out;
}

/** Indices whose flag is set: the points still robust. */
export function stillRobust(flags: Uint8Array): number[] {
  return [...flags.keys()].filter((i) => flags[i]);
}

/**
 * Target class of rank r per row (APGD-T, FAB-T): argsort ascending, position −r, so
 * r = 2 is the runner-up of a correctly classified point. Ties keep the lower index first.
 */
export function targetsByRank(z: Float32Array, n: number, k: number, rank: number): Int32Array {
  return Int32Array.from({ length: n }, (_, j) => {
    const order = Array.from({ length: k }, (_, c) => c).sort((p, q) =>
      z[j * k + p] - z[j * k + q] || p - q
    );
    return order[k - rank];
  });
}

/**
 * `o` unchanged (same calls, same results), telling `onImages` how many images each model
 * evaluation covered: the attack's progress against its cost (lib/attacks/registry.ts
 * attackCost, evaluations per image) without a line of printing in the attack code.
 */
export function countingOracle(
  o: GradientOracle,
  onImages: (images: number) => void,
): GradientOracle {
  return {
    numClasses: o.numClasses,
    size: o.size,
    stochastic: o.stochastic,
    async logits(x, n) {
      const r = await o.logits(x, n);
      onImages(n);
      return r;
    },
    async lossGrad(x, n, loss) {
      const r = await o.lossGrad(x, n, loss);
      onImages(n);
      return r;
    },
    async vjp(x, n, w) {
      const r = await o.vjp(x, n, w);
      onImages(n);
      return r;
    },
  };
}
