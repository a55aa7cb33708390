"""The paper's transfer surrogate for CIFAR-10, for users who have the data (issue 15).

  python -m tmdc_compiler.cifar_surrogate train --cifar10 DIR --out ../runs/resnet18-cifar10 [--epochs 30]
  python -m tmdc_compiler.cifar_surrogate export --checkpoint ../runs/resnet18-cifar10/final.pt \\
      --out ../models/resnet18-cifar10

A CIFAR-style ResNet-18 (3×3 stem, four stages of two basic blocks, 64–512 channels; He et al.
as in the common CIFAR code) with the CIFAR-10 normalisation inside the model, so attacks see
logits of the [0, 1] image. Recipe: SGD (momentum 0.9, Nesterov, weight decay 5e-4), one-cycle
lr 0.1, random crop (4 px zero padding) and horizontal flip, batch 128; the last 5,000 training
images are held out for validation (the service's `cifar10` fine-tune split is the same).
Resumable per epoch. The paper attacks with a ResNet-50; `--blocks 3,4,6,3 --bottleneck` is not
implemented — ResNet-18 is the recipe here, named by its real depth.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import cifar10
from .bundle import git_commit, write_manifest
from .export import export_surrogate
from .share_weights import share
from .surrogate import BasicBlock
from .train_surrogate import fit

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
VALIDATION = 5000  # the last 5,000 training images


@dataclass(frozen=True)
class ResNet18Config:
    width: int = 64
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    num_classes: int = 10

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def depth(self) -> int:
        return 2 + 2 * sum(self.blocks)


class ResNet18(nn.Module):
    def __init__(self, cfg: ResNet18Config):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers, cin = [], w
        for stage, n in enumerate(cfg.blocks):
            cout = w * 2**stage
            for i in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, cfg.num_classes)
        self.register_buffer("mean", torch.tensor(MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).reshape(1, 3, 1, 1))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        h = self.layers(self.stem((x01 - self.mean) / self.std))
        return self.fc(h.mean(dim=(2, 3)))


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random crop of 32 from the 4-pixel zero-padded image, and a horizontal flip."""
    flip = torch.from_numpy(rng.random(len(x)) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    dx, dy = rng.integers(0, 9, 2)
    return padded[:, :, dy : dy + 32, dx : dx + 32]


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    if len(y) == 0:
        return float("nan")
    hits = sum((model(x[i : i + 500]).argmax(1) == y[i : i + 500]).sum().item() for i in range(0, len(y), 500))
    return hits / len(y)


def held_out(n: int, validation: int = VALIDATION) -> int:
    """The last 5,000 of CIFAR-10's 50,000 (a tenth of a smaller folder): lib/cifar10.ts's rule."""
    return min(validation, max(1, n // 10))


def splits(data_dir: str | None, validation: int = VALIDATION):
    x, y = cifar10.load(data_dir, "train")
    x = torch.from_numpy(x.astype(np.float32) / 255.0)
    y = torch.from_numpy(y)
    k = len(y) - held_out(len(y), validation)
    return (x[:k], y[:k]), (x[k:], y[k:])


def train(a) -> Path:
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ResNet18Config(width=a.width)
    model = ResNet18(cfg)
    return fit(model, *splits(a.cifar10), out, cfg.to_json(), a, augment, accuracy)


def export(checkpoint: Path, out: Path, name: str | None, batch_grad: int = 32) -> dict:
    if not Path(checkpoint).is_file():
        raise cifar10.CifarError(f"no checkpoint {checkpoint} (train writes OUT/final.pt)")
    ck = torch.load(checkpoint, weights_only=False)
    c = ck["config"]
    cfg = ResNet18Config(width=c["width"], blocks=tuple(c["blocks"]), num_classes=c["num_classes"])
    model = ResNet18(cfg)
    model.load_state_dict(ck["model"])
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    graphs = export_surrogate(model, out, batch_grad, (3, 32, 32))
    manifest = {
        "name": name or out.name,
        "version": "1.0.0",
        "kind": "classifier",
        "image": {"channels": 3, "height": 32, "width": 32, "value_range": [0.0, 1.0], "layout": "NCHW", "dtype": "float32"},
        "classes": cifar10.CLASSES,
        "model": {
            "architecture": f"resnet{cfg.depth} (CIFAR variant)",
            **cfg.to_json(),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "training": {"method": "standard", "adversarial": None, "epochs": ck["args"]["epochs"]},
        "graphs": graphs,
        "provenance": {
            "export_command": " ".join(shlex.quote(v) for v in sys.argv),
            "training_args": ck["args"],
            "validation_accuracy": ck.get("val_acc"),
            "git_commit": git_commit(),
        },
    }
    write_manifest(out, manifest)
    return share(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (resumable per epoch)", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--cifar10", help=f"CIFAR-10 folder (default: ${cifar10.ENV})")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--width", type=int, default=64, help="first stage's channels (ResNet-18: 64)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    e = sub.add_parser("export", help="write a classifier bundle")
    e.add_argument("--checkpoint", required=True, type=Path)
    e.add_argument("--out", required=True, type=Path)
    e.add_argument("--name")
    a = p.parse_args()
    try:
        if a.cmd == "train":
            print(train(a))
        else:
            m = export(a.checkpoint, a.out, a.name)
            print(json.dumps({"bundle": str(a.out), "name": m["name"]}))
    except cifar10.CifarError as err:
        sys.exit(f"cifar_surrogate: {err}")


if __name__ == "__main__":
    main()
