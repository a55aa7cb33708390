/**
 * DiffPure (Nie et al., 2022) with a bundle's own diffusion model, then a classifier: diffuse the
 * input forward to t* with fresh Gaussian noise, run the reverse process back to t = 0 with the
 * model's unconditional noise prediction (its trained null class), classify the result.
 *
 * Reverse process: deterministic DDIM (η = 0) on `steps` evenly spaced timesteps from t* down
 * (t*, t*·(S−1)/S, …, t* ÷ S, then the clean image); DiffPure's own solver is the SDE, which adds
 * noise at every step — DDIM keeps the randomness to the forward draw, so EOT has one source of
 * randomness to average over. x̂₀ is not clipped between steps, only the final image to [0, 1].
 *
 * Gradients are exact through every reverse step (no BPDA): each step is
 * x' = a·x + b·ε̂(x, t), so the input gradient chains a·g + J_ε̂(x)ᵀ(b·g) through the bundle's
 * `eps_pred_vjp_x` graph, and the forward diffusion contributes 2·√ā_{t*}. Noise: one draw per
 * (seed, draw) shared by the images of a call (like the classifier's noise), so a figure does not
 * depend on how images are batched or sharded.
 */
import type { DiffusionModel, NoiseSchedule } from "./model.ts";
import { imageSize } from "./model.ts";
import { normal } from "./rng.ts";

const FORWARD_NOISE_STREAM = 0xd1ff;

export interface DiffPureSettings {
  /** diffusion depth t* (a timestep index, 1 … numTimesteps − 1) */
  tStar: number;
  /** DDIM steps from t* back to 0 (≤ t*) */
  steps: number;
}

/**
 * ā_t of a linear-β schedule: float64 betas (torch.linspace's two-sided formula) and product,
 * rounded to float32 — as the compiler's `alphas_cumprod`.
 */
export function alphasCumprod(s: NoiseSchedule): Float64Array {
  const T = s.num_timesteps;
  const out = new Float64Array(T);
  const step = T === 1 ? 0 : (s.beta_end - s.beta_start) / (T - 1);
  let prod = 1;
  for (let t = 0; t < T; t++) {
    const beta = t < T / 2 ? s.beta_start + step * t : s.beta_end - step * (T - 1 - t);
    prod *= 1 - beta;
    out[t] = Math.fround(prod);
  }
  return out;
}

/** The reverse timesteps: t*, then evenly down to t* ÷ S (the last step lands on the clean image). */
export function ddimTimesteps(p: DiffPureSettings): number[] {
  if (!Number.isInteger(p.steps) || p.steps < 1 || p.steps > p.tStar) {
    throw new RangeError(`steps must be in [1, t* = ${p.tStar}]`);
  }
  return Array.from({ length: p.steps }, (_, k) => Math.round((p.tStar * (p.steps - k)) / p.steps));
}

/**
 * The forward-process noise of draw `draw` (one image's worth, shared by the images of a call):
 * its own RNG stream under the seed, so no other (seed, draw) pair can alias it — an attack's
 * gradient draws never reproduce the verdict's noise.
 */
export function forwardNoise(seed: number, draw: number, size: number): Float32Array {
  return normal(seed, (FORWARD_NOISE_STREAM + draw) >>> 0, size);
}

export interface Purified {
  /** n × D images in [0, 1] */
  x0: Float32Array;
  /** the states x_k entering each reverse step (for the backward pass) */
  states: Float32Array[];
  /** the final model-space image before the clamp */
  y0: Float32Array;
}

function need(model: DiffusionModel) {
  if (!model.epsPred || !model.epsPredVjpX) {
    throw new Error(
      `${model.id} has no purification graphs (eps_pred, eps_pred_vjp_x): ` +
        "python -m tmdc_compiler.add_purifier_graphs adds them",
    );
  }
  return { pred: model.epsPred, vjp: model.epsPredVjpX };
}

/** Step coefficients x' = a·x + b·ε̂ from ā_t to ā_{t'} (ā = 1 after the last step). */
function coefficients(abar: Float64Array, ts: number[]) {
  return ts.map((t, k) => {
    const at = abar[t];
    const an = k + 1 < ts.length ? abar[ts[k + 1]] : 1;
    return {
      a: Math.sqrt(an) / Math.sqrt(at),
      b: Math.sqrt(1 - an) - (Math.sqrt(an) * Math.sqrt(1 - at)) / Math.sqrt(at),
    };
  });
}

/** Purify n images (n × D in [0, 1]) with forward noise `noise` (D values). */
export async function purify(
  model: DiffusionModel,
  x01: Float32Array,
  n: number,
  p: DiffPureSettings,
  noise: Float32Array,
): Promise<Purified> {
  const { pred } = need(model);
  const D = imageSize(model.imageShape);
  if (x01.length !== n * D || noise.length !== D) throw new RangeError("purify: bad shapes");
  const abar = alphasCumprod(model.schedule);
  const ts = ddimTimesteps(p);
  const coef = coefficients(abar, ts);
  const sa = Math.sqrt(abar[ts[0]]), sn = Math.sqrt(1 - abar[ts[0]]);
  let x = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < D; j++) x[i * D + j] = sa * (2 * x01[i * D + j] - 1) + sn * noise[j];
  }
  const states: Float32Array[] = [];
  const cls = new Int32Array(n).fill(model.nullClass);
  for (let k = 0; k < ts.length; k++) {
    states.push(x);
    const e = await pred({ xt: x, t: new Int32Array(n).fill(ts[k]), cls });
    const next = new Float32Array(n * D);
    const { a, b } = coef[k];
    for (let q = 0; q < next.length; q++) next[q] = a * x[q] + b * e[q];
    x = next;
  }
  const x0 = new Float32Array(n * D);
  for (let q = 0; q < x0.length; q++) x0[q] = Math.min(1, Math.max(0, (x[q] + 1) / 2));
  return { x0, states, y0: x };
}

/** d L / d x01 from d L / d x0 (the purified image), through every reverse step. */
export async function purifyBackward(
  model: DiffusionModel,
  run: Purified,
  n: number,
  p: DiffPureSettings,
  gradX0: Float32Array,
): Promise<Float32Array> {
  const { vjp } = need(model);
  const D = imageSize(model.imageShape);
  const abar = alphasCumprod(model.schedule);
  const ts = ddimTimesteps(p);
  const coef = coefficients(abar, ts);
  // the clamp to [0, 1]: gradient 1/2 inside, 0 where it clipped
  let g = new Float32Array(n * D);
  for (let q = 0; q < g.length; q++) {
    const v = (run.y0[q] + 1) / 2;
    g[q] = v > 0 && v < 1 ? 0.5 * gradX0[q] : 0;
  }
  const cls = new Int32Array(n).fill(model.nullClass);
  for (let k = ts.length - 1; k >= 0; k--) {
    const { a, b } = coef[k];
    const w = new Float32Array(g.length);
    for (let q = 0; q < w.length; q++) w[q] = b * g[q];
    const { gradX } = await vjp({ xt: run.states[k], t: new Int32Array(n).fill(ts[k]), cls }, w);
    const prev = new Float32Array(g.length);
    for (let q = 0; q < prev.length; q++) prev[q] = a * g[q] + gradX[q];
    g = prev;
  }
  const s = 2 * Math.sqrt(abar[ts[0]]);
  for (let q = 0; q < g.length; q++) g[q] *= s;
  return g;
}
