"""Train a baseline classifier (ResNet, Wide ResNet or ViT) on the Fashion-MNIST train split, clean
or with PGD adversarial training (Madry et al.: every batch replaced by its PGD adversarial
examples, Linf, random start). Seeded and resumable per epoch (checkpoint.pt); writes final.pt
for `build_bundle classifier`.

Decisions: the inner PGD runs with the model in eval mode (BatchNorm statistics come from the
update's own forward pass, not from the attack's), with a random start in the ε-ball and step
size 2.5·ε/steps; the update is on adversarial examples only. CNNs use SGD+Nesterov, the ViT
AdamW; both a one-cycle schedule. The augmentation is the surrogate's (flip, shift ≤ 2 px).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .baselines import build
from .data import load_split
from .train_surrogate import accuracy, augment


def pgd_linf(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, gen: torch.Generator
) -> torch.Tensor:
    """Madry's PGD on the cross-entropy from a uniform random start; images stay in [0, 1]."""
    was_training = model.training
    model.eval()
    alpha = 2.5 * eps / steps
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    xa = (x + delta).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
        xa = torch.min(torch.max(xa.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    model.train(was_training)
    return xa.detach()


def model_config(args: argparse.Namespace) -> dict:
    if args.arch == "resnet":
        return {"depth": args.depth, "width": args.width}
    if args.arch == "wrn":
        return {"depth": args.depth, "widen": args.widen}
    return {"patch": args.patch, "dim": args.dim, "depth": args.depth, "heads": args.heads, "mlp": args.mlp}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", choices=["resnet", "wrn", "vit"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--depth", type=int, default=14, help="resnet 6n+2, wrn 6n+4, vit blocks")
    ap.add_argument("--width", type=int, default=16, help="resnet base width")
    ap.add_argument("--widen", type=int, default=2, help="wrn widen factor")
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--adv-eps", type=float, default=0.0, help="PGD adversarial training at this Linf ε (0: clean)")
    ap.add_argument("--adv-steps", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model_config(args)
    model = build(args.arch, cfg)
    if args.arch == "vit":
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    train, val = load_split("train"), load_split("validation")
    x, y = torch.from_numpy(train.as_float()), torch.from_numpy(train.labels)
    xv, yv = torch.from_numpy(val.as_float()), torch.from_numpy(val.labels)
    steps_per_epoch = len(y) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    epoch = 0
    ck = out / "checkpoint.pt"
    if ck.exists():
        s = torch.load(ck, weights_only=False)
        model.load_state_dict(s["model"]), opt.load_state_dict(s["opt"]), sched.load_state_dict(s["sched"])
        rng.bit_generator.state = s["np_rng"]
        torch.set_rng_state(s["torch_rng"])
        gen.set_state(s["gen"])
        epoch = s["epoch"]
    t0 = time.time()
    while epoch < args.epochs:
        model.train()
        perm = torch.from_numpy(rng.permutation(len(y)))
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch : (i + 1) * args.batch]
            xb, yb = augment(x[idx], rng), y[idx]
            if args.adv_eps > 0:
                xb = pgd_linf(model, xb, yb, args.adv_eps, args.adv_steps, gen)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        epoch += 1
        rec = {
            "epoch": epoch,
            "loss": round(loss.item(), 4),
            "val_acc": accuracy(model, xv, yv),
            "elapsed_s": round(time.time() - t0, 1),
        }
        if args.adv_eps > 0:  # PGD accuracy on 500 validation images at the training ε
            xa = pgd_linf(model, xv[:500], yv[:500], args.adv_eps, 10, torch.Generator().manual_seed(0))
            rec["val_pgd10_acc"] = accuracy(model, xa, yv[:500])
        print(json.dumps(rec), flush=True)
        state = {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "np_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "gen": gen.get_state(),
            "epoch": epoch,
            "arch": args.arch,
            "config": cfg,
            "args": vars(args),
            "history": [*(torch.load(ck, weights_only=False)["history"] if ck.exists() and epoch > 1 else []), rec],
        }
        torch.save(state, ck)
    final = torch.load(ck, weights_only=False)
    torch.save(
        {
            "model": model.state_dict(),
            "arch": args.arch,
            "config": cfg,
            "args": vars(args),
            "history": final["history"],
            "val_acc": accuracy(model, xv, yv),
        },
        out / "final.pt",
    )
    print("done", flush=True)


if __name__ == "__main__":
    main()
