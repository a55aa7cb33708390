"""Train the class-conditional diffusion UNet on the Fashion-MNIST train split.

Resumable: a checkpoint (model, EMA, optimizer, RNG states, step) is written every
`--ckpt-every` steps to `<out>/checkpoint.pt`; rerunning the same command resumes.
Loss is logged as JSON lines to `<out>/train_log.jsonl`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .data import load_split
from .schedule import NUM_TIMESTEPS, alphas_cumprod, eps_errors
from .unet import UNet, UNetConfig


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the base rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/diffusion")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--label-dropout", type=float, default=0.1)
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = UNetConfig(base_channels=args.base_channels, dropout=args.dropout)
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = UNet(cfg).to(dev)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    step = 0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        rng.bit_generator.state = ck["np_rng"]
        torch.set_rng_state(ck["torch_rng"])
        step = ck["step"]
        print(f"resumed at step {step}", flush=True)

    train = load_split("train")
    x_all = torch.from_numpy(train.as_float())
    y_all = torch.from_numpy(train.labels)
    abar = alphas_cumprod().to(dev)
    log = open(out / "train_log.jsonl", "a")
    t_start = time.time()
    running = None
    while step < args.steps:
        idx = torch.from_numpy(rng.integers(0, len(y_all), args.batch))
        x = x_all[idx].to(dev)
        c = y_all[idx].clone()
        c[torch.from_numpy(rng.random(args.batch) < args.label_dropout)] = cfg.num_classes  # null class
        t = torch.randint(0, NUM_TIMESTEPS, (args.batch,))
        eps = torch.randn_like(x)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
        model.train()
        mse, _ = eps_errors(model, x, t.to(dev), eps, c.to(dev), abar)
        loss = mse.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1.0 - args.ema)
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == args.steps:
            rec = {
                "step": step,
                "loss": round(running, 5),
                "lr": opt.param_groups[0]["lr"],
                "elapsed_s": round(time.time() - t_start, 1),
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
        if step % args.ckpt_every == 0 or step == args.steps:
            tmp = out / "checkpoint.pt.tmp"
            torch.save(
                {
                    "model": model.state_dict(),
                    "ema": ema.state_dict(),
                    "opt": opt.state_dict(),
                    "np_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "config": cfg.to_json(),
                    "args": vars(args),
                },
                tmp,
            )
            tmp.replace(ckpt_path)  # atomic: a kill never leaves a half-written checkpoint
    torch.save(
        {"ema": ema.state_dict(), "config": cfg.to_json(), "args": vars(args), "step": step, "final_loss": running},
        out / "final.pt",
    )
    print("done", flush=True)


if __name__ == "__main__":
    main()
