"""The PyTorch exact oracle (exact_autoattack.OwnPairsOracle) against the reference DC."""

import numpy as np
import torch

from tmdc_compiler.exact_autoattack import OwnPairsOracle
from tmdc_compiler.reference_dc import DCSettings, Stage, classify


def _settings() -> DCSettings:
    return DCSettings(stages=(Stage(8, 1),), grid_size=8, t_range=(0, 800), error="l2", seed=3)


def test_no_grad_logits_are_the_classifiers_full_grid_mean_errors(tiny_unet):
    s = _settings()
    x = torch.rand(2, 1, 28, 28)
    oracle = OwnPairsOracle(tiny_unet, s, None, pairs=2, scale=100.0, num_classes=10, seed=0, max_rows=64)
    with torch.no_grad():
        logits = oracle(x).double().numpy()
    verdicts = classify(tiny_unet, x.numpy(), s, 10)
    want = np.stack([-100.0 * v.mean_error for v in verdicts])
    assert np.allclose(logits, want, rtol=1e-5, atol=1e-5)
    assert [int(v) for v in logits.argmax(1)] == [v.label for v in verdicts]


def test_subsampled_gradient_is_unbiased(tiny_unet):
    s = _settings()
    x = torch.rand(1, 1, 28, 28)
    w = torch.randn(1, 10)

    def grad(pairs: int, seed: int) -> torch.Tensor:
        o = OwnPairsOracle(tiny_unet, s, None, pairs=pairs, scale=1.0, num_classes=10, seed=seed, max_rows=64)
        xi = x.clone().requires_grad_(True)
        (o(xi) * w).sum().backward()
        return xi.grad.flatten()

    full = grad(8, 0)
    draws = torch.stack([grad(2, k) for k in range(120)])
    se = draws.std(0) / np.sqrt(len(draws))
    z = ((draws.mean(0) - full) / (se + 1e-12)).abs()
    # a biased estimate drifts by many standard errors; allow the odd 4σ pixel out of 784
    assert (z < 4).float().mean() > 0.995
    assert not torch.allclose(draws[0], full)  # the subsets do differ
