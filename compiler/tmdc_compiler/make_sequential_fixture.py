"""Write the reference verdicts of sequential class pruning on the tiny bundle for the TypeScript
parity test (tests/class_pruning_test.ts).

`python -m tmdc_compiler.make_sequential_fixture --out tests/fixtures/sequential_reference.json`
rebuilds the tiny UNet exactly as `make_fixtures` does (seed 0), so it needs no weights file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .data import load_split, portable_subset
from .make_fixtures import TINY
from .reference_dc import DCSettings, Sequential, Stage, classify
from .unet import UNet

SETTINGS = DCSettings(
    stages=(Stage(20, 1),),
    grid_size=20,
    t_range=(0, 1000),
    error="l1",
    seed=7,
    sequential=Sequential(z=1.0, batch=2, min_timesteps=4, max_timesteps=16, order_seed=3),
)
N, SUBSET_SEED = 12, 5


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="tests/fixtures/sequential_reference.json")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    unet = UNet(TINY).eval()
    test = load_split("test")
    idx = portable_subset(len(test.labels), N, SUBSET_SEED)
    verdicts = classify(unet, test.as_float()[idx], SETTINGS, 10, batch_rows=7)
    out = {
        "command": "python -m tmdc_compiler.make_sequential_fixture",
        "subset": {"n": N, "seed": SUBSET_SEED},
        "settings": {
            "stages": [{"nSamples": 20, "keep": 1}],
            "gridSize": 20,
            "tRange": [0, 1000],
            "error": "l1",
            "timesteps": "even",
            "seed": 7,
            "posteriorScale": 1,
            "sequential": {"z": 1.0, "batch": 2, "minTimesteps": 4, "maxTimesteps": 16, "orderSeed": 3},
        },
        "labels": [v.label for v in verdicts],
        "unet_calls": [v.unet_calls for v in verdicts],
        "stop": [v.stop for v in verdicts],
        "exit_at": [v.exit_at for v in verdicts],
        "mean_errors": [v.mean_error.tolist() for v in verdicts],
    }
    Path(args.out).write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
