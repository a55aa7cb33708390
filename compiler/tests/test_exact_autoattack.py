"""The PyTorch exact oracle (exact_autoattack.OwnPairsOracle) against the reference DC."""

import numpy as np
import torch

from tmdc_compiler.exact_autoattack import OwnPairsOracle, real_checked_targets
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


def test_decide_makes_the_no_grad_argmax_the_real_dcs_label(tiny_unet, monkeypatch):
    """fra31's bookkeeping reads argmax of no-grad logits: with decide=True it is the real DC's
    verdict, even where the staged race (here: keep 3 of 4 timesteps, then 8) and the full-grid
    mean disagree; gradient calls are unchanged."""
    s = DCSettings(stages=(Stage(2, 3), Stage(8, 1)), grid_size=8, t_range=(0, 800), error="l1", seed=5)
    x = torch.rand(6, 1, 28, 28)
    plain = OwnPairsOracle(tiny_unet, s, None, pairs=2, scale=100.0, num_classes=10, seed=0, max_rows=64)
    real = OwnPairsOracle(tiny_unet, s, None, pairs=2, scale=100.0, num_classes=10, seed=0, max_rows=64, decide=True)
    with torch.no_grad():
        a, b = plain(x), real(x)
    labels = [v.label for v in classify(tiny_unet, x.numpy(), s, 10)]
    assert [int(v) for v in b.argmax(1)] == labels
    # only the real label's logit may move, and only upwards
    d = (b - a).numpy()
    assert (d >= 0).all() and ((d > 0).sum(1) <= 1).all()
    xi = x[:1].clone().requires_grad_(True)
    g1 = torch.autograd.grad(plain(xi).sum(), xi)[0]
    xi2 = x[:1].clone().requires_grad_(True)
    g2 = torch.autograd.grad(real(xi2).sum(), xi2)[0]
    assert g1.shape == g2.shape and real.rows.get("decide", 0) == 6
    # where the real DC disagrees with the full-grid argmax (the tiny random net never does:
    # stand in a verdict one class over), its label is lifted to the top and nothing else moves
    import tmdc_compiler.exact_autoattack as ea

    other = (a.argmax(1) + 1) % 10
    monkeypatch.setattr(ea, "real_predict", lambda *args: other.numpy())
    with torch.no_grad():
        c = real(x)
    assert torch.equal(c.argmax(1), other)
    assert ((c != a).sum(1) == 1).all()
    assert (c.gather(1, other[:, None])[:, 0] > a.max(1).values).all()


def test_real_checked_targets_keep_going_until_the_real_dc_is_wrong():
    """APGD-T's target loop on the real DC's books: an image the estimate "fooled" but the real
    DC still gets right goes on to the next target; an image leaves at the first target whose
    best-loss or last-fooled point the real DC gets wrong, with that point as its result."""
    x = torch.zeros(3, 1, 2, 2)
    y = torch.tensor([0, 1, 2])
    order = torch.arange(10).repeat(3, 1)  # ascending: target k is class 10 - k
    tried: list[tuple[list[int], list[int]]] = []
    # image 0 falls at target 2 (its last-fooled point), image 1 at target 4 (its best-loss point),
    # image 2 never; a candidate carries its image index + 1 and its target in its pixels
    falls = {0: (2, "fooled"), 1: (4, "best")}

    def run_target(xs, ys, targets):
        tried.append((ys.tolist(), targets.tolist()))
        best = torch.zeros_like(xs) + (ys.float() + 2)[:, None, None, None]  # never the marker
        best[:, 0, 0, 0] = (10 - targets).float()
        fooled = best.clone()
        fooled[:, :, 1, 1] = 1.0  # the last-fooled point's marker
        return best, fooled

    def check(xs, ys):
        right = []
        for xi, yi in zip(xs, ys, strict=True):
            kind = "fooled" if xi[0, 1, 1] == 1.0 else "best"
            f = falls.get(int(yi))
            right.append(not (f and f[0] == int(xi[0, 0, 0]) and f[1] == kind))
        return np.array(right)

    adv, right = real_checked_targets(x, y, 9, lambda xs: order[: len(xs)], run_target, check)
    assert right.tolist() == [False, False, True]
    assert [len(ys) for ys, _ in tried] == [3, 2, 2, 1, 1, 1, 1, 1, 1]  # targets 2..10
    assert tried[0][1] == [8, 8, 8] and tried[-1][1] == [0]  # target k = k-th from the top
    assert adv[0, 0, 0, 0] == 2 and adv[0, 0, 1, 1] == 1  # image 0: target 2's fooled point
    assert adv[1, 0, 0, 0] == 4 and adv[1, 0, 1, 1] == 3  # image 1: target 4's best-loss point
    assert (adv[2] == 0).all()  # never broken: the clean image


def test_real_checked_targets_keep_the_best_loss_point_when_both_break():
    """Both points wrong on the real DC: the best-loss point, checked first, is the result."""
    x, y = torch.zeros(1, 1, 2, 2), torch.tensor([0])

    def run_target(xs, ys, targets):
        return torch.full_like(xs, 5.0), torch.full_like(xs, 7.0)

    adv, right = real_checked_targets(
        x, y, 9, lambda xs: torch.arange(10)[None], run_target, lambda xs, ys: (xs[:, 0, 0, 0] == 0).numpy()
    )
    assert right.tolist() == [False] and (adv == 5.0).all()


def test_real_checked_apgdt_drives_fra31s_single_runs():
    """The wrapper sets fra31's y_target from the no-grad logits' order, reads attack_single_run's
    (best-loss, …, last-fooled) tuple in that order and seeds once, as fra31's perturb does."""
    from tmdc_compiler.exact_autoattack import RealCheckedAPGDT

    class FakeAPGDT:  # fra31's APGDAttack_targeted, as far as the wrapper uses it
        device, seed, n_target_classes = "cpu", 0, 2
        targets: list[list[int]] = []

        def init_hyperparam(self, x):
            pass

        def attack_single_run(self, xs, ys):
            self.targets.append(self.y_target.tolist())
            best, fooled = xs + 1.0, xs + 2.0  # image k's best-loss point k + 1, fooled k + 2
            return best, torch.zeros(len(xs)), torch.zeros(len(xs)), fooled

    logits = torch.tensor([[0.0, 3, 1, 2, 9, 4, 5, 6, 7, 8], [9.0, 8, 7, 6, 5, 4, 3, 2, 1, 0]])
    a = FakeAPGDT()
    # the real DC: right on the clean images (0, 1); wrong only at image 1's fooled point (3)
    atk = RealCheckedAPGDT(a, lambda xs: logits[xs[:, 0, 0, 0].long() % 2], lambda xs, ys: (xs[:, 0, 0, 0] != 3).numpy())
    x = torch.arange(2.0)[:, None, None, None].expand(2, 1, 2, 2).clone()
    adv = atk.perturb(x, torch.tensor([4, 0]))
    # target 2: each image's second class from the top; target 3: the third, for image 0 only
    # (image 1 fell at target 2)
    assert a.targets == [[9, 1], [8]]
    assert adv[0, 0, 0, 0] == 0 and adv[1, 0, 0, 0] == 3  # image 1 fell at its fooled point
