/**
 * A Truth-Maximization run: batches from the training split, each attacked online on a source
 * model (the paper: AutoAttack plus Linf 0.05 on the surrogate), one AdamW step per batch,
 * checkpoints on a schedule, each checkpoint scored on a held-out validation subset under the
 * same attack. Transport-free: the worker and the CLI both call `runFinetune` and persist the
 * checkpoints it hands them.
 */
import { runAttack } from "./attacks/registry.ts";
import type { AttackConfig } from "./attacks/config.ts";
import type { GradientOracle } from "./attacks/oracle.ts";
import { classifyImages } from "./diffusion_classifier.ts";
import type { DCSettings } from "./dc_settings.ts";
import type { LabelledImages } from "./fashion_mnist.ts";
import { gather, seededSubset } from "./fashion_mnist.ts";
import type { DiffusionModel } from "./model.ts";
import { batchIndices, cloneState, type TMHyper, type TMState, trainStep } from "./truth_max.ts";

export interface FinetuneSpec {
  hyper: TMHyper;
  seed: number;
  /** online attack on the source per batch; null trains on clean images (an ablation) */
  attack: AttackConfig | null;
  checkpoints: number[];
  validation: { n: number; seed: number };
  dc: DCSettings;
  /**
   * 0: attack every batch online (the paper's code). P > 0: attack a seeded pool of P training
   * images once, in large batches, and draw every batch from it ("a stored adversarial set").
   * With a fixed surrogate both give the same kind of example; the pool is ~50× cheaper on
   * CPU because per-call overhead dominates batches of 4.
   */
  pool?: number;
}

export interface CheckpointInfo {
  step: number;
  loss: number;
  validation: { n: number; clean_accuracy: number; robust_accuracy: number };
}

export interface FinetuneHooks {
  onCheckpoint(state: TMState, info: CheckpointInfo): Promise<void>;
  onProgress?(step: number, loss: number): void | Promise<void>;
}

/** Per-step attack seed: distinct for every (run seed, step). */
export const attackSeed = (seed: number, step: number) => ((seed * 1_000_003) ^ step) >>> 0;

/** The validation adversarial set: the first n of a seeded subset of the validation split. */
export async function validationSet(
  val: LabelledImages,
  spec: FinetuneSpec,
  source: GradientOracle,
  shape: DiffusionModel["imageShape"],
) {
  const set = gather(val, seededSubset(val.n, spec.validation.n, spec.validation.seed));
  const xAdv = spec.attack
    ? (await runAttack(source, set.images, set.labels, spec.attack, shape)).xAdv
    : set.images;
  return { ...set, xAdv };
}

/** Clean and robust accuracy of the DC with `lora` on a validation set (robust = right on both). */
export async function scoreAdapter(
  model: DiffusionModel,
  dc: DCSettings,
  set: { images: Float32Array; xAdv: Float32Array; labels: Int32Array; n: number },
  lora: TMState["lora"] | undefined,
) {
  const clean = await classifyImages(model, set.images, set.n, dc, { lora });
  const adv = await classifyImages(model, set.xAdv, set.n, dc, { lora });
  let c = 0;
  let r = 0;
  for (let i = 0; i < set.n; i++) {
    const ok = clean[i].label === set.labels[i];
    c += ok ? 1 : 0;
    r += ok && adv[i].label === set.labels[i] ? 1 : 0;
  }
  return { n: set.n, clean_accuracy: c / set.n, robust_accuracy: r / set.n };
}

export async function runFinetune(
  model: DiffusionModel,
  source: GradientOracle,
  train: LabelledImages,
  valSet: Awaited<ReturnType<typeof validationSet>>,
  spec: FinetuneSpec,
  state: TMState,
  hooks: FinetuneHooks,
): Promise<TMState> {
  const D = train.images.length / train.n;
  const B = spec.hyper.batchSize;
  const pool = spec.pool ? await adversarialPool(source, train, spec, model.imageShape) : null;
  let loss = NaN;
  while (state.step < spec.hyper.steps) {
    const k = state.step;
    const from = pool ?? train;
    const batch = gather(from, batchIndices(spec.seed, k, B, from.n));
    const x = pool ? batch.images : spec.attack
      ? (await runAttack(
        source,
        batch.images,
        batch.labels,
        { ...spec.attack, seed: attackSeed(spec.seed, k) },
        model.imageShape,
      )).xAdv
      : batch.images;
    if (x.length !== B * D) throw new Error("attack returned the wrong number of pixels");
    loss = await trainStep(model, state, spec.hyper, spec.seed, x, batch.labels);
    await hooks.onProgress?.(state.step, loss);
    if (spec.checkpoints.includes(state.step)) {
      const validation = await scoreAdapter(model, spec.dc, valSet, state.lora);
      await hooks.onCheckpoint(cloneState(state), { step: state.step, loss, validation });
    }
  }
  return state;
}

/** A seeded subset of the training split, attacked once (see FinetuneSpec.pool). */
export async function adversarialPool(
  source: GradientOracle,
  train: LabelledImages,
  spec: FinetuneSpec,
  shape: DiffusionModel["imageShape"],
  chunk = 256,
): Promise<LabelledImages> {
  const set = gather(train, seededSubset(train.n, spec.pool!, spec.seed));
  if (!spec.attack) return set;
  const D = set.images.length / set.n;
  const images = new Float32Array(set.images.length);
  for (let i = 0; i < set.n; i += chunk) {
    const m = Math.min(chunk, set.n - i);
    const out = await runAttack(
      source,
      set.images.subarray(i * D, (i + m) * D),
      set.labels.subarray(i, i + m),
      { ...spec.attack, seed: attackSeed(spec.seed, 0x80000000 + i) },
      shape,
    );
    images.set(out.xAdv, i * D);
  }
  return { images, labels: set.labels, n: set.n };
}

/** The best checkpoint: highest validation robust accuracy, the earliest on ties. */
export function bestCheckpoint<T extends { step: number; validation: { robust_accuracy: number } }>(
  cps: T[],
): T | undefined {
  return [...cps].sort((a, b) =>
    b.validation.robust_accuracy - a.validation.robust_accuracy || a.step - b.step
  )[0];
}
