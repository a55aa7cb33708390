"""A counter-based random source that Python and TypeScript compute identically.

torch's generators cannot be reproduced in TypeScript, so every draw that must agree
across the two engines (the diffusion classifier's noise and stratified timesteps)
comes from here: `lowbias32` hashing of (seed, stream, counter) to 32-bit uniforms,
Box-Muller in float64 for normals, rounded to float32 at the end.
"""

from __future__ import annotations

import numpy as np

M32 = np.uint64(0xFFFFFFFF)


def lowbias32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32
    x ^= x >> np.uint64(16)
    return x


GOLDEN = np.uint64(0x9E3779B9)
STREAM_MUL = np.uint64(0x85EBCA6B)


def stream_key(seed: int, stream: int) -> np.uint64:
    """key = h(h(seed ^ golden) + stream * 0x85EBCA6B), all mod 2^32 (h = lowbias32)."""
    s = lowbias32(np.array([(seed & 0xFFFFFFFF) ^ 0x9E3779B9], dtype=np.uint64))
    return lowbias32((s + np.uint64(stream & 0xFFFFFFFF) * STREAM_MUL) & M32)[0]


def uniform(seed: int, stream: int, n: int, offset: int = 0) -> np.ndarray:
    """n float64 uniforms in (0, 1): u_i = (h(key + (i + 1) * golden) + 0.5) / 2^32."""
    key = stream_key(seed, stream)
    i = np.arange(offset + 1, offset + n + 1, dtype=np.uint64)
    ctr = (key + (i * GOLDEN & M32)) & M32
    return (lowbias32(ctr).astype(np.float64) + 0.5) / 4294967296.0


def normal(seed: int, stream: int, n: int) -> np.ndarray:
    """n float32 standard normals (Box-Muller on consecutive uniform pairs)."""
    m = (n + 1) // 2
    u = uniform(seed, stream, 2 * m)
    r = np.sqrt(-2.0 * np.log(u[0::2]))
    theta = 2.0 * np.pi * u[1::2]
    out = np.empty(2 * m, dtype=np.float64)
    out[0::2] = r * np.cos(theta)
    out[1::2] = r * np.sin(theta)
    return out[:n].astype(np.float32)
