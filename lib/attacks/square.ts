/**
 * Square Attack (Andriushchenko et al. 2020) as fra31/auto-attack's `SquareAttack` with
 * the margin loss (spec §5). Every random number is one `rng.uniform()`, drawn in the
 * reference's order, so replaying its `torch.rand` stream reproduces its trajectory:
 * Linf — init signs per (sample, channel, column); per iteration vh, vw, one sign per
 * channel (shared by the batch). L2 — per init tile a transpose draw then sample×channel
 * signs; per iteration vh, vw, vh2, vw2, the transpose draw, sample×channel signs.
 */
import { margin } from "./losses.ts";
import { gatherRows, type GradientOracle, type RandomSource, stillRobust } from "./oracle.ts";
import type { Norm } from "./projections.ts";
import { eta, pSelection, windowL2, windowLinf } from "./square_schedule.ts";
import type { ImageShape } from "../model.ts";

export interface SquareConfig {
  norm: Norm;
  eps: number;
  nQueries: number;
  pInit: number;
  nRestarts: number;
  rescaleSchedule: boolean;
}

export const SQUARE_AUTOATTACK = {
  nQueries: 5000,
  pInit: 0.8,
  nRestarts: 1,
  rescaleSchedule: false,
} as const;

const sign = (u: number) => Math.sign(2 * u - 1);
const clamp01 = (v: number) => Math.min(1, Math.max(0, v));

async function margins(
  o: GradientOracle,
  x: Float32Array,
  n: number,
  y: Int32Array,
): Promise<Float64Array> {
  const z = await o.logits(x, n);
  const k = o.numClasses;
  return Float64Array.from({ length: n }, (_, i) => margin(z.subarray(i * k, (i + 1) * k), y[i]));
}

/** One run on `n` samples; returns the best points and query counts (reference `attack_single_run`). */
export async function squareSingleRun(
  o: GradientOracle,
  shape: ImageShape,
  x0: Float32Array,
  y: Int32Array,
  cfg: SquareConfig,
  rng: RandomSource,
): Promise<{ xBest: Float32Array; queries: Int32Array; marginMin: Float64Array }> {
  const n = y.length;
  const { channels: C, height: H, width: W } = shape;
  const D = C * H * W;
  const at = (b: number, c: number, h: number, w: number) => b * D + c * H * W + h * W + w;
  const xBest = new Float32Array(n * D);

  if (cfg.norm === "linf") {
    for (let b = 0; b < n; b++) {
      for (let c = 0; c < C; c++) {
        for (let w = 0; w < W; w++) {
          const s = sign(rng.uniform());
          for (let h = 0; h < H; h++) {
            xBest[at(b, c, h, w)] = clamp01(x0[at(b, c, h, w)] + cfg.eps * s);
          }
        }
      }
    }
  } else {
    const delta = new Float64Array(n * D);
    const s0 = Math.floor(H / 5);
    const start = Math.floor((H - s0 * 5) / 2);
    let vh = start;
    for (let th = 0; th < Math.floor(H / s0); th++, vh += s0) {
      let vw = start;
      for (let tw = 0; tw < Math.floor(W / s0); tw++, vw += s0) {
        const e = eta(s0, rng.uniform() > 0.5);
        for (let b = 0; b < n; b++) {
          for (let c = 0; c < C; c++) {
            const sg = sign(rng.uniform());
            // tiles past the edge are cut off, as torch's slicing does (draws are still made)
            for (let i = 0; i < s0 && vh + i < H; i++) {
              for (let j = 0; j < s0 && vw + j < W; j++) {
                delta[at(b, c, vh + i, vw + j)] += e[i * s0 + j] * sg;
              }
            }
          }
        }
      }
    }
    for (let b = 0; b < n; b++) {
      let nn = 0;
      for (let i = 0; i < D; i++) nn += delta[b * D + i] ** 2;
      const f = cfg.eps / (Math.sqrt(nn) + 1e-12);
      for (let i = 0; i < D; i++) xBest[b * D + i] = clamp01(x0[b * D + i] + delta[b * D + i] * f);
    }
  }
  const marginMin = await margins(o, xBest, n, y);
  const lossMin = marginMin.slice();
  const queries = new Int32Array(n).fill(1);
  if (marginMin.every((m) => m < 0)) return { xBest, queries, marginMin };

  for (let it = 0; it < cfg.nQueries; it++) {
    const idx = [...marginMin.keys()].filter((b) => marginMin[b] > 0);
    if (idx.length === 0) break;
    const m = idx.length;
    const p = pSelection(cfg.pInit, it, cfg.nQueries, cfg.rescaleSchedule);
    const xNew = new Float32Array(m * D);
    if (cfg.norm === "linf") {
      const s = windowLinf(p, H, W);
      const vh = Math.trunc((H - s) * rng.uniform());
      const vw = Math.trunc((W - s) * rng.uniform());
      const signs = Array.from({ length: C }, () => sign(rng.uniform()));
      idx.forEach((b, r) => {
        for (let c = 0; c < C; c++) {
          for (let h = 0; h < H; h++) {
            for (let w = 0; w < W; w++) {
              const inWin = h >= vh && h < vh + s && w >= vw && w < vw + s;
              const x = x0[at(b, c, h, w)];
              const v = xBest[at(b, c, h, w)] + (inWin ? 2 * cfg.eps * signs[c] : 0);
              xNew[r * D + c * H * W + h * W + w] = clamp01(
                Math.min(Math.max(v, x - cfg.eps), x + cfg.eps),
              );
            }
          }
        }
      });
    } else {
      const s = windowL2(p, H, W);
      const vh = Math.trunc((H - s) * rng.uniform());
      const vw = Math.trunc((W - s) * rng.uniform());
      const vh2 = Math.trunc((H - s) * rng.uniform());
      const vw2 = Math.trunc((W - s) * rng.uniform());
      const e = eta(s, rng.uniform() > 0.5);
      const signs = Array.from({ length: m * C }, () => sign(rng.uniform()));
      const in1 = (h: number, w: number) => h >= vh && h < vh + s && w >= vw && w < vw + s;
      const in2 = (h: number, w: number) => h >= vh2 && h < vh2 + s && w >= vw2 && w < vw2 + s;
      idx.forEach((b, r) => {
        const delta = new Float64Array(D);
        let nImg = 0;
        for (let i = 0; i < D; i++) nImg += (delta[i] = xBest[b * D + i] - x0[b * D + i]) ** 2;
        nImg = Math.sqrt(nImg);
        for (let c = 0; c < C; c++) {
          const plane = c * H * W;
          let n1 = 0;
          let nWin = 0;
          for (let h = 0; h < H; h++) {
            for (let w = 0; w < W; w++) {
              const d = delta[plane + h * W + w];
              if (in1(h, w)) n1 += d * d;
              if (in1(h, w) || in2(h, w)) nWin += d * d;
            }
          }
          n1 = Math.sqrt(n1);
          const block = new Float64Array(s * s);
          let nb = 0;
          for (let i = 0; i < s; i++) {
            for (let j = 0; j < s; j++) {
              const v = e[i * s + j] * signs[r * C + c] +
                delta[plane + (vh + i) * W + vw + j] / (1e-12 + n1);
              block[i * s + j] = v;
              nb += v * v;
            }
          }
          const target = Math.sqrt(Math.max(cfg.eps ** 2 - nImg ** 2, 0) / C + nWin);
          const f = target / (1e-12 + Math.sqrt(nb));
          for (let i = 0; i < s; i++) {
            for (let j = 0; j < s; j++) delta[plane + (vh2 + i) * W + vw2 + j] = 0;
          }
          for (let i = 0; i < s; i++) {
            for (let j = 0; j < s; j++) {
              delta[plane + (vh + i) * W + vw + j] = block[i * s + j] * f;
            }
          }
        }
        let nn = 0;
        for (let i = 0; i < D; i++) nn += delta[i] ** 2;
        const g = cfg.eps / (Math.sqrt(nn) + 1e-12);
        for (let i = 0; i < D; i++) xNew[r * D + i] = clamp01(x0[b * D + i] + delta[i] * g);
      });
    }
    const ys = Int32Array.from(idx, (b) => y[b]);
    const mNew = await margins(o, xNew, m, ys);
    idx.forEach((b, r) => {
      const improved = mNew[r] < lossMin[b];
      if (improved) lossMin[b] = mNew[r];
      if (improved || mNew[r] <= 0) {
        marginMin[b] = mNew[r];
        xBest.set(xNew.subarray(r * D, (r + 1) * D), b * D);
      }
      queries[b]++;
    });
    if (marginMin.every((v) => v <= 0)) break;
  }
  return { xBest, queries, marginMin };
}

/** `perturb`: restarts on the points still classified correctly; success re-checked by a forward pass. */
export async function square(
  o: GradientOracle,
  shape: ImageShape,
  x0: Float32Array,
  y: Int32Array,
  cfg: SquareConfig,
  rng: RandomSource,
): Promise<{ xAdv: Float32Array; robust: Uint8Array }> {
  const n = y.length;
  const D = o.size;
  const k = o.numClasses;
  const xAdv = x0.slice();
  const z0 = await o.logits(x0, n);
  const robust = Uint8Array.from(
    { length: n },
    (_, i) => (margin(z0.subarray(i * k, (i + 1) * k), y[i]) > 0 ? 1 : 0),
  );
  for (let r = 0; r < cfg.nRestarts; r++) {
    const idx = stillRobust(robust);
    if (idx.length === 0) break;
    const xs = gatherRows(x0, idx, D);
    const ys = Int32Array.from(idx, (i) => y[i]);
    const { xBest } = await squareSingleRun(o, shape, xs, ys, cfg, rng);
    const z = await o.logits(xBest, idx.length);
    idx.forEach((i, j) => {
      let best = 0;
      for (let c = 1; c < k; c++) if (z[j * k + c] > z[j * k + best]) best = c;
      if (best !== y[i]) {
        robust[i] = 0;
        xAdv.set(xBest.subarray(j * D, (j + 1) * D), i * D);
      }
    });
  }
  return { xAdv, robust };
}
