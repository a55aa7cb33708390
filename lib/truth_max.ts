/**
 * Truth Maximization (the paper's §3): LoRA fine-tuning of the diffusion model on adversarial
 * examples conditioned on their ground-truth class, with the plain noise-prediction loss.
 *
 * Pure algorithm: AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias-corrected
 * moments), HF's constant-with-warmup schedule (lr_k = lr·k/W for k < W, so step 0 has lr 0),
 * LoRA's initialisation (A ~ kaiming-uniform(a = √5) = U(±1/√fan_in), B = 0). Every random draw
 * comes from the portable counter RNG keyed by (seed, step), so a run resumed from a
 * checkpoint takes the same steps as one that never stopped, and PyTorch can replay a step.
 */
import { type DiffusionModel, type LoraTensors, noiseSize } from "./model.ts";
import { normal, uniform } from "./rng.ts";

export interface TMHyper {
  lr: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  adamEps: number;
  warmupSteps: number;
  batchSize: number;
  steps: number;
}

/** The paper's settings (specs/paper.md): AdamW 1e-6, (0.9, 0.999), wd 1e-2, eps 1e-8, batch 4, 100 warm-up, 3,000 steps. */
export const PAPER_TM: Readonly<TMHyper> = Object.freeze({
  lr: 1e-6,
  beta1: 0.9,
  beta2: 0.999,
  weightDecay: 1e-2,
  adamEps: 1e-8,
  warmupSteps: 100,
  batchSize: 4,
  steps: 3000,
});

/** The paper's checkpoint schedule: every 100 steps to 500, then every 1,000 (and the last). */
export function paperCheckpoints(steps: number): number[] {
  const out = new Set<number>();
  for (let s = 100; s <= Math.min(500, steps); s += 100) out.add(s);
  for (let s = 1000; s <= steps; s += 1000) out.add(s);
  out.add(steps);
  return [...out].sort((a, b) => a - b);
}

/** Stream ids of the portable RNG (one counter stream per step and purpose). */
export const TM_STREAMS = {
  batch: 0x7a000000,
  timestep: 0x7b000000,
  noise: 0x7c000000,
  init: 0x7d000000,
} as const;

export interface TMState {
  /** optimizer steps taken */
  step: number;
  lora: LoraTensors;
  m: Float32Array[];
  v: Float32Array[];
}

/** LoRA's initialisation: A (r × in) ~ U(±1/√in) (kaiming-uniform, a = √5), B = 0. */
export function initLora(layout: readonly { name: string; shape: number[] }[], seed: number) {
  return layout.map((t, i) => {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (!t.name.endsWith(".A")) return new Float32Array(size);
    const bound = 1 / Math.sqrt(t.shape[1]);
    const u = uniform(seed, TM_STREAMS.init + i, size);
    return Float32Array.from(u, (x) => (2 * x - 1) * bound);
  });
}

export function initState(
  layout: readonly { name: string; shape: number[] }[],
  seed: number,
): TMState {
  const lora = initLora(layout, seed);
  return {
    step: 0,
    lora,
    m: lora.map((t) => new Float32Array(t.length)),
    v: lora.map((t) => new Float32Array(t.length)),
  };
}

/** transformers.get_constant_schedule_with_warmup, evaluated at optimizer step k (0-based). */
export function lrAt(h: Pick<TMHyper, "lr" | "warmupSteps">, k: number): number {
  return k < h.warmupSteps ? h.lr * (k / Math.max(1, h.warmupSteps)) : h.lr;
}

/**
 * One torch.optim.AdamW step in place (float32 state as torch keeps it):
 * p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps).
 */
export function adamwStep(s: TMState, grads: Float32Array[], h: TMHyper, lr: number): void {
  const t = s.step + 1;
  const bc1 = 1 - h.beta1 ** t;
  const bc2Sqrt = Math.sqrt(1 - h.beta2 ** t);
  const stepSize = lr / bc1;
  s.lora.forEach((p, i) => {
    const g = grads[i];
    const m = s.m[i];
    const v = s.v[i];
    for (let j = 0; j < p.length; j++) {
      p[j] = p[j] * (1 - lr * h.weightDecay);
      m[j] = h.beta1 * m[j] + (1 - h.beta1) * g[j];
      v[j] = h.beta2 * v[j] + (1 - h.beta2) * g[j] * g[j];
      p[j] = p[j] - stepSize * m[j] / (Math.sqrt(v[j]) / bc2Sqrt + h.adamEps);
    }
  });
  s.step = t;
}

/** Indices of step k's batch: uniform draws with replacement from a pool of `poolSize`. */
export function batchIndices(seed: number, k: number, batchSize: number, poolSize: number) {
  return Int32Array.from(
    uniform(seed, TM_STREAMS.batch + k, batchSize),
    (u) => Math.min(poolSize - 1, Math.floor(u * poolSize)),
  );
}

/** Step k's timesteps (uniform over 0..T−1) and Gaussian noise. */
export function stepNoise(seed: number, k: number, batchSize: number, d: number, T: number) {
  return {
    t: Int32Array.from(
      uniform(seed, TM_STREAMS.timestep + k, batchSize),
      (u) => Math.min(T - 1, Math.floor(u * T)),
    ),
    eps: normal(seed, TM_STREAMS.noise + k, batchSize * d),
  };
}

/**
 * One Truth-Maximization step on an (already adversarial) batch: loss = mean over the batch of
 * ‖ε − ε_θ(x_t, t, y_true)‖² / d, gradient from the bundle's eps_loss_grad_lora graph, AdamW.
 * Returns the batch loss before the update.
 */
export async function trainStep(
  model: DiffusionModel,
  s: TMState,
  h: TMHyper,
  seed: number,
  x: Float32Array,
  y: Int32Array,
): Promise<number> {
  const B = y.length;
  const d = noiseSize(model); // the latent's size for a latent model
  const { t, eps } = stepNoise(seed, s.step, B, d, model.numTimesteps);
  const w = new Float32Array(B).fill(1 / B);
  const { l2, grads } = await model.epsLossGradLora({ x, t, eps, cls: y }, w, s.lora);
  adamwStep(s, grads, h, lrAt(h, s.step));
  return l2.reduce((a, v) => a + v, 0) / B;
}

/** Deep copy (checkpoints must not alias the live state). */
export function cloneState(s: TMState): TMState {
  return {
    step: s.step,
    lora: s.lora.map((a) => a.slice()),
    m: s.m.map((a) => a.slice()),
    v: s.v.map((a) => a.slice()),
  };
}

/** Flat float32 serialisation: [lora…, m…, v…] in layout order (sizes come from the layout). */
export function packState(s: TMState): Uint8Array {
  const parts = [...s.lora, ...s.m, ...s.v];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return new Uint8Array(out.buffer);
}

export function unpackState(
  bytes: Uint8Array,
  layout: readonly { shape: number[] }[],
  step: number,
  withOptimizer = true,
): TMState {
  const sizes = layout.map((t) => t.shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  const f = new Float32Array(bytes.slice().buffer);
  if (f.length !== (withOptimizer ? 3 : 1) * total) {
    throw new RangeError(
      `adapter state has ${f.length} floats; the bundle's LoRA layout needs ${
        (withOptimizer ? 3 : 1) * total
      }`,
    );
  }
  let o = 0;
  const take = () =>
    sizes.map((n) => {
      const a = f.slice(o, o + n);
      o += n;
      return a;
    });
  const lora = take();
  return withOptimizer ? { step, lora, m: take(), v: take() } : { step, lora, m: [], v: [] };
}
