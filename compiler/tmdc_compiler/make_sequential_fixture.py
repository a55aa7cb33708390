"""Write the reference verdicts of sequential class pruning on the tiny bundle for the TypeScript
parity test (tests/class_pruning_test.ts).

`python -m tmdc_compiler.make_sequential_fixture --out tests/fixtures/sequential_reference.json`
rebuilds the tiny UNet exactly as `make_fixtures` does (seed 0), so it needs no weights file.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from .data import load_split, portable_subset
from .evaluate import settings_to_json
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
# deterministic, uneven timestep weights (exactly representable) for the weighted cases
WEIGHTS = tuple(0.25 + (j % 7) * 0.375 for j in range(20))


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
        "weighted": [weighted_case(unet, test.as_float()[idx], st) for st in weighted_settings()],
    }
    Path(args.out).write_text(json.dumps(out) + "\n")


def weighted_settings() -> list[DCSettings]:
    staged = replace(SETTINGS, sequential=None, stages=(Stage(5, 3), Stage(20, 1)), weights=WEIGHTS)
    return [replace(SETTINGS, weights=WEIGHTS), staged]


def weighted_case(unet, images, settings: DCSettings) -> dict:
    verdicts = classify(unet, images, settings, 10, batch_rows=7)
    return {
        "settings": settings_to_json(settings),
        "labels": [v.label for v in verdicts],
        "unet_calls": [v.unet_calls for v in verdicts],
        "mean_errors": [v.mean_error.tolist() for v in verdicts],
    }


if __name__ == "__main__":
    main()
