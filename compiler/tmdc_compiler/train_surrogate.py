"""Train the surrogate ResNet on the Fashion-MNIST train split (seeded, resumable per epoch)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import load_split
from .surrogate import ResNet, ResNetConfig


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random horizontal flip and a shift of up to 2 pixels (zero padding)."""
    flip = torch.from_numpy(rng.random(len(x)) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dx, dy = rng.integers(0, 5, 2)
    return padded[:, :, dy : dy + 28, dx : dx + 28]


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum().item() for i in range(0, len(y), 1000))
    return correct / len(y)


def fit(model, train, val, out: Path, config: dict, args, augment_fn, accuracy_fn) -> Path:
    """SGD (momentum 0.9, Nesterov, weight decay 5e-4) with one-cycle lr `args.lr` for
    `args.epochs` epochs of `args.batch`-image batches, seeded by `args.seed`; checkpointed every
    epoch (model, optimizer, schedule, both RNGs) so a stopped run resumes exactly. Writes and
    returns OUT/final.pt. Shared by the Fashion-MNIST and CIFAR-10 surrogate recipes."""
    (x, y), (xv, yv) = train, val
    steps = max(1, len(y) // args.batch)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps)
    rng = np.random.default_rng(args.seed)
    epoch = 0
    ck = out / "checkpoint.pt"
    if ck.exists():
        s = torch.load(ck, weights_only=False)
        model.load_state_dict(s["model"]), opt.load_state_dict(s["opt"]), sched.load_state_dict(s["sched"])
        rng.bit_generator.state = s["np_rng"]
        torch.set_rng_state(s["torch_rng"])
        epoch = s["epoch"]
    t0 = time.time()
    while epoch < args.epochs:
        model.train()
        perm = torch.from_numpy(rng.permutation(len(y)))
        for i in range(steps):
            idx = perm[i * args.batch : (i + 1) * args.batch]
            loss = F.cross_entropy(model(augment_fn(x[idx], rng)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        epoch += 1
        rec = {
            "epoch": epoch,
            "loss": round(loss.item(), 4),
            "val_acc": accuracy_fn(model, xv, yv),
            "elapsed_s": round(time.time() - t0, 1),
        }
        print(json.dumps(rec), flush=True)
        torch.save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "np_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch,
                "config": config,
                "args": vars(args),
            },
            ck,
        )
    final = out / "final.pt"
    torch.save({"model": model.state_dict(), "config": config, "args": vars(args), "val_acc": accuracy_fn(model, xv, yv)}, final)
    return final


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/surrogate")
    ap.add_argument("--depth", type=int, default=14)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ResNetConfig(depth=args.depth, width=args.width)
    model = ResNet(cfg)
    train, val = load_split("train"), load_split("validation")
    x, y = torch.from_numpy(train.as_float()), torch.from_numpy(train.labels)
    xv, yv = torch.from_numpy(val.as_float()), torch.from_numpy(val.labels)
    fit(model, (x, y), (xv, yv), out, cfg.to_json(), args, augment, accuracy)
    print("done", flush=True)


if __name__ == "__main__":
    main()
