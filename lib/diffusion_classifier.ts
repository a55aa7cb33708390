/**
 * The diffusion classifier (the paper's Algorithm 1, inference), as Li et al.'s
 * `eval_prob_adaptive` does it, so it agrees with `compiler/tmdc_compiler/reference_dc.py`:
 *
 * - a paired Monte Carlo estimate: one noise draw per timestep-grid index, shared by all
 *   classes (and by all images), from the portable RNG;
 * - timesteps on an even grid (or stratified-random inside each grid cell);
 * - staged elimination: stage k scores the remaining classes on Li's subgrid of size
 *   `nSamples` (minus timesteps already scored) and keeps the `keep` classes with the
 *   lowest mean error over all their timesteps.
 */

import { type DiffusionModel, imageSize, type LoraTensors, noiseSize } from "./model.ts";
import { normal, uniform } from "./rng.ts";
import { checkSettings, type DCSettings } from "./dc_settings.ts";
import { ClassRace, timestepOrder } from "./class_pruning.ts";

const STRATIFIED_STREAM = 0x5eed;

export function fullGrid(s: DCSettings): Int32Array {
  const [lo, hi] = s.tRange;
  const step = Math.floor((hi - lo) / s.gridSize);
  if (step < 1) throw new RangeError("gridSize is larger than the timestep range");
  const out = new Int32Array(s.gridSize);
  const u = s.timesteps === "stratified" ? uniform(s.seed, STRATIFIED_STREAM, s.gridSize) : null;
  for (let j = 0; j < s.gridSize; j++) {
    out[j] = u ? lo + j * step + Math.floor(u[j] * step) : lo + Math.floor(step / 2) + j * step;
  }
  return out;
}

/** Full-grid indices newly scored at each stage (Li et al.'s subgrid rule). */
export function stageIndices(s: DCSettings): number[][] {
  const seen = new Set<number>();
  const n = s.gridSize;
  return s.stages.map((st) => {
    const stride = Math.max(Math.floor(n / st.nSamples), 1);
    const idx: number[] = [];
    for (
      let i = Math.floor(Math.floor(n / st.nSamples) / 2);
      i < n && idx.length < st.nSamples;
      i += stride
    ) {
      idx.push(i);
    }
    const fresh = idx.filter((i) => !seen.has(i));
    fresh.forEach((i) => seen.add(i));
    return fresh;
  });
}

/**
 * UNet evaluations per image for a schedule and class count (for sequential pruning, which
 * stops early on most images, the budget: every class on maxTimesteps).
 */
export function unetCalls(s: DCSettings, numClasses: number): number {
  if (s.sequential) return numClasses * s.sequential.maxTimesteps;
  let calls = 0;
  let remaining = numClasses;
  stageIndices(s).forEach((idx, k) => {
    calls += remaining * idx.length;
    remaining = Math.min(remaining, s.stages[k].keep);
  });
  return calls;
}

/** An error as the classifier sums it: times its grid index's weight when there are weights. */
export function weighted(e: number, weights: readonly number[] | undefined, j: number): number {
  return weights ? e * weights[j] : e;
}

/**
 * The settings' weight for arbitrary timesteps: that of the grid cell each falls in (an
 * adaptive attack's estimate may use another count of timesteps than the classifier's grid).
 */
export function weightsAt(s: DCSettings, timesteps: readonly number[]): number[] | undefined {
  const w = s.weights;
  if (!w) return undefined;
  const [lo, hi] = s.tRange;
  const step = Math.floor((hi - lo) / s.gridSize);
  return timesteps.map((t) =>
    w[Math.min(s.gridSize - 1, Math.max(0, Math.floor((t - lo) / step)))]
  );
}

const noiseCache = new Map<string, Float32Array[]>();

/** One noise image per full-grid index: normal(seed, j, C·H·W). Cached per (seed, grid, size). */
export function noiseBank(seed: number, gridSize: number, size: number): Float32Array[] {
  const key = `${seed}:${gridSize}:${size}`;
  let bank = noiseCache.get(key);
  if (!bank) {
    bank = Array.from({ length: gridSize }, (_, j) => normal(seed, j, size));
    if (noiseCache.size > 8) noiseCache.clear();
    noiseCache.set(key, bank);
  }
  return bank;
}

export interface ClassEvidence {
  /** Σ error over scored timesteps, per class */
  errorSum: Float64Array;
  errorSumSq: Float64Array;
  count: Int32Array;
}

export interface DCResult extends ClassEvidence {
  label: number;
  meanError: Float64Array;
  stdError: Float64Array;
  posterior: Float64Array;
  unetCalls: number;
  /** classes alive after each stage (sequential pruning: after each round) */
  survivors: number[][];
  /** why scoring stopped: the staged schedule ran out, one class was left, or the budget ran out */
  stop: "stages" | "decided" | "budget";
  /** sequential pruning: timesteps scored when each class left the race (null: never left) */
  exitAt?: (number | null)[];
}

/**
 * Means and standard errors for every class, and the posterior over `finalists`: the
 * classes scored in the last stage, which share exactly the same timesteps and noise, so
 * their means are comparable. Classes eliminated earlier were scored on fewer timesteps;
 * their posterior is 0 (they lost a paired comparison), their means stay reported.
 */
export function summarize(
  ev: ClassEvidence,
  scale: number,
  finalists: readonly number[],
): Omit<DCResult, "label" | "unetCalls" | "survivors" | "stop" | "exitAt"> {
  const k = ev.count.length;
  const meanError = new Float64Array(k);
  const stdError = new Float64Array(k);
  for (let c = 0; c < k; c++) {
    const n = Math.max(ev.count[c], 1);
    meanError[c] = ev.errorSum[c] / n;
    const v = Math.max(ev.errorSumSq[c] / n - meanError[c] ** 2, 0) * n / Math.max(n - 1, 1);
    stdError[c] = Math.sqrt(v / n);
  }
  let max = -Infinity;
  for (const c of finalists) max = Math.max(max, -meanError[c] * scale);
  const posterior = new Float64Array(k);
  let z = 0;
  for (const c of finalists) z += posterior[c] = Math.exp(-meanError[c] * scale - max);
  for (const c of finalists) posterior[c] /= z;
  return { ...ev, meanError, stdError, posterior };
}

/** Model rows for (image, class, grid index) triples: the image, its grid timestep and noise. */
export function gridRows(
  images: Float32Array,
  D: number,
  grid: Int32Array,
  noise: Float32Array[],
  triples: readonly (readonly [number, number, number])[],
) {
  const B = triples.length;
  const E = noise[0]?.length ?? D; // the noise's own size: the latent's, for a latent model
  const x = new Float32Array(B * D);
  const eps = new Float32Array(B * E);
  const t = new Int32Array(B);
  const cls = new Int32Array(B);
  triples.forEach(([i, c, j], r) => {
    x.set(images.subarray(i * D, (i + 1) * D), r * D);
    eps.set(noise[j], r * E);
    t[r] = grid[j];
    cls[r] = c;
  });
  return { x, t, eps, cls };
}

export interface ClassifyOptions {
  lora?: LoraTensors;
  /** rows per model call (rows of several images share a call) */
  batchRows?: number;
  onProgress?: (doneCalls: number, totalCalls: number) => void;
}

/** Classify `n` images (n × C·H·W floats in [0, 1]). */
export async function classifyImages(
  model: DiffusionModel,
  images: Float32Array,
  n: number,
  s: DCSettings,
  opts: ClassifyOptions = {},
): Promise<DCResult[]> {
  const K = model.classNames.length;
  checkSettings(s, K, model.numTimesteps);
  if (s.sequential) return classifySequential(model, images, n, s, opts);
  const D = imageSize(model.imageShape);
  if (images.length !== n * D) {
    throw new RangeError(`expected ${n}×${D} pixels, got ${images.length}`);
  }
  const grid = fullGrid(s);
  const noise = noiseBank(s.seed, s.gridSize, noiseSize(model));
  const batchRows = opts.batchRows ?? 512;
  const ev: ClassEvidence[] = Array.from({ length: n }, () => ({
    errorSum: new Float64Array(K),
    errorSumSq: new Float64Array(K),
    count: new Int32Array(K),
  }));
  const calls = new Int32Array(n);
  let remaining: number[][] = Array.from(
    { length: n },
    () => Array.from({ length: K }, (_, c) => c),
  );
  const survivors: number[][][] = Array.from({ length: n }, () => []);
  let finalists: number[][] = remaining;
  const stages = stageIndices(s);
  const total = n * unetCalls(s, K);
  let done = 0;

  for (let k = 0; k < stages.length; k++) {
    const idx = stages[k];
    // Rows in (image, class, grid index) order: the reference's order, so sums agree.
    const rows: [number, number, number][] = [];
    for (let i = 0; i < n; i++) {
      for (const c of remaining[i]) for (const j of idx) rows.push([i, c, j]);
    }
    for (let start = 0; start < rows.length; start += batchRows) {
      const chunk = rows.slice(start, start + batchRows);
      const B = chunk.length;
      const out = await model.epsLoss(gridRows(images, D, grid, noise, chunk), opts.lora);
      const err = s.error === "l2" ? out.l2 : out.l1;
      chunk.forEach(([i, c, j], r) => {
        const e = weighted(err[r], s.weights, j);
        ev[i].errorSum[c] += e;
        ev[i].errorSumSq[c] += e * e;
        ev[i].count[c] += 1;
        calls[i] += 1;
      });
      done += B;
      opts.onProgress?.(done, total);
    }
    if (k === stages.length - 1) finalists = remaining.map((alive) => alive.slice());
    remaining = remaining.map((alive, i) => {
      const ranked = alive
        .map((c) => ({ c, m: ev[i].errorSum[c] / ev[i].count[c] }))
        .sort((a, b) => a.m - b.m) // stable: ties keep the lower class first
        .slice(0, s.stages[k].keep)
        .map((r) => r.c);
      survivors[i].push(ranked);
      return ranked;
    });
  }
  return ev.map((e, i) => ({
    ...summarize(e, s.posteriorScale, finalists[i]),
    label: remaining[i][0],
    unetCalls: calls[i],
    survivors: survivors[i],
    stop: "stages" as const,
  }));
}

/**
 * Sequential class pruning (lib/class_pruning.ts): rounds of `batch` timesteps in the seeded
 * order for every class still in each image's race; rows of all images share model calls.
 */
async function classifySequential(
  model: DiffusionModel,
  images: Float32Array,
  n: number,
  s: DCSettings,
  opts: ClassifyOptions,
): Promise<DCResult[]> {
  const K = model.classNames.length;
  const D = imageSize(model.imageShape);
  if (images.length !== n * D) {
    throw new RangeError(`expected ${n}×${D} pixels, got ${images.length}`);
  }
  const policy = s.sequential!;
  const grid = fullGrid(s);
  const noise = noiseBank(s.seed, s.gridSize, noiseSize(model));
  const order = timestepOrder(s.gridSize, policy.orderSeed);
  const races = Array.from({ length: n }, () => new ClassRace(K, policy, order));
  const batchRows = opts.batchRows ?? 512;
  // the budget, shrinking as classes leave: done + what the races still alive could spend
  let total = n * unetCalls(s, K);
  const budgetLeft = () =>
    races.reduce(
      (a, r) =>
        a +
        (r.stop ? 0 : r.alive.length * (Math.min(policy.maxTimesteps, order.length) - r.scored)),
      0,
    );
  let done = 0;
  for (;;) {
    const plan = races.map((r) => r.next());
    // Rows in (image, class, grid index) order, as the staged engine and the reference.
    const rows: [number, number, number][] = [];
    plan.forEach((js, i) => {
      if (js) { for (const c of races[i].alive) for (const j of js) rows.push([i, c, j]); }
    });
    if (rows.length === 0) break;
    for (let start = 0; start < rows.length; start += batchRows) {
      const chunk = rows.slice(start, start + batchRows);
      const B = chunk.length;
      const out = await model.epsLoss(gridRows(images, D, grid, noise, chunk), opts.lora);
      const err = s.error === "l2" ? out.l2 : out.l1;
      chunk.forEach(([i, c, j], r) => races[i].record(c, weighted(err[r], s.weights, j)));
      done += B;
      opts.onProgress?.(done, total);
    }
    plan.forEach((js, i) => js && races[i].decide(js.length));
    total = done + budgetLeft();
  }
  opts.onProgress?.(done, done);
  return races.map((race) => raceResult(race, s.posteriorScale));
}

/** A finished race as a verdict: means over each class's scored timesteps, posterior over the last alive. */
export function raceResult(race: ClassRace, scale: number): DCResult {
  const K = race.numClasses;
  const ev: ClassEvidence = {
    errorSum: new Float64Array(K),
    errorSumSq: new Float64Array(K),
    count: new Int32Array(K),
  };
  race.errors.forEach((e, c) => {
    for (const v of e) {
      ev.errorSum[c] += v;
      ev.errorSumSq[c] += v * v;
    }
    ev.count[c] = e.length;
  });
  return {
    ...summarize(ev, scale, race.alive),
    posterior: sharedPrefixPosterior(race.errors, scale),
    label: race.leader(),
    unetCalls: race.errors.reduce((a, e) => a + e.length, 0),
    survivors: race.rounds,
    stop: race.stop ?? "budget",
    exitAt: race.exitAt.slice(),
  };
}

/**
 * The posterior of a race: softmax(−mean error × scale) over every class, each mean over the
 * timesteps all classes were scored on (the first min(exit point) of the order, shared draws).
 * A race that ends with one class left would otherwise claim certainty (posterior 1) whether
 * it was right or not.
 */
export function sharedPrefixPosterior(errors: readonly (readonly number[])[], scale: number) {
  const m = Math.min(...errors.map((e) => e.length));
  const z = errors.map((e) => {
    let s = 0;
    for (let k = 0; k < m; k++) s += e[k];
    return -(s / m) * scale;
  });
  const max = Math.max(...z);
  const p = z.map((v) => Math.exp(v - max));
  const total = p.reduce((a, v) => a + v, 0);
  return Float64Array.from(p, (v) => v / total);
}
