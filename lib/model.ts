/**
 * The small interface through which every algorithm in lib/ reaches a model
 * (DESIGN.md §2). Implementations: the ONNX Runtime adapter in gpu-worker/onnx_model.ts.
 *
 * A "row" is one (image, timestep, noise, class) tuple; images are float32 NCHW in the
 * bundle's value range ([0, 1] for the embedded default), flattened row after row.
 */

export interface ImageShape {
  channels: number;
  height: number;
  width: number;
}

export function imageSize(s: ImageShape): number {
  return s.channels * s.height * s.width;
}

/** "C×H×W", as error messages name a shape. */
export function shapeText(s: ImageShape): string {
  return `${s.channels}×${s.height}×${s.width}`;
}

/**
 * The size of one row's noise: the diffusion's own space — the image for pixel models, the
 * VAE latent for latent ones (Stable Diffusion: 4 × 64 × 64 for a 512 px input).
 */
export function noiseSize(m: { noiseShape: ImageShape }): number {
  return imageSize(m.noiseShape);
}

/** LoRA tensors in the bundle's layout order (A then B for each target). */
export type LoraTensors = Float32Array[];

export interface EpsRows {
  /** rows × C·H·W images in [0, 1] */
  x: Float32Array;
  /** timestep per row, 0 ≤ t < numTimesteps */
  t: Int32Array;
  /** rows × noiseSize(model) Gaussian noise (the image's size, or the latent's) */
  eps: Float32Array;
  /** class per row; `nullClass` is the unconditional embedding */
  cls: Int32Array;
  /**
   * which of the caller's images each row belongs to (optional): a latent model may pool the
   * input gradient of consecutive rows with the same index (see epsLossVjpX). Rows without it
   * are never pooled — two different images may have identical pixels.
   */
  image?: Int32Array;
}

export interface EpsLosses {
  /** per-row mean squared noise-prediction error */
  l2: Float32Array;
  /** per-row mean absolute noise-prediction error */
  l1: Float32Array;
}

/**
 * The forward process's noise schedule, as the bundle manifest says: linear β, or Stable
 * Diffusion's scaled-linear β (√β linear).
 */
export interface NoiseSchedule {
  kind: "ddpm_linear" | "scaled_linear";
  num_timesteps: number;
  beta_start: number;
  beta_end: number;
}

/** Noisy inputs in model space: x_t = √ā·(2x − 1) + √(1 − ā)·ε, one timestep and class per row. */
export interface NoisyRows {
  xt: Float32Array;
  t: Int32Array;
  cls: Int32Array;
}

export interface DiffusionModel {
  readonly id: string;
  /** the input image (what attacks perturb and users upload) */
  readonly imageShape: ImageShape;
  /**
   * where the diffusion runs and its noise lives: `imageShape` for pixel models, the latent
   * for latent ones (whose graphs encode the image first; gradients still reach the image)
   */
  readonly noiseShape: ImageShape;
  /** true when epsLossVjpX pools the gradient of rows with the same `image` index (see there) */
  readonly poolsImageGradients?: boolean;
  readonly classNames: readonly string[];
  readonly nullClass: number;
  readonly numTimesteps: number;
  readonly loraLayout: readonly { name: string; shape: number[] }[];
  /** Per-row losses; `lora` absent = base model. Any number of rows. */
  epsLoss(rows: EpsRows, lora?: LoraTensors): Promise<EpsLosses>;
  /**
   * Losses and d(Σ wL2·l2 + wL1·l1)/dx for every row. Consecutive rows with the same
   * `rows.image` index may share their gradient (a latent model back-propagates through its
   * encoder once per run of them and puts the sum on the run's first row, zeros on the others):
   * a caller that sets `image` uses sums over each image's rows, never a single row's gradient.
   */
  epsLossVjpX(
    rows: EpsRows,
    wL2: Float32Array,
    wL1: Float32Array,
    lora?: LoraTensors,
  ): Promise<EpsLosses & { gradX: Float32Array }>;
  /** the forward process's schedule (purification needs its ā) */
  readonly schedule: NoiseSchedule;
  /**
   * The base model's noise prediction ε̂(x_t, t, class) and d(Σ w·ε̂)/dx_t — present only when
   * the bundle has the purification graphs (`eps_pred`, `eps_pred_vjp_x`).
   */
  epsPred?(rows: NoisyRows): Promise<Float32Array>;
  epsPredVjpX?(
    rows: NoisyRows,
    w: Float32Array,
  ): Promise<{ eps: Float32Array; gradX: Float32Array }>;
  /** l2 and d(Σ w·l2)/d(each LoRA tensor). */
  epsLossGradLora(
    rows: EpsRows,
    w: Float32Array,
    lora: LoraTensors,
  ): Promise<{ l2: Float32Array; grads: Float32Array[] }>;
}

/** A discriminative classifier (attack surrogate). */
export interface Classifier {
  readonly id: string;
  readonly imageShape: ImageShape;
  readonly classNames: readonly string[];
  logits(x: Float32Array, n: number): Promise<Float32Array>;
  /** logits and d(Σ w·logits)/dx, w: n × K */
  logitsVjpX(
    x: Float32Array,
    w: Float32Array,
    n: number,
  ): Promise<{ logits: Float32Array; gradX: Float32Array }>;
}
