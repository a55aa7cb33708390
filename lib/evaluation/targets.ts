/**
 * Targets and sources as dispatch tables of kinds. A *target* is anything that labels images
 * (scored by an evaluation); a *source* is something an attack can take gradients of. Today:
 * `dc` (a diffusion bundle + adapter + settings), `classifier` (a discriminative bundle) and
 * `diffpure` (purify with a diffusion bundle, then a classifier). A new kind (a latent-diffusion
 * bundle) is one new entry in each table.
 */
import { dcOracle, evenTimesteps, ownPairsOracle } from "../attacks/dc_oracle.ts";
import {
  classifierOracle,
  type GradientOracle,
  lossWeights,
  predictions,
} from "../attacks/oracle.ts";
import type { DCSettings } from "../dc_settings.ts";
import { classifyImages, weightsAt } from "../diffusion_classifier.ts";
import type { Classifier, DiffusionModel, LoraTensors } from "../model.ts";
import type { SourceSpec, TargetSpec } from "./spec.ts";
import { forwardNoise, purify, purifyBackward } from "../diffpure.ts";
import { imageSize } from "../model.ts";

/** The models a process holds, by bundle id (a worker's, the CLI's). Throws for a missing one. */
export interface ModelSet {
  diffusion(bundle: string): DiffusionModel;
  classifier(bundle: string): Classifier;
}

/** (done, total) in the target's own unit of work (UNet calls for a DC). */
export type OnProgress = (done: number, total: number) => void;

/** Something that labels images. */
export interface Target {
  readonly numClasses: number;
  predict(x: Float32Array, n: number, onProgress?: OnProgress): Promise<Int32Array>;
  /**
   * Labels under fresh noise draw `draw` (1, 2, …): present only for stochastic targets, whose
   * fixed-seed figure must be checked against fresh draws (spec §7).
   */
  predictWithDraw?(
    x: Float32Array,
    n: number,
    draw: number,
    onProgress?: OnProgress,
  ): Promise<Int32Array>;
}

type TargetOf<K extends TargetSpec["kind"]> = Extract<TargetSpec, { kind: K }>;
type SourceOf<K extends SourceSpec["kind"]> = Extract<SourceSpec, { kind: K }>;

const TARGETS: {
  [K in TargetSpec["kind"]]: (spec: TargetOf<K>, models: ModelSet, lora?: LoraTensors) => Target;
} = {
  dc(spec, models, lora) {
    const m = models.diffusion(spec.bundle);
    const labels = async (x: Float32Array, n: number, seed: number, onProgress?: OnProgress) =>
      Int32Array.from(
        (await classifyImages(m, x, n, { ...spec.settings, seed }, { lora, onProgress })).map((
          v,
        ) => v.label),
      );
    // a secret-seed target's verdicts use a draw that no attack in the evaluation uses
    const verdictSeed = spec.settings.seed + (spec.settings.seedMode === "secret" ? 1 : 0);
    return {
      numClasses: m.classNames.length,
      predict: (x, n, p) => labels(x, n, verdictSeed, p),
      predictWithDraw: (x, n, draw, p) => labels(x, n, verdictSeed + draw, p),
    };
  },
  classifier(spec, models) {
    const c = models.classifier(spec.bundle);
    const k = c.classNames.length;
    return { numClasses: k, predict: async (x, n) => predictions(await c.logits(x, n), n, k) };
  },
  diffpure(spec, models) {
    const m = models.diffusion(spec.bundle);
    const c = models.classifier(spec.classifier);
    const k = c.classNames.length;
    const labels = async (x: Float32Array, n: number, draw: number, onProgress?: OnProgress) => {
      const noise = forwardNoise(spec.seed, draw, imageSize(m.imageShape));
      const run = await purify(m, x, n, spec, noise);
      onProgress?.(n * spec.steps, n * spec.steps);
      return predictions(await c.logits(run.x0, n), n, k);
    };
    return {
      numClasses: k,
      predict: (x, n, p) => labels(x, n, 0, p),
      predictWithDraw: (x, n, draw, p) => labels(x, n, draw, p),
    };
  },
};

/**
 * Source kinds. A `dc` source differentiates −logitScale × mean error over an even grid of
 * `timesteps` in the DC settings' tRange, with their error norm and noise seed — or, with
 * estimator "own", over `timesteps` pairs drawn per call from the classifier's own grid pairs.
 */
const SOURCES: {
  [K in SourceSpec["kind"]]: (
    spec: SourceOf<K>,
    models: ModelSet,
    dc: DCSettings,
    lora?: LoraTensors,
  ) => GradientOracle;
} = {
  surrogate: (spec, models) => classifierOracle(models.classifier(spec.bundle)),
  dc: (spec, models, dc, lora) => {
    if (spec.estimator === "own") {
      return ownPairsOracle(models.diffusion(spec.bundle), dc, {
        lora: spec.adapter ? lora : undefined,
        pairsPerCall: spec.timesteps,
        scale: spec.logitScale,
        noise: spec.noise,
      });
    }
    const timesteps = evenTimesteps(spec.timesteps, dc.tRange[0], dc.tRange[1]);
    return dcOracle(models.diffusion(spec.bundle), {
      lora: spec.adapter ? lora : undefined,
      timesteps,
      weights: weightsAt(dc, timesteps),
      error: dc.error,
      scale: spec.logitScale,
      noise: spec.noise,
      seed: dc.seed,
    });
  },
  diffpure: (spec, models) => diffpureOracle(spec, models),
};

/**
 * DiffPure as a gradient oracle: every call purifies with a fresh forward-noise draw (stochastic:
 * attacks average gradients over draws with EOT) and differentiates exactly through the
 * classifier and every reverse step.
 */
function diffpureOracle(spec: SourceOf<"diffpure">, models: ModelSet): GradientOracle {
  const m = models.diffusion(spec.bundle);
  const c = models.classifier(spec.classifier);
  const K = c.classNames.length;
  const D = imageSize(m.imageShape);
  let draw = 1_000_000; // gradient draws: apart from the verdict's (0) and re-scoring's (1, 2, …)
  const purified = (x: Float32Array, n: number) =>
    purify(m, x, n, spec, forwardNoise(spec.seed, draw++, D));
  const back = async (
    run: Awaited<ReturnType<typeof purified>>,
    n: number,
    w: Float32Array,
  ) => {
    const r = await c.logitsVjpX(run.x0, w, n);
    return { logits: r.logits, grad: await purifyBackward(m, run, n, spec, r.gradX) };
  };
  return {
    numClasses: K,
    size: D,
    stochastic: true,
    logits: async (x, n) => c.logits((await purified(x, n)).x0, n),
    async lossGrad(x, n, loss) {
      const run = await purified(x, n);
      const z = await c.logits(run.x0, n);
      const { w, loss: l } = lossWeights(z, n, K, loss);
      const { grad } = await back(run, n, w);
      return { logits: z, loss: l, grad };
    },
    async vjp(x, n, w) {
      return back(await purified(x, n), n, w);
    },
  };
}

export function openTarget(spec: TargetSpec, models: ModelSet, lora?: LoraTensors): Target {
  return (TARGETS[spec.kind] as (s: TargetSpec, m: ModelSet, l?: LoraTensors) => Target)(
    spec,
    models,
    lora,
  );
}

/** The gradient oracle of a source; `dc` are the DC settings its estimate follows. */
export function openSource(
  spec: SourceSpec,
  models: ModelSet,
  dc: DCSettings,
  lora?: LoraTensors,
): GradientOracle {
  return (SOURCES[spec.kind] as (
    s: SourceSpec,
    m: ModelSet,
    d: DCSettings,
    l?: LoraTensors,
  ) => GradientOracle)(spec, models, dc, lora);
}

/** A ModelSet over maps of loaded models (the worker's and the CLI's). */
export function modelSet(
  diffusion: ReadonlyMap<string, DiffusionModel>,
  classifiers: ReadonlyMap<string, Classifier>,
): ModelSet {
  const need = <T>(m: ReadonlyMap<string, T>, id: string, what: string): T => {
    const v = m.get(id);
    if (!v) throw new Error(`this process does not hold the ${what} bundle ${id}`);
    return v;
  };
  return {
    diffusion: (id) => need(diffusion, id, "diffusion"),
    classifier: (id) => need(classifiers, id, "classifier"),
  };
}
