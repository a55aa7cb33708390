/** Lp-ball and box projections around a clean input x0 (spec §2: P for Linf, Q for L2). */

export type Norm = "linf" | "l2";

/** P(v) = clamp(min(max(v, x0 − ε), x0 + ε), 0, 1), in place on v. */
export function projectLinf(v: Float32Array, x0: Float32Array, eps: number): Float32Array {
  for (let i = 0; i < v.length; i++) {
    const lo = x0[i] - eps;
    const hi = x0[i] + eps;
    v[i] = Math.min(1, Math.max(0, Math.min(Math.max(v[i], lo), hi)));
  }
  return v;
}

/** Q(v) = clamp(x0 + normalize₂(v − x0) · min(ε, ‖v − x0‖₂), 0, 1), in place on v. */
export function projectL2(v: Float32Array, x0: Float32Array, eps: number): Float32Array {
  let n2 = 0;
  for (let i = 0; i < v.length; i++) n2 += (v[i] - x0[i]) ** 2;
  const n = Math.sqrt(n2);
  const scale = Math.min(eps, n) / (n + 1e-12);
  for (let i = 0; i < v.length; i++) {
    v[i] = Math.min(1, Math.max(0, x0[i] + (v[i] - x0[i]) * scale));
  }
  return v;
}

export function project(norm: Norm, v: Float32Array, x0: Float32Array, eps: number): Float32Array {
  return norm === "linf" ? projectLinf(v, x0, eps) : projectL2(v, x0, eps);
}

export function lpDistance(norm: Norm, a: ArrayLike<number>, b: ArrayLike<number>): number {
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    r = norm === "linf" ? Math.max(r, d) : r + d * d;
  }
  return norm === "linf" ? r : Math.sqrt(r);
}
