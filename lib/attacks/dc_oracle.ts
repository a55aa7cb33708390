/**
 * The diffusion classifier as a differentiable model for *adaptive* attacks: logits
 * z_c = −scale · mean_t err(x, t, ε_t, c) over a fixed set of timesteps and all classes
 * (staged elimination is not differentiable, so the attack sees the full estimate), and
 * input gradients through the bundle's `eps_loss_vjp_x` graph.
 *
 * Noise modes: "fixed" draws ε_t once (the classifier's own portable noise), making the
 * classifier deterministic so every attack applies unchanged; "fresh" draws new noise at
 * every call (stochastic; pair it with EOT).
 *
 * With the classifier's own grid as `timesteps` and its seed (`ownPairsOracle`), "fixed" noise
 * is exactly the classifier's (t_j, ε_j) pairs: noise j is normal(seed, j), as `noiseBank`.
 * `pairsPerCall` m < T scores a fresh uniform subset of m pairs per call (without replacement):
 * the subset mean is an unbiased estimate of the mean over all T, so its logits and every
 * fixed-weight VJP are unbiased at m/T of the cost (the loss gradient of a nonlinear loss is
 * not exactly: the attack's final point is always checked on the real classifier).
 */
import type { DCSettings } from "../dc_settings.ts";
import { fullGrid } from "../diffusion_classifier.ts";
import type { DiffusionModel, LoraTensors } from "../model.ts";
import { imageSize, noiseSize } from "../model.ts";
import { normal, PortableRandom } from "../rng.ts";
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
  /** pairs scored per call, a fresh uniform subset of the timesteps; absent or ≥ T: all */
  pairsPerCall?: number;
  /** seed of the subset draws (default: `seed`) */
  subsetSeed?: number;
}

const SUBSET_STREAM = 0x5b5e;

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
  const E = noiseSize(model); // the latent's size for a latent model
  const T = cfg.timesteps.length;
  const wt = cfg.weights ?? Array(T).fill(1);
  if (wt.length !== T) throw new RangeError(`${wt.length} weights for ${T} timesteps`);
  const m = Math.min(T, Math.max(1, cfg.pairsPerCall ?? T));
  if (!Number.isInteger(m)) {
    throw new RangeError(`pairsPerCall ${cfg.pairsPerCall} is not an integer`);
  }
  const subsets = new PortableRandom(cfg.subsetSeed ?? cfg.seed, SUBSET_STREAM);
  const all = Array.from({ length: T }, (_, j) => j);
  /** the pair indices one call scores: all, or a uniform m-subset (partial Fisher–Yates) */
  const pick = (): number[] => {
    if (m === T) return all;
    const a = all.slice();
    for (let k = 0; k < m; k++) {
      const r = k + Math.floor(subsets.uniform() * (T - k));
      [a[k], a[r]] = [a[r], a[k]];
    }
    return a.slice(0, m).sort((p, q) => p - q);
  };
  let draw = 0;
  const fixed = cfg.timesteps.map((_, j) => normal(cfg.seed, j, E));
  /** the noise of each picked pair: the fixed draw, or a fresh one per call */
  const noiseFor = (idx: number[]) => {
    if (cfg.noise === "fixed") return idx.map((j) => fixed[j]);
    draw++;
    return idx.map((j) => normal(cfg.seed + draw * 0x9e37, j, E));
  };
  const batch = () => {
    const idx = pick();
    return { idx, eps: noiseFor(idx) };
  };

  /** rows (image i, class c, picked pair j) in that order */
  function rows(x: Float32Array, n: number, pairs: { idx: number[]; eps: Float32Array[] }) {
    const { idx, eps } = pairs;
    const P = idx.length;
    const B = n * K * P;
    const xr = new Float32Array(B * D);
    const er = new Float32Array(B * E);
    const t = new Int32Array(B);
    const cls = new Int32Array(B);
    const image = new Int32Array(B); // lets a latent model pool its encoder pass per image
    let r = 0;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < K; c++) {
        for (let j = 0; j < P; j++, r++) {
          xr.set(x.subarray(i * D, (i + 1) * D), r * D);
          er.set(eps[j], r * E);
          t[r] = cfg.timesteps[idx[j]];
          cls[r] = c;
          image[r] = i;
        }
      }
    }
    return { x: xr, eps: er, t, cls, image, idx };
  }

  function toLogits(err: Float32Array, n: number, idx: number[]): Float32Array {
    const P = idx.length;
    const z = new Float32Array(n * K);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < K; c++) {
        let s = 0;
        for (let j = 0; j < P; j++) s += err[(i * K + c) * P + j] * wt[idx[j]];
        z[i * K + c] = (-cfg.scale * s) / P;
      }
    }
    return z;
  }

  const oracle = {
    numClasses: K,
    size: D,
    stochastic: cfg.noise === "fresh" || m < T,
    /** pairs scored per call (m ≤ T) */
    pairsPerCall: m,
    unetCalls: 0,
    async logits(x: Float32Array, n: number) {
      const rr = rows(x, n, batch());
      const out = await model.epsLoss(rr, cfg.lora);
      oracle.unetCalls += n * K * m;
      return toLogits(cfg.error === "l2" ? out.l2 : out.l1, n, rr.idx);
    },
    async lossGrad(x: Float32Array, n: number, loss: LogitLoss) {
      // the same pairs and noise for the forward and the gradient pass
      const rr = rows(x, n, batch());
      const fwd = await model.epsLoss(rr, cfg.lora);
      oracle.unetCalls += n * K * m;
      const z = toLogits(cfg.error === "l2" ? fwd.l2 : fwd.l1, n, rr.idx);
      const { w, loss: l } = lossWeights(z, n, K, loss);
      const { grad } = await vjpRows(rr, n, w);
      return { logits: z, loss: l, grad };
    },
    vjp(x: Float32Array, n: number, w: Float32Array) {
      return vjpRows(rows(x, n, batch()), n, w);
    },
  };

  /** d(Σ w_ic z_ic)/dx with z_ic = −scale/P Σ_j wt_j err_icj: row weights −scale·w_ic·wt_j/P. */
  async function vjpRows(rr: ReturnType<typeof rows>, n: number, wz: Float32Array) {
    const P = rr.idx.length;
    const w = new Float32Array(n * K * P);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < K; c++) {
        for (let j = 0; j < P; j++) {
          w[(i * K + c) * P + j] = (-cfg.scale * wz[i * K + c] * wt[rr.idx[j]]) / P;
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
    oracle.unetCalls += n * K * P;
    // Sum the per-row input gradients back onto each image.
    const grad = new Float32Array(n * D);
    for (let i = 0; i < n; i++) {
      for (let r = i * K * P; r < (i + 1) * K * P; r++) {
        for (let p = 0; p < D; p++) grad[i * D + p] += g.gradX[r * D + p];
      }
    }
    return { logits: toLogits(cfg.error === "l2" ? g.l2 : g.l1, n, rr.idx), grad };
  }
  return oracle;
}

/**
 * The exact white-box oracle of a DC: its own grid timesteps, its own noise (grid index j draws
 * normal(seed, j), as the classifier), its error norm and weights; `pairsPerCall` of them per
 * call. Fixed noise attacks the deterministic classifier the settings define; "fresh" noise
 * attacks a secret-seed deployment (EOT over draws the attacker cannot know).
 */
export function ownPairsOracle(
  model: DiffusionModel,
  s: DCSettings,
  opts: {
    pairsPerCall?: number;
    scale: number;
    noise: "fixed" | "fresh";
    lora?: LoraTensors;
    subsetSeed?: number;
  },
) {
  return dcOracle(model, {
    timesteps: Array.from(fullGrid(s)),
    weights: s.weights,
    error: s.error,
    seed: s.seed,
    ...opts,
  });
}
