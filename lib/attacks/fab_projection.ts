/**
 * FAB's box-constrained projection onto the hyperplane {z : ⟨w, z⟩ = b} (spec §4):
 * the smallest-norm δ with x + δ ∈ [0,1]^d and ⟨w, x + δ⟩ = b, or the corner that gets
 * closest when the plane is out of reach inside the box. Solved exactly by sorting the
 * breakpoints of the piecewise-linear reduction R(λ) (the reference bisects to the same
 * minimiser).
 */
import type { Norm } from "./projections.ts";

export function fabProjection(
  norm: Norm,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
): Float64Array {
  const d = x.length;
  let c = -b;
  for (let i = 0; i < d; i++) c += w[i] * x[i];
  const sign = c < 0 ? -1 : 1; // flip (w, b) so that c ≥ 0
  c *= sign;
  const delta = new Float64Array(d);
  if (c === 0) return delta;
  const idx: number[] = [];
  const room = new Float64Array(d);
  const brk = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    const wi = sign * w[i];
    if (norm === "linf" ? wi === 0 : Math.abs(wi) <= 1e-8) continue;
    room[i] = wi > 0 ? x[i] : 1 - x[i];
    brk[i] = norm === "linf" ? room[i] : room[i] / Math.abs(wi);
    idx.push(i);
  }
  idx.sort((a, b2) => brk[a] - brk[b2]);
  let slope = 0;
  for (const i of idx) slope += norm === "linf" ? Math.abs(w[i]) : w[i] * w[i];
  let saturated = 0;
  let lambda = Infinity;
  for (const i of idx) {
    if (saturated + slope * brk[i] >= c) {
      lambda = (c - saturated) / slope;
      break;
    }
    saturated += Math.abs(w[i]) * room[i];
    slope -= norm === "linf" ? Math.abs(w[i]) : w[i] * w[i];
  }
  // lambda = ∞: unreachable inside the box; every coordinate moves to its bound.
  for (const i of idx) {
    const wi = sign * w[i];
    const step = norm === "linf" ? lambda : lambda * Math.abs(wi);
    delta[i] = -Math.sign(wi) * Math.min(step, room[i]);
  }
  return delta;
}
