"""CIFAR-10 from local files: the official binary and Python layouts (read and, for tests, write).

  python -m tmdc_compiler.cifar10 --fixture ../tests/fixtures/cifar10-tiny

Reading: `load(dir, split)` finds `cifar-10-batches-bin/` or `cifar-10-batches-py/` under `dir`
(or `$TMDC_CIFAR10_DIR`) and returns uint8 images n × 3 × 32 × 32 and int64 labels; a missing
folder is an error naming the variable. Writing (`write_binary`, `write_python`) makes files
byte-compatible with the official ones, including the Python 2 pickles the official
`cifar-10-batches-py` files are (`py2=True`: byte strings as BINSTRING, as cPickle wrote them).
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from . import portable_rng

ENV = "TMDC_CIFAR10_DIR"
RECORD = 1 + 3 * 32 * 32
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class CifarError(FileNotFoundError):
    pass


def read_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise CifarError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte records")
    rec = raw.reshape(-1, RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), rec[:, 0].astype(np.int64)


def read_python(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32).copy(), np.asarray(d[b"labels"], dtype=np.int64)


def root(dir: str | Path | None = None) -> Path:
    d = dir or os.environ.get(ENV)
    if not d:
        raise CifarError(
            f"CIFAR-10 is not configured: set {ENV} (or pass --cifar10) to a folder with cifar-10-batches-bin/ or cifar-10-batches-py/"
        )
    return Path(d)


def load(dir: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """split: "test" or "train" (the five data batches)."""
    base = root(dir)
    names = ["test_batch"] if split == "test" else TRAIN_BATCHES
    for layout, ext, reader in (("cifar-10-batches-bin", ".bin", read_binary), ("cifar-10-batches-py", "", read_python)):
        paths = [base / layout / f"{n}{ext}" for n in names]
        if all(p.exists() for p in paths):
            parts = [reader(p) for p in paths]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    raise CifarError(f"no CIFAR-10 {split} batches under {base} (cifar-10-batches-bin/ or cifar-10-batches-py/)")


def write_binary(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(images), -1).astype(np.uint8)], axis=1)
    rec.tofile(path)


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's `str` (SHORT_BINSTRING / BINSTRING): the official files' opcodes."""

    def save_bytes(self, obj):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def write_python(path: Path, images: np.ndarray, labels: np.ndarray, protocol: int = 2, py2: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    d = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), -1).astype(np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    buf = io.BytesIO()
    (_Py2Pickler(buf, protocol=2) if py2 else pickle.Pickler(buf, protocol=protocol)).dump(d)
    path.write_bytes(buf.getvalue())


def tiny(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded images and labels (portable_rng: tests/cifar10_test.ts draws the same)."""
    u = portable_rng.uniform(seed, 0xC1FA, n * 3 * 32 * 32)
    images = np.minimum(np.floor(u * 256), 255).astype(np.uint8).reshape(n, 3, 32, 32)
    labels = np.arange(n, dtype=np.int64) % 10
    return images, labels


def write_fixture(out: Path, n: int = 12) -> None:
    """One tiny test batch in every layout: binary, the official py2 pickle, py3 protocols 2, 4, 5."""
    images, labels = tiny(n)
    write_binary(out / "bin" / "cifar-10-batches-bin" / "test_batch.bin", images, labels)
    write_python(out / "py2" / "cifar-10-batches-py" / "test_batch", images, labels, py2=True)
    write_python(out / "py3-protocol2" / "cifar-10-batches-py" / "test_batch", images, labels, protocol=2)
    write_python(out / "py3-protocol4" / "cifar-10-batches-py" / "test_batch", images, labels, protocol=4)
    write_python(out / "py3-protocol5" / "cifar-10-batches-py" / "test_batch", images, labels, protocol=5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--fixture",
        type=Path,
        required=True,
        help="write one tiny test batch per layout under DIR/{bin,py2,py3-protocol2,py3-protocol4,py3-protocol5}/ "
        "(each a TMDC_CIFAR10_DIR of its own)",
    )
    a = p.parse_args()
    write_fixture(a.fixture)
    print(f"wrote {a.fixture}")


if __name__ == "__main__":
    main()
