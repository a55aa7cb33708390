"""DDPM noise schedule (1,000 steps) and the noise-prediction loss shared by training,
export and the reference classifier. Images enter in [0, 1] and are scaled to [-1, 1]
inside, so every exported gradient is with respect to the [0, 1] image."""

from __future__ import annotations

import torch

NUM_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02


def alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(BETA_START, BETA_END, NUM_TIMESTEPS, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def schedule_json() -> dict:
    return {"kind": "ddpm_linear", "num_timesteps": NUM_TIMESTEPS, "beta_start": BETA_START, "beta_end": BETA_END}


def noisy(x01: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    a = abar[t].reshape(-1, 1, 1, 1)
    return a.sqrt() * (2.0 * x01 - 1.0) + (1.0 - a).sqrt() * eps


def eps_errors(model, x01, t, eps, c, abar, lora=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean squared and mean absolute noise-prediction error."""
    pred = model(noisy(x01, t, eps, abar), t, c, lora)
    diff = (pred - eps).flatten(1)
    return diff.pow(2).mean(1), diff.abs().mean(1)
