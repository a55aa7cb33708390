"""PyTorch reference for Truth Maximization's training step (issue 5 parity).

Replays `lib/truth_max.ts` on the tiny test bundle's model: LoRA initialised from the
portable RNG as LoRA does (A ~ U(+-1/sqrt(in)), B = 0), torch.optim.AdamW with HF's
constant-with-warmup schedule, per-step timesteps and noise from the portable streams, loss =
batch mean of the per-row mean squared noise-prediction error with the true class.

`python -m tmdc_compiler.make_tm_fixture --out tests/fixtures/tm_reference.json`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import portable_rng
from .data import load_split
from .make_fixtures import TINY
from .schedule import NUM_TIMESTEPS, alphas_cumprod, eps_errors
from .unet import UNet

STREAM_TIMESTEP = 0x7B000000
STREAM_NOISE = 0x7C000000
STREAM_INIT = 0x7D000000


def init_lora(layout: list[dict], seed: int) -> list[torch.Tensor]:
    out = []
    for i, t in enumerate(layout):
        size = int(np.prod(t["shape"]))
        if t["name"].endswith(".A"):
            bound = 1.0 / np.sqrt(t["shape"][1])
            u = portable_rng.uniform(seed, STREAM_INIT + i, size)
            a = ((2.0 * u - 1.0) * bound).astype(np.float32)
        else:
            a = np.zeros(size, dtype=np.float32)
        out.append(torch.tensor(a.reshape(t["shape"])))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="tests/fixtures/tm_reference.json")
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    unet = UNet(TINY).eval()  # the weights of tests/fixtures/tiny-diffusion (same seed and config)
    for p in unet.parameters():
        p.requires_grad_(False)
    layout = unet.lora_layout()
    seed, batch, hyper = 5, 4, {"lr": 3e-3, "beta1": 0.9, "beta2": 0.999, "weightDecay": 1e-2, "adamEps": 1e-8, "warmupSteps": 2}
    test = load_split("test")
    x = torch.tensor(test.as_float()[10 : 10 + batch])
    y = torch.tensor(test.labels[10 : 10 + batch].astype(np.int64))
    params = [t.clone().requires_grad_(True) for t in init_lora(layout, seed)]
    init = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(
        params, lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), weight_decay=hyper["weightDecay"], eps=hyper["adamEps"]
    )
    w = hyper["warmupSteps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: k / max(1, w) if k < w else 1.0)
    abar = alphas_cumprod()
    d = int(np.prod(x.shape[1:]))
    losses = []
    for k in range(args.steps):
        u = portable_rng.uniform(seed, STREAM_TIMESTEP + k, batch)
        t = torch.tensor(np.minimum(NUM_TIMESTEPS - 1, np.floor(u * NUM_TIMESTEPS)).astype(np.int64))
        eps = torch.tensor(portable_rng.normal(seed, STREAM_NOISE + k, batch * d).reshape(x.shape))
        l2, _ = eps_errors(unet, x, t, eps, y, abar, lora=params)
        loss = l2.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    fx = {
        "command": "python -m tmdc_compiler.make_tm_fixture",
        "bundle": "tiny-diffusion",
        "seed": seed,
        "hyper": {**hyper, "batchSize": batch, "steps": args.steps},
        "images": [float(v) for v in x.numpy().ravel()],
        "labels": [int(v) for v in y],
        "losses": losses,
        "init": [[float(v) for v in p.numpy().ravel()] for p in init],
        "final": [[float(v) for v in p.detach().numpy().ravel()] for p in params],
    }
    Path(args.out).write_text(json.dumps(fx))
    print(f"wrote {args.out}: losses {losses}")


if __name__ == "__main__":
    main()
