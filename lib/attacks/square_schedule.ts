/** Square Attack's schedule of the fraction p and the window side (spec §5). */

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** p at 0-based iteration i (fra31 `p_selection`). */
export function pSelection(
  pInit: number,
  iteration: number,
  nQueries: number,
  rescale: boolean,
): number {
  const i = rescale ? Math.trunc((iteration / nQueries) * 10000) : iteration;
  if (i <= 10) return pInit;
  if (i <= 50) return pInit / 2;
  if (i <= 200) return pInit / 4;
  if (i <= 500) return pInit / 8;
  if (i <= 1000) return pInit / 16;
  if (i <= 2000) return pInit / 32;
  if (i <= 4000) return pInit / 64;
  if (i <= 6000) return pInit / 128;
  if (i <= 8000) return pInit / 256;
  return pInit / 512;
}

/** Linf window side: min(max(round(√(p·H·W)), 1), min(H, W)). */
export function windowLinf(p: number, h: number, w: number): number {
  return Math.min(Math.max(roundHalfEven(Math.sqrt(p * h * w)), 1), Math.min(h, w));
}

/** L2 window side: max(round(√(p·H·W)), 3), made odd, capped at min(H, W). */
export function windowL2(p: number, h: number, w: number): number {
  let s = Math.max(roundHalfEven(Math.sqrt(p * h * w)), 3);
  if (s % 2 === 0) s += 1;
  return Math.min(s, Math.min(h, w));
}

/** `eta_rect(a, b)`: nested squares with weight 1/(k+1)² around the centre, unit L2 norm. */
export function etaRect(a: number, b: number): Float64Array {
  const out = new Float64Array(a * b);
  const ch = Math.floor(a / 2);
  const cw = Math.floor(b / 2);
  const n = Math.max(Math.floor(a / 2) + 1, Math.floor(b / 2) + 1);
  for (let k = 0; k < n; k++) {
    const r0 = Math.max(ch - k, 0);
    const r1 = Math.min(ch + k + 1, a);
    const c0 = Math.max(cw - k, 0);
    const c1 = Math.min(cw + k + 1, b);
    for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[r * b + c] += 1 / (k + 1) ** 2;
  }
  let s = 0;
  for (const v of out) s += v * v;
  const norm = Math.sqrt(s);
  for (let i = 0; i < out.length; i++) out[i] /= norm;
  return out;
}

/** `eta(s)`: top ⌊s/2⌋ rows +eta_rect, the rest −eta_rect, unit norm, optionally transposed. */
export function eta(s: number, transpose: boolean): Float64Array {
  const top = Math.floor(s / 2);
  const a = etaRect(top, s);
  const b = etaRect(s - top, s);
  const out = new Float64Array(s * s);
  out.set(a, 0);
  for (let i = 0; i < b.length; i++) out[top * s + i] = -b[i];
  let n = 0;
  for (const v of out) n += v * v;
  n = Math.sqrt(n);
  for (let i = 0; i < out.length; i++) out[i] /= n;
  if (!transpose) return out;
  const t = new Float64Array(s * s);
  for (let r = 0; r < s; r++) for (let c = 0; c < s; c++) t[c * s + r] = out[r * s + c];
  return t;
}
