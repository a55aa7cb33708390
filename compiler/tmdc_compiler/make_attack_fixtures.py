"""Record fra31/auto-attack APGD trajectories as fixtures for the TypeScript port (spec §8 level 2).

  python -m tmdc_compiler.make_attack_fixtures --autoattack /path/to/fra31/auto-attack --out tests/fixtures/apgd_reference.json

The reference code is fetched beside the project and imported from that path; it is not
part of this repository. The model is a float64 linear classifier (z = W x + b) that the
TypeScript test implements exactly, so trajectories can be compared step by step from a
shared `x_init`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--autoattack", required=True, help="folder containing the autoattack package (fra31)")
    ap.add_argument(
        "--torchattacks", help="folder with torchattacks' attack.py and attacks/{fgsm,pgd,pgdl2}.py (torchvision-free)"
    )
    ap.add_argument("--out", default="tests/fixtures/apgd_reference.json")
    args = ap.parse_args(argv)
    sys.path.insert(0, args.autoattack)
    from autoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    rng = np.random.default_rng(0)
    k, d, n = 10, 64, 12
    W = rng.normal(size=(k, d)) * 0.5
    b = rng.normal(size=k) * 0.1
    x = rng.random((n, 1, 8, 8))
    y = (x.reshape(n, -1) @ W.T + b).argmax(1)  # all correctly classified
    Wt, bt = torch.from_numpy(W), torch.from_numpy(b)
    calls: list[np.ndarray] = []

    def model(inp: torch.Tensor) -> torch.Tensor:
        z = inp.reshape(inp.shape[0], -1) @ Wt.T + bt
        calls.append(z.detach().numpy().copy())
        return z

    cases = []
    for norm, eps in (("Linf", 0.05), ("L2", 0.3)):
        t = rng.uniform(-1, 1, size=x.shape) if norm == "Linf" else rng.normal(size=x.shape)
        scale = np.abs(t.reshape(n, -1)).max(1) if norm == "Linf" else np.sqrt((t.reshape(n, -1) ** 2).sum(1))
        x_init = np.clip(x + eps * t / (scale.reshape(n, 1, 1, 1) + 1e-12), 0, 1)
        for loss in ("ce", "dlr", "dlr-targeted"):
            cls = APGDAttack_targeted if loss == "dlr-targeted" else APGDAttack
            atk = cls(model, n_iter=100, norm=norm, eps=eps, seed=0, **({} if loss == "dlr-targeted" else {"loss": loss}))
            atk.init_hyperparam(torch.from_numpy(x))
            targets = None
            if loss == "dlr-targeted":
                z = x.reshape(n, -1) @ W.T + b
                targets = np.argsort(z, axis=1)[:, -2]  # rank 2: the runner-up
                atk.y_target = torch.from_numpy(targets)
            calls.clear()
            x_best, acc, loss_best, x_best_adv = atk.attack_single_run(
                torch.from_numpy(x), torch.from_numpy(y), x_init=torch.from_numpy(x_init)
            )
            cases.append(
                {
                    "norm": norm.lower(),
                    "eps": eps,
                    "loss": loss,
                    "x_init": x_init.ravel().tolist(),
                    "targets": None if targets is None else targets.tolist(),
                    "logits_per_call": [c.ravel().tolist() for c in calls],
                    "x_best": x_best.detach().numpy().ravel().tolist(),
                    "acc": acc.numpy().astype(int).tolist(),
                    "loss_best": loss_best.detach().numpy().tolist(),
                    "x_best_adv": x_best_adv.detach().numpy().ravel().tolist(),
                }
            )
    out = {
        "reference": "fra31/auto-attack a392200 APGDAttack/APGDAttack_targeted.attack_single_run",
        "n_iter": 100,
        "W": W.ravel().tolist(),
        "b": b.tolist(),
        "x": x.ravel().tolist(),
        "y": y.tolist(),
        "cases": cases,
    }
    Path(args.out).write_text(json.dumps(out))
    print(f"wrote {args.out}: {len(cases)} cases")
    fab_out = Path(args.out).with_name("fab_reference.json")
    fab_out.write_text(json.dumps(fab_cases(rng)))
    print(f"wrote {fab_out}")
    if args.torchattacks:
        sys.path.insert(0, args.torchattacks)
        pgd_out = Path(args.out).with_name("pgd_reference.json")
        pgd_out.write_text(json.dumps(pgd_cases(np.random.default_rng(1))))
        print(f"wrote {pgd_out}")
    square_out = Path(args.out).with_name("square_reference.json")
    square_out.write_text(json.dumps(square_cases(rng)))
    print(f"wrote {square_out}")


def pgd_cases(rng: np.random.Generator) -> dict:
    """torchattacks FGSM, PGD and PGDL2 (no random start) on a float64 linear model."""
    from torchattacks.attacks.fgsm import FGSM
    from torchattacks.attacks.pgd import PGD
    from torchattacks.attacks.pgdl2 import PGDL2

    k, d, n = 10, 64, 12
    W = rng.normal(size=(k, d)) * 0.5
    b = rng.normal(size=k) * 0.1
    x = rng.random((n, 1, 8, 8))
    y = (x.reshape(n, -1) @ W.T + b).argmax(1)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W, self.b = torch.from_numpy(W), torch.from_numpy(b)

        def forward(self, inp):
            return inp.reshape(inp.shape[0], -1) @ self.W.T + self.b

    model = Linear().eval()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    cases = [{"attack": "fgsm", "norm": "linf", "eps": 0.03, "adv": FGSM(model, eps=0.03)(xs, ys).numpy().ravel().tolist()}]
    cases.append(
        {
            "attack": "pgd",
            "norm": "linf",
            "eps": 0.05,
            "alpha": 0.01,
            "steps": 10,
            "adv": PGD(model, eps=0.05, alpha=0.01, steps=10, random_start=False)(xs, ys).numpy().ravel().tolist(),
        }
    )
    cases.append(
        {
            "attack": "pgd",
            "norm": "l2",
            "eps": 0.5,
            "alpha": 0.1,
            "steps": 10,
            "adv": PGDL2(model, eps=0.5, alpha=0.1, steps=10, random_start=False)(xs, ys).numpy().ravel().tolist(),
        }
    )
    return {
        "reference": "torchattacks 23620a6 FGSM, PGD, PGDL2",
        "W": W.ravel().tolist(),
        "b": b.tolist(),
        "x": x.ravel().tolist(),
        "y": y.tolist(),
        "cases": cases,
    }


def fab_cases(rng: np.random.Generator) -> dict:
    """fra31 FABAttack_PT.perturb on a linear model: untargeted with 1 restart (run 0 starts at x0)
    and FAB-T with 1 restart per target; both draw no random numbers."""
    from autoattack.fab_pt import FABAttack_PT

    k, d, n = 10, 64, 8
    W = rng.normal(size=(k, d)) * 0.5
    b = rng.normal(size=k) * 0.1
    x = rng.random((n, 1, 8, 8))
    y = (x.reshape(n, -1) @ W.T + b).argmax(1)
    Wt, bt = torch.from_numpy(W), torch.from_numpy(b)

    def model(inp):
        return (inp.double().reshape(inp.shape[0], -1) @ Wt.T + bt).float()

    cases = []
    for norm, eps in (("Linf", 0.1), ("L2", 0.8)):
        for targeted in (False, True):
            atk = FABAttack_PT(model, norm=norm, n_restarts=1, n_iter=30, eps=eps, seed=0, targeted=targeted, n_target_classes=3)
            adv = atk.perturb(torch.from_numpy(x).float(), torch.from_numpy(y))
            cases.append(
                {
                    "norm": norm.lower(),
                    "eps": eps,
                    "targeted": targeted,
                    "n_target_classes": 3,
                    "n_iter": 30,
                    "adv": adv.detach().numpy().ravel().tolist(),
                }
            )
    return {
        "reference": "fra31/auto-attack a392200 FABAttack_PT.perturb",
        "W": W.ravel().tolist(),
        "b": b.tolist(),
        "x": x.ravel().tolist(),
        "y": y.tolist(),
        "cases": cases,
    }


def square_cases(rng: np.random.Generator) -> dict:
    """fra31 SquareAttack.perturb on float64 linear models, with every torch.rand draw recorded."""
    import autoattack.square as sq

    cases = []
    for channels in (1, 3):
        k, d, n = 10, channels * 64, 6
        W = rng.normal(size=(k, d)) * 0.5
        b = rng.normal(size=k) * 0.1
        x = rng.random((n, channels, 8, 8))
        y = (x.reshape(n, -1) @ W.T + b).argmax(1)
        Wt, bt = torch.from_numpy(W), torch.from_numpy(b)

        def model(inp, Wt=Wt, bt=bt):
            return inp.reshape(inp.shape[0], -1) @ Wt.T + bt

        for norm, eps in (("Linf", 0.08), ("L2", 0.6)):
            draws: list[float] = []
            real_rand = torch.rand

            def recording_rand(*shape, _real=real_rand, _draws=draws, **kw):
                t = _real(*shape, **kw).double()
                _draws.extend(t.ravel().tolist())
                return t

            sq.torch.rand = recording_rand
            try:
                atk = sq.SquareAttack(
                    model, norm=norm, eps=eps, n_queries=300, p_init=0.8, n_restarts=1, seed=0, loss="margin", resc_schedule=False
                )
                adv = atk.perturb(torch.from_numpy(x), torch.from_numpy(y))
            finally:
                sq.torch.rand = real_rand
            cases.append(
                {
                    "channels": channels,
                    "norm": norm.lower(),
                    "eps": eps,
                    "n_queries": 300,
                    "W": W.ravel().tolist(),
                    "b": b.tolist(),
                    "x": x.ravel().tolist(),
                    "y": y.tolist(),
                    "uniforms": draws,
                    "adv": adv.numpy().ravel().tolist(),
                }
            )
    return {"reference": "fra31/auto-attack a392200 SquareAttack.perturb (margin loss, unrescaled schedule)", "cases": cases}


if __name__ == "__main__":
    main()
