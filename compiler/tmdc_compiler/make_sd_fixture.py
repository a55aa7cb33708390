"""The tiny Stable-Diffusion-shaped bundle and its reference verdicts (tests of issue 15).

  python -m tmdc_compiler.make_sd_fixture [--out ../tests/fixtures]

1. `sd_tiny.build` writes a random diffusers folder (seed 0) in a temporary directory;
2. `convert_sd.convert` turns it into `sd-tiny-cifar10/` (a latent-diffusion bundle, CIFAR-10
   prompts, 32 px → 64 px bicubic → 8×8×4 latents) with a small paper-shaped schedule;
3. the PyTorch reference classifier (reference_dc, Li et al.'s staged elimination) built from
   the *diffusers* components — not from the ONNX graphs — labels seeded CIFAR-sized images:
   `sd_reference.json`, which tests/sd_bundle_test.ts compares with the TypeScript engine;
4. `tiny-cifar-surrogate/`: an untrained CIFAR-10 ResNet-18 of width 4, the fine-tune's source.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import portable_rng
from .convert_sd import CIFAR10, convert, load
from .reference_dc import DCSettings, Stage, classify
from .sd_tiny import build

NAME = "sd-tiny-cifar10"
TEMPLATE = "a blurry photo of a {}."
# Li et al.'s shape (a short stage for all classes, keep 5, the rest of the grid for them), small
TINY_DC = {
    "stages": [{"nSamples": 4, "keep": 5}, {"nSamples": 20, "keep": 1}],
    "gridSize": 20,
    "tRange": [0, 1000],
    "error": "l1",
    "timesteps": "even",
    "seed": 0,
    "posteriorScale": 1.0,
}
N_IMAGES = 4
IMAGE_STREAM = 0x51FA


def images(n: int = N_IMAGES) -> np.ndarray:
    """Seeded CIFAR-sized images in [0, 1] (portable_rng: the TS test draws the same)."""
    return portable_rng.uniform(0, IMAGE_STREAM, n * 3 * 32 * 32).reshape(n, 3, 32, 32).astype(np.float32)


def tiny_cifar_surrogate(out: Path) -> None:
    """`tiny-cifar-surrogate/`: an untrained width-4 ResNet-18 (seed 0) exported as the CIFAR-10
    surrogate recipe exports, so the service's CIFAR-10 fine-tune path has a source to attack."""
    from .cifar_surrogate import ResNet18, ResNet18Config, export

    torch.manual_seed(0)
    cfg = ResNet18Config(width=4)
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "final.pt"
        torch.save({"model": ResNet18(cfg).state_dict(), "config": cfg.to_json(), "args": {"epochs": 1, "untrained": True}}, ck)
        export(ck, out / "tiny-cifar-surrogate", "tiny-cifar-surrogate", batch_grad=4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("../tests/fixtures"))
    p.add_argument("--surrogate-only", action="store_true", help="only tiny-cifar-surrogate/")
    a = p.parse_args()
    torch.set_num_threads(2)
    tiny_cifar_surrogate(a.out)
    if a.surrogate_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp) / "sd-tiny", seed=0)
        convert(folder, a.out / NAME, CIFAR10, TEMPLATE, name=NAME, batch=16, batch_grad=4, dc_default=TINY_DC)
        dc, _ = load(folder, CIFAR10, TEMPLATE, None, 4, 4.0)
    s = DCSettings(
        stages=tuple(Stage(st["nSamples"], st["keep"]) for st in TINY_DC["stages"]),
        grid_size=TINY_DC["gridSize"],
        t_range=tuple(TINY_DC["tRange"]),
        error=TINY_DC["error"],
        timesteps=TINY_DC["timesteps"],
        seed=TINY_DC["seed"],
        posterior_scale=TINY_DC["posteriorScale"],
    )
    x = images()
    with torch.no_grad():
        verdicts = classify(dc, x, s, len(CIFAR10), batch_rows=64)
        latents = dc.encode(torch.from_numpy(x)).numpy()
    ref = {
        "bundle": NAME,
        "settings": TINY_DC,
        "images": {"seed": 0, "stream": IMAGE_STREAM, "n": N_IMAGES, "shape": [3, 32, 32]},
        "latent_first_values": latents.reshape(N_IMAGES, -1)[:, :16].tolist(),
        "verdicts": [
            {
                "label": v.label,
                "meanError": v.mean_error.tolist(),
                "counts": v.counts.tolist(),
                "unetCalls": v.unet_calls,
            }
            for v in verdicts
        ],
        "made_by": "python -m tmdc_compiler.make_sd_fixture (reference_dc on the diffusers components)",
    }
    (a.out / "sd_reference.json").write_text(json.dumps(ref))  # then `deno fmt`, as the other fixtures
    print(f"wrote {a.out / NAME} and {a.out / 'sd_reference.json'}: labels {[v.label for v in verdicts]}")


if __name__ == "__main__":
    main()
