"""Add the purification graphs to the tiny test bundle and write the reference DiffPure numbers
the TypeScript engine must reproduce (tests/diffpure_test.ts): purified images, the tiny
surrogate's logits on them, and the input gradient of their cross-entropy through every reverse
step (autograd).

`python -m tmdc_compiler.make_diffpure_fixture` (from compiler/; rebuilds the tiny models exactly
as make_fixtures does, seeds 0 and 1, so it needs no weights file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from . import portable_rng
from .bundle import load_manifest, write_manifest
from .data import load_split
from .export import export_eps_pred
from .make_fixtures import TINY
from .reference_diffpure import purify
from .surrogate import ResNet, ResNetConfig
from .unet import UNet

T_STAR, STEPS, SEED, DRAW, N = 60, 4, 5, 1, 3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", default="../tests/fixtures")
    args = ap.parse_args(argv)
    fx = Path(args.fixtures)
    torch.manual_seed(0)
    unet = UNet(TINY).eval()
    torch.manual_seed(1)
    resnet = ResNet(ResNetConfig(depth=8, width=4)).eval()
    bundle = fx / "tiny-diffusion"
    m = load_manifest(bundle)
    m["graphs"].update(export_eps_pred(unet, bundle, 3))
    write_manifest(bundle, m)
    for p in unet.parameters():
        p.requires_grad_(False)
    for p in resnet.parameters():
        p.requires_grad_(False)

    test = load_split("test")
    x = torch.from_numpy(test.as_float()[:N]).requires_grad_(True)
    y = torch.from_numpy(test.labels[:N]).long()
    d = x[0].numel()
    noise = torch.from_numpy(portable_rng.normal(SEED, 0xD1FF + DRAW, d)).float().reshape(x.shape[1:])
    x0 = purify(unet, x, T_STAR, STEPS, noise, m["null_class"])
    z = resnet(x0)
    (g,) = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), x)
    out = {
        "command": "python -m tmdc_compiler.make_diffpure_fixture",
        "settings": {"tStar": T_STAR, "steps": STEPS},
        "seed": SEED,
        "draw": DRAW,
        "n": N,
        "labels": y.tolist(),
        "purified": x0.detach().flatten().tolist(),
        "logits": z.detach().flatten().tolist(),
        "grad": g.flatten().tolist(),
    }
    (fx / "diffpure_reference.json").write_text(json.dumps(out) + "\n")
    print(f"wrote {fx / 'diffpure_reference.json'} and the tiny bundle's eps_pred graphs")


if __name__ == "__main__":
    main()
