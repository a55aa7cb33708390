"""Reference DiffPure in PyTorch, operation for operation as lib/diffpure.ts: forward diffusion to
t* with one noise draw, deterministic DDIM back to 0 with the model's null class, clamp to [0, 1];
gradients by autograd (the TypeScript engine chains eps_pred_vjp_x by hand)."""

from __future__ import annotations

import math

import torch

from .schedule import alphas_cumprod


def ddim_timesteps(t_star: int, steps: int) -> list[int]:
    if not 1 <= steps <= t_star:
        raise ValueError("steps must be in [1, t*]")
    # JavaScript's Math.round (half up), not Python's banker's rounding
    return [math.floor(t_star * (steps - k) / steps + 0.5) for k in range(steps)]


def purify(unet, x01: torch.Tensor, t_star: int, steps: int, noise: torch.Tensor, null_class: int) -> torch.Tensor:
    """x01: [n, C, H, W] in [0, 1]; noise: [C, H, W], shared by the images. Differentiable."""
    abar = alphas_cumprod().double()
    ts = ddim_timesteps(t_star, steps)
    n = len(x01)
    a0 = abar[ts[0]].item()
    x = math.sqrt(a0) * (2 * x01 - 1) + math.sqrt(1 - a0) * noise[None]
    cls = torch.full((n,), null_class, dtype=torch.long)
    for k, t in enumerate(ts):
        at = abar[t].item()
        an = abar[ts[k + 1]].item() if k + 1 < len(ts) else 1.0
        a = math.sqrt(an) / math.sqrt(at)
        b = math.sqrt(1 - an) - math.sqrt(an) * math.sqrt(1 - at) / math.sqrt(at)
        e = unet(x, torch.full((n,), t, dtype=torch.long), cls, None)
        x = a * x + b * e
    return ((x + 1) / 2).clamp(0, 1)
