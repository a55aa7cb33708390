"""Spec §8 level 3: fra31/auto-attack `standard` on the surrogate's PyTorch weights.

  python -m tmdc_compiler.reference_autoattack --autoattack /path/to/fra31 --bundle ../models/resnet14-fmnist \\
      --n 256 --seed 0 --norm Linf --eps 0.0313725 --json OUT

Per-attack cumulative robust flags come from running the first k attacks of the version
(the reference reseeds every attack with the same seed and runs it on the points still
robust, so a prefix run reproduces the state after attack k). One batch (bs = n).
The reference code is fetched beside the project, never committed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .baselines import build as build_baseline
from .bundle import load_manifest
from .data import load_split, portable_subset
from .surrogate import ResNet, ResNetConfig

STANDARD = ["apgd-ce", "apgd-t", "fab-t", "square"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--autoattack", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--norm", choices=["Linf", "L2"], required=True)
    ap.add_argument("--eps", type=float, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="-")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.autoattack)
    from autoattack import AutoAttack

    m = load_manifest(args.bundle)
    cfg = {k: v for k, v in m["model"].items() if k not in ("architecture", "parameters")}
    arch = m["model"].get("architecture", "resnet")
    model = ResNet(ResNetConfig(**cfg)) if arch == "resnet" else build_baseline(arch, cfg)
    model.load_state_dict(torch.load(Path(args.bundle) / m["reference_weights"], weights_only=True))
    model.eval()
    test = load_split("test")
    idx = portable_subset(len(test.labels), args.n, args.seed)
    x = torch.from_numpy(test.as_float()[idx])
    y = torch.from_numpy(test.labels[idx])
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).numpy().astype(int)
    stages = []
    t0 = time.time()
    for k in range(1, len(STANDARD) + 1):
        aa = AutoAttack(model, norm=args.norm, eps=args.eps, version="standard", seed=0, verbose=False, device="cpu")
        aa.attacks_to_run = STANDARD[:k]
        x_adv = aa.run_standard_evaluation(x, y, bs=args.n)
        with torch.no_grad():
            flags = ((model(x_adv).argmax(1) == y).numpy().astype(int) * clean).tolist()
        stages.append({"attack": STANDARD[k - 1], "robust_accuracy": float(np.mean(flags)), "robust": flags})
        print(f"[aa] after {STANDARD[k - 1]}: {np.mean(flags):.4f} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    out = {
        "benchmark": "autoattack-reference",
        "reference": "fra31/auto-attack a392200, version standard, seed 0, bs = n",
        "command": "python -m tmdc_compiler.reference_autoattack " + " ".join(argv or sys.argv[1:]),
        "bundle": f"{m['name']}@{m['version']}",
        "n": args.n,
        "seed": args.seed,
        "norm": args.norm.lower(),
        "eps": args.eps,
        "clean": clean.tolist(),
        "clean_accuracy": float(clean.mean()),
        "stages": stages,
        "seconds_all_prefix_runs": time.time() - t0,
    }
    text = json.dumps(out)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
