/**
 * Per-sample attack losses on logits z (K classes), with gradients with respect to z
 * (attacks chain them through a model's vector-Jacobian product). Spec §2.
 */

/** Cross entropy −z_y + log Σ exp z_j (max-subtracted) and its gradient softmax − onehot. */
export function crossEntropy(
  z: ArrayLike<number>,
  y: number,
): { loss: number; grad: Float64Array } {
  const k = z.length;
  let m = -Infinity;
  for (let j = 0; j < k; j++) m = Math.max(m, z[j]);
  let s = 0;
  for (let j = 0; j < k; j++) s += Math.exp(z[j] - m);
  const grad = new Float64Array(k);
  for (let j = 0; j < k; j++) grad[j] = Math.exp(z[j] - m) / s;
  grad[y] -= 1;
  return { loss: m + Math.log(s) - z[y], grad };
}

/** Indices of z sorted by descending value (ties: lower index first). */
function ranked(z: ArrayLike<number>): number[] {
  return Array.from({ length: z.length }, (_, i) => i).sort((a, b) => z[b] - z[a] || a - b);
}

/** DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12). Needs K ≥ 3. */
export function dlr(z: ArrayLike<number>, y: number): { loss: number; grad: Float64Array } {
  if (z.length < 3) throw new RangeError("DLR needs at least 3 classes");
  const p = ranked(z);
  const other = p[0] === y ? p[1] : p[0];
  const num = -(z[y] - z[other]);
  const den = z[p[0]] - z[p[2]] + 1e-12;
  const grad = new Float64Array(z.length);
  grad[y] += -1 / den;
  grad[other] += 1 / den;
  grad[p[0]] += -num / (den * den);
  grad[p[2]] += num / (den * den);
  return { loss: num / den, grad };
}

/** Targeted DLR: −(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4) + 1e-12). Needs K ≥ 4. */
export function dlrTargeted(
  z: ArrayLike<number>,
  y: number,
  t: number,
): { loss: number; grad: Float64Array } {
  if (z.length < 4) throw new RangeError("targeted DLR needs at least 4 classes");
  const p = ranked(z);
  const num = -(z[y] - z[t]);
  const den = z[p[0]] - 0.5 * (z[p[2]] + z[p[3]]) + 1e-12;
  const grad = new Float64Array(z.length);
  grad[y] += -1 / den;
  grad[t] += 1 / den;
  grad[p[0]] += -num / (den * den);
  grad[p[2]] += 0.5 * num / (den * den);
  grad[p[3]] += 0.5 * num / (den * den);
  return { loss: num / den, grad };
}

/** Margin m = z_y − max_{j≠y} z_j (Square's loss and success test: m ≤ 0 is a success). */
export function margin(z: ArrayLike<number>, y: number): number {
  let best = -Infinity;
  for (let j = 0; j < z.length; j++) if (j !== y) best = Math.max(best, z[j]);
  return z[y] - best;
}

/** argmax with the first maximal index on ties (PyTorch `max`). */
export function argmax(z: ArrayLike<number>, offset = 0, k = z.length): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (z[offset + j] > z[offset + best]) best = j;
  return best;
}
