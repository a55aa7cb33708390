"""Fashion-MNIST from Debian's `dataset-fashion-mnist` IDX files, and the seeded splits.

Search order for the files: $TMDC_DATA_DIR, the Debian path, then `data/fashion-mnist`
in the repository (where `scripts/setup.sh` unpacks the package when not root).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
VALIDATION_SIZE = 5000
SPLIT_SEED = 0


def data_dir() -> Path:
    candidates = []
    if os.environ.get("TMDC_DATA_DIR"):
        candidates.append(Path(os.environ["TMDC_DATA_DIR"]))
    candidates += [DEBIAN_DIR, REPO_ROOT / "data" / "fashion-mnist"]
    for c in candidates:
        if (c / "t10k-labels-idx1-ubyte.gz").exists() or (c / "t10k-labels-idx1-ubyte").exists():
            return c
    raise FileNotFoundError(
        "Fashion-MNIST IDX files not found in "
        + ", ".join(str(c) for c in candidates)
        + "; run scripts/setup.sh or set TMDC_DATA_DIR"
    )


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): big-endian magic, dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} bytes of data, found {data.size}")
    return data.reshape(dims)


def _load(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    d = data_dir()

    def pick(name: str) -> Path:
        p = d / f"{name}.gz"
        return p if p.exists() else d / name

    images = read_idx(pick(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(pick(f"{prefix}-labels-idx1-ubyte"))
    return images, labels.astype(np.int64)


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # int64 [N]

    def as_float(self) -> np.ndarray:
        """Images as float32 NCHW in [0, 1], the bundles' input value range."""
        return (self.images.astype(np.float32) / 255.0)[:, None, :, :]


def load_split(name: str) -> Split:
    """`train` and `validation` are a seeded partition of the official training set;
    `test` is the official test set, used only for reported numbers."""
    if name == "test":
        return Split(*_load("t10k"))
    images, labels = _load("train")
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    idx = perm[VALIDATION_SIZE:] if name == "train" else perm[:VALIDATION_SIZE]
    if name not in ("train", "validation"):
        raise ValueError(f"unknown split {name!r}")
    return Split(images[idx], labels[idx])


def seeded_subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """The evaluation protocol's fixed subset: the first n of a seeded permutation."""
    return np.random.default_rng(seed).permutation(n_total)[:n]


def portable_subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """The subset the TypeScript side uses (lib/fashion_mnist.ts `seededSubset`): the first n
    indices after sorting portable uniforms (seed, stream 0xDA7A), ties by index."""
    from .portable_rng import uniform

    u = uniform(seed, 0xDA7A, n_total)
    return np.lexsort((np.arange(n_total), u))[:n]


def validation_indices() -> np.ndarray:
    """Indices into the official training set of the seeded validation split."""
    _, labels = _load("train")
    return np.sort(np.random.default_rng(SPLIT_SEED).permutation(len(labels))[:VALIDATION_SIZE])


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Write the train/validation split for the TypeScript side.")
    ap.add_argument("--export-split", required=True, help="JSON path (lib/fashion_mnist_split.json)")
    args = ap.parse_args(argv)
    out = Path(args.export_split)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "what": "Fashion-MNIST official training set (60,000) split into train and validation; "
        "these are the validation indices, train is every other index. The diffusion bundle and "
        "the surrogate were trained on train only; Truth Maximization trains on train and "
        "selects checkpoints on validation; test is used only for reported numbers.",
        "command": "python -m tmdc_compiler.data --export-split " + args.export_split,
        "split_seed": SPLIT_SEED,
        "validation": [int(i) for i in validation_indices()],
    }
    out.write_text(json.dumps(doc) + "\n")
    print(f"wrote {out}: {len(doc['validation'])} validation indices")


if __name__ == "__main__":
    main()
