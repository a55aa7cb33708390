"""Write the TypeScript tests' fixtures: tiny real bundles and PyTorch reference outputs.

`python -m tmdc_compiler.make_fixtures --out tests/fixtures` (seeded; rerun after changing
the exporter or the reference classifier).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import portable_rng
from .build_bundle import build_diffusion, build_surrogate
from .data import load_split
from .reference_dc import DCSettings, Stage, classify
from .schedule import alphas_cumprod, eps_errors
from .surrogate import ResNet, ResNetConfig
from .unet import UNet, UNetConfig

TINY = UNetConfig(base_channels=8, channel_mult=(1, 2), attention_levels=(1,), groups=4, heads=2, dropout=0.0)


def _floats(a) -> list:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="tests/fixtures")
    args = ap.parse_args(argv)
    out = Path(args.out)
    torch.manual_seed(0)
    unet = UNet(TINY).eval()
    prov = {"command": "python -m tmdc_compiler.make_fixtures", "seed": 0, "note": "random weights, for tests only"}
    build_diffusion(unet, out / "tiny-diffusion", "tiny-diffusion", 3, prov)
    torch.manual_seed(1)
    resnet = ResNet(ResNetConfig(depth=8, width=4)).eval()
    build_surrogate(resnet, out / "tiny-surrogate", 3, prov)

    test = load_split("test")
    imgs = test.as_float()[:4]
    fx: dict = {"images": _floats(imgs), "labels": [int(v) for v in test.labels[:4]], "dc": []}
    for s in (
        DCSettings(stages=(Stage(6, 3), Stage(12, 1)), grid_size=12, error="l2", seed=0),
        DCSettings(
            stages=(Stage(4, 5), Stage(8, 2), Stage(16, 1)),
            grid_size=16,
            error="l1",
            timesteps="stratified",
            seed=7,
            t_range=(100, 900),
        ),
    ):
        verdicts = classify(unet, imgs, s, 10, batch_rows=5)
        fx["dc"].append(
            {
                "settings": {
                    "stages": [{"nSamples": st.n_samples, "keep": st.keep} for st in s.stages],
                    "gridSize": s.grid_size,
                    "tRange": list(s.t_range),
                    "error": s.error,
                    "timesteps": s.timesteps,
                    "seed": s.seed,
                    "posteriorScale": 1,
                },
                "grid": [int(t) for t in s.full_grid()],
                "verdicts": [
                    {
                        "label": v.label,
                        "errorSum": _floats(v.errors_sum),
                        "count": [int(c) for c in v.counts],
                        "unetCalls": v.unet_calls,
                    }
                    for v in verdicts
                ],
            }
        )

    # Gradient rows: 5 rows through fixed-batch-3 graphs (two chunks, one padded).
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 1, 28, 28, generator=g)
    t = torch.randint(0, 1000, (5,), generator=g)
    eps = torch.randn(5, 1, 28, 28, generator=g)
    c = torch.randint(0, 11, (5,), generator=g)
    lora = [torch.randn(e["shape"], generator=g) * 0.3 for e in unet.lora_layout()]
    w2 = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0])
    w1 = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5])
    xr = x.clone().requires_grad_(True)
    leaves = [a.clone().requires_grad_(True) for a in lora]
    l2, l1 = eps_errors(unet, xr, t, eps, c, alphas_cumprod(), leaves)
    gx = torch.autograd.grad((w2 * l2).sum() + (w1 * l1).sum(), xr, retain_graph=True)[0]
    gl = torch.autograd.grad((w2 * l2).sum(), leaves)
    fx["rows"] = {
        "x": _floats(x),
        "t": t.tolist(),
        "eps": _floats(eps),
        "cls": c.tolist(),
        "lora": [_floats(a) for a in lora],
        "w_l2": w2.tolist(),
        "w_l1": w1.tolist(),
        "l2": _floats(l2.detach()),
        "l1": _floats(l1.detach()),
        "grad_x": _floats(gx),
        "grad_lora_w_l2": [_floats(a) for a in gl],
    }
    xs = torch.from_numpy(imgs[:3].copy()).requires_grad_(True)
    wz = torch.randn(3, 10, generator=g)
    z = resnet(xs)
    fx["surrogate"] = {
        "w": _floats(wz),
        "logits": _floats(z.detach()),
        "grad_x": _floats(torch.autograd.grad((wz * z).sum(), xs)[0]),
    }
    fx["rng"] = {
        "uniform_0_0": _floats(portable_rng.uniform(0, 0, 4)),
        "normal_1_2": _floats(portable_rng.normal(1, 2, 4)),
        "uniform_9_5_offset3": _floats(portable_rng.uniform(9, 5, 3, offset=3)),
    }
    (out / "reference.json").write_text(json.dumps(fx))
    print(f"wrote {out}/tiny-diffusion, {out}/tiny-surrogate, {out}/reference.json")


if __name__ == "__main__":
    main()
