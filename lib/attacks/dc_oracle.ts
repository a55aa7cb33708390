/**
 * The diffusion classifier as a differentiable model for *adaptive* attacks: logits
 * z_c = −scale · mean_t err(x, t, ε_t, c) over a fixed set of timesteps and all classes
 * (staged elimination is not differentiable, so the attack sees the full estimate), and
 * input gradients through the bundle's `eps_loss_vjp_x` graph.
 *
 * Noise modes: "fixed" draws ε_t once (the classifier's own portable noise), making the
 * classifier deterministic so every attack applies unchanged; "fresh" draws new noise at
 * every call (stochastic; pair it with EOT).
 */
import type { DiffusionModel, LoraTensors } from "../model.ts";
import { imageSize } from "../model.ts";
import { normal } from "../rng.ts";
import { type GradientOracle, type LogitLoss, lossWeights } from "./oracle.ts";

export interface DCOracleConfig {
  /** timesteps scored per class, e.g. an even grid over [lo, hi) */
  timesteps: number[];
  error: "l2" | "l1";
  scale: number;
  noise: "fixed" | "fresh";
  seed: number;
  /** per-timestep weights (the classifier's `weights` on these timesteps); absent: all 1 */
  weights?: readonly number[];
  lora?: LoraTensors;
}

export function evenTimesteps(count: number, lo = 0, hi = 1000): number[] {
  const step = Math.floor((hi - lo) / count);
  return Array.from({ length: count }, (_, j) => lo + Math.floor(step / 2) + j * step);
}

export function dcOracle(
  model: DiffusionModel,
  cfg: DCOracleConfig,
): GradientOracle & { unetCalls: number } {
  const K = model.classNames.length;
  const D = imageSize(model.imageShape);
  const T = cfg.timesteps.length;
  const wt = cfg.weights ?? Array(T).fill(1);
  if (wt.length !== T) throw new RangeError(`${wt.length} weights for ${T} timesteps`);
  let draw = 0;
  const fixed = cfg.timesteps.map((_, j) => normal(cfg.seed, j, D));
  const noiseFor = () => {
    if (cfg.noise === "fixed") return fixed;
    draw++;
    return cfg.timesteps.map((_, j) => normal(cfg.seed + draw * 0x9e37, j, D));
  };

  /** rows (image i, class c, timestep j) in that order */
  function rows(x: Float32Array, n: number, eps: Float32Array[]) {
    const B = n * K * T;
    const xr = new Float32Array(B * D);
    const er = new Float32Array(B * D);
    const t = new Int32Array(B);
    const cls = new Int32Array(B);
    let r = 0;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < K; c++) {
        for (let j = 0; j < T; j++, r++) {
          xr.set(x.subarray(i * D, (i + 1) * D), r * D);
          er.set(eps[j], r * D);
          t[r] = cfg.timesteps[j];
          cls[r] = c;
        }
      }
    }
    return { x: xr, eps: er, t, cls };
  }

  function toLogits(err: Float32Array, n: number): Float32Array {
    const z = new Float32Array(n * K);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < K; c++) {
        let s = 0;
        for (let j = 0; j < T; j++) s += err[(i * K + c) * T + j] * wt[j];
        z[i * K + c] = (-cfg.scale * s) / T;
      }
    }
    return z;
  }

  const oracle = {
    numClasses: K,
    size: D,
    stochastic: cfg.noise === "fresh",
    unetCalls: 0,
    async logits(x: Float32Array, n: number) {
      const out = await model.epsLoss(rows(x, n, noiseFor()), cfg.lora);
      oracle.unetCalls += n * K * T;
      return toLogits(cfg.error === "l2" ? out.l2 : out.l1, n);
    },
    async lossGrad(x: Float32Array, n: number, loss: LogitLoss) {
      const rr = rows(x, n, noiseFor()); // the same noise for the forward and the gradient pass
      const fwd = await model.epsLoss(rr, cfg.lora);
      oracle.unetCalls += n * K * T;
      const z = toLogits(cfg.error === "l2" ? fwd.l2 : fwd.l1, n);
      const { w, loss: l } = lossWeights(z, n, K, loss);
      const { grad } = await vjpRows(rr, n, w);
      return { logits: z, loss: l, grad };
    },
    vjp(x: Float32Array, n: number, w: Float32Array) {
      return vjpRows(rows(x, n, noiseFor()), n, w);
    },
  };

  /** d(Σ w_ic z_ic)/dx with z_ic = −scale/T Σ_t wt_t err_ict: row weights −scale·w_ic·wt_t/T. */
  async function vjpRows(rr: ReturnType<typeof rows>, n: number, wz: Float32Array) {
    const w = new Float32Array(n * K * T);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < K; c++) {
        for (let j = 0; j < T; j++) {
          w[(i * K + c) * T + j] = (-cfg.scale * wz[i * K + c] * wt[j]) / T;
        }
      }
    }
    const zero = new Float32Array(w.length);
    const g = await model.epsLossVjpX(
      rr,
      cfg.error === "l2" ? w : zero,
      cfg.error === "l1" ? w : zero,
      cfg.lora,
    );
    oracle.unetCalls += n * K * T;
    // Sum the per-row input gradients back onto each image.
    const grad = new Float32Array(n * D);
    for (let i = 0; i < n; i++) {
      for (let r = i * K * T; r < (i + 1) * K * T; r++) {
        for (let p = 0; p < D; p++) grad[i * D + p] += g.gradX[r * D + p];
      }
    }
    return { logits: toLogits(cfg.error === "l2" ? g.l2 : g.l1, n), grad };
  }
  return oracle;
}
