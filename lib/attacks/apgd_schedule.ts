/**
 * APGD checkpoint schedule (Croce & Hein 2020), integer form of the reference:
 * k₀ = max(⌊0.22N⌋, 1), k_min = max(⌊0.06N⌋, 1), dec = max(⌊0.03N⌋, 1); after each
 * checkpoint the window becomes max(k − dec, k_min). Spec §2.
 */
export function apgdConstants(nIter: number): { k0: number; kMin: number; dec: number } {
  return {
    k0: Math.max(Math.trunc(0.22 * nIter), 1),
    kMin: Math.max(Math.trunc(0.06 * nIter), 1),
    dec: Math.max(Math.trunc(0.03 * nIter), 1),
  };
}

/** 0-based iterations after which a checkpoint fires. */
export function apgdCheckpoints(nIter: number): number[] {
  const { k0, kMin, dec } = apgdConstants(nIter);
  const out: number[] = [];
  let k = k0;
  let counter = 0;
  for (let i = 0; i < nIter; i++) {
    counter++;
    if (counter === k) {
      out.push(i);
      counter = 0;
      k = Math.max(k - dec, kMin);
    }
  }
  return out;
}
