/**
 * The full error grid of the diffusion classifier: for each image, every (class, grid timestep)
 * noise-prediction error, L1 and L2 from the same UNet pass, with the classifier's own noise
 * (one draw per grid index, shared by all classes). Stored once, it lets any schedule that scores
 * a subset of that grid be simulated offline without another UNet call; `simulateStaged`
 * reproduces `classifyImages` exactly (same sums in the same order, same ranking).
 */
import { type DCSettings } from "./dc_settings.ts";
import {
  fullGrid,
  gridRows,
  noiseBank,
  raceResult,
  stageIndices,
  weighted,
} from "./diffusion_classifier.ts";
import { ClassRace, timestepOrder } from "./class_pruning.ts";
import { type DiffusionModel, imageSize, type LoraTensors, noiseSize } from "./model.ts";

/** Errors of n images, laid out [image][class][grid index]. */
export interface ErrorGrid {
  n: number;
  classes: number;
  grid: number;
  l1: Float32Array;
  l2: Float32Array;
}

/** Compute the full grid of `s` (its gridSize, tRange, timesteps and seed) for n images. */
export async function fullGridErrors(
  model: DiffusionModel,
  images: Float32Array,
  n: number,
  s: DCSettings,
  opts: {
    lora?: LoraTensors;
    batchRows?: number;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<ErrorGrid> {
  const K = model.classNames.length;
  const G = s.gridSize;
  const D = imageSize(model.imageShape);
  if (images.length !== n * D) {
    throw new RangeError(`expected ${n}×${D} pixels, got ${images.length}`);
  }
  const grid = fullGrid(s);
  const noise = noiseBank(s.seed, G, noiseSize(model));
  const out: ErrorGrid = {
    n,
    classes: K,
    grid: G,
    l1: new Float32Array(n * K * G),
    l2: new Float32Array(n * K * G),
  };
  const total = n * K * G;
  const batchRows = opts.batchRows ?? 512;
  // rows in (image, class, grid index) order: row r is entry r of the output
  for (let start = 0; start < total; start += batchRows) {
    const B = Math.min(batchRows, total - start);
    const triples = Array.from({ length: B }, (_, r) => {
      const row = start + r;
      return [Math.floor(row / (K * G)), Math.floor(row / G) % K, row % G] as const;
    });
    const e = await model.epsLoss(gridRows(images, D, grid, noise, triples), opts.lora);
    out.l1.set(e.l1, start);
    out.l2.set(e.l2, start);
    opts.onProgress?.(start + B, total);
  }
  return out;
}

export interface SimulatedVerdict {
  label: number;
  /** UNet calls the schedule spends on this image */
  calls: number;
  /** classes alive after each stage */
  survivors: number[][];
  /** mean error per class over the timesteps it was scored on (NaN: never scored) */
  meanError: Float64Array;
}

/** `classifyImages`' staged elimination for image `i`, read off the grid instead of the UNet. */
export function simulateStaged(g: ErrorGrid, i: number, s: DCSettings): SimulatedVerdict {
  if (s.gridSize !== g.grid) {
    throw new RangeError(`settings gridSize ${s.gridSize} ≠ dump grid ${g.grid}`);
  }
  const K = g.classes;
  const err = s.error === "l2" ? g.l2 : g.l1;
  const base = i * K * g.grid;
  const sum = new Float64Array(K);
  const count = new Int32Array(K);
  let remaining = Array.from({ length: K }, (_, c) => c);
  const survivors: number[][] = [];
  let calls = 0;
  stageIndices(s).forEach((idx, k) => {
    for (const c of remaining) {
      for (const j of idx) {
        sum[c] += weighted(err[base + c * g.grid + j], s.weights, j);
        count[c] += 1;
        calls++;
      }
    }
    remaining = remaining
      .map((c) => ({ c, m: sum[c] / count[c] }))
      .sort((a, b) => a.m - b.m)
      .slice(0, s.stages[k].keep)
      .map((r) => r.c);
    survivors.push(remaining);
  });
  return {
    label: remaining[0],
    calls,
    survivors,
    meanError: Float64Array.from(sum, (v, c) => (count[c] ? v / count[c] : NaN)),
  };
}

/** Sequential class pruning (`settings.sequential`) for image `i`, read off the grid. */
export function simulateSequential(g: ErrorGrid, i: number, s: DCSettings) {
  if (!s.sequential) throw new RangeError("settings have no sequential policy");
  if (s.gridSize !== g.grid) {
    throw new RangeError(`settings gridSize ${s.gridSize} ≠ dump grid ${g.grid}`);
  }
  const err = s.error === "l2" ? g.l2 : g.l1;
  const base = i * g.classes * g.grid;
  const race = new ClassRace(
    g.classes,
    s.sequential,
    timestepOrder(g.grid, s.sequential.orderSeed),
  );
  for (let js = race.next(); js; js = race.next()) {
    for (const c of race.alive) {
      for (const j of js) race.record(c, weighted(err[base + c * g.grid + j], s.weights, j));
    }
    race.decide(js.length);
  }
  return raceResult(race, s.posteriorScale);
}
