/**
 * Counter-based random numbers computed identically in Python
 * (`compiler/tmdc_compiler/portable_rng.py`) and here, so the diffusion classifier's
 * noise and stratified timesteps agree bit for bit between the two engines.
 */

const GOLDEN = 0x9e3779b9;
const STREAM_MUL = 0x85ebca6b;

/** Chris Wellons' lowbias32 integer hash (unsigned 32-bit in, out). */
export function lowbias32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

export function streamKey(seed: number, stream: number): number {
  const s = lowbias32(((seed >>> 0) ^ GOLDEN) >>> 0);
  return lowbias32((s + Math.imul(stream >>> 0, STREAM_MUL)) >>> 0);
}

/** n uniforms in (0, 1): u_i = (h(key + (i + 1) * golden) + 0.5) / 2^32. */
export function uniform(seed: number, stream: number, n: number, offset = 0): Float64Array {
  const key = streamKey(seed, stream);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const ctr = (key + (Math.imul(offset + k + 1, GOLDEN) >>> 0)) >>> 0;
    out[k] = (lowbias32(ctr) + 0.5) / 4294967296;
  }
  return out;
}

/** n float32 standard normals, Box-Muller on consecutive uniform pairs. */
export function normal(seed: number, stream: number, n: number): Float32Array {
  const m = (n + 1) >> 1;
  const u = uniform(seed, stream, 2 * m);
  const out = new Float32Array(n);
  for (let k = 0; k < m; k++) {
    const r = Math.sqrt(-2 * Math.log(u[2 * k]));
    const theta = 2 * Math.PI * u[2 * k + 1];
    out[2 * k] = r * Math.cos(theta);
    if (2 * k + 1 < n) out[2 * k + 1] = r * Math.sin(theta);
  }
  return out;
}

/** A sequential stream over the same generator (attacks, training batches). */
export class PortableRandom {
  #counter = 0;
  constructor(readonly seed: number, readonly stream = 0) {}
  uniform(): number {
    return uniform(this.seed, this.stream, 1, this.#counter++)[0];
  }
  normal(): number {
    const u1 = this.uniform();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}
