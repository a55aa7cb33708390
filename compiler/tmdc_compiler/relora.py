"""Re-export a diffusion bundle with another LoRA rank (the Truth-Maximization capacity study):
`python -m tmdc_compiler.relora --bundle ../models/fmnist-ddpm-unet32 --rank 16 --out DIR`
(`--convs`: LoRA on the ResBlocks' convolutions as well as attention).

LoRA tensors are graph inputs, not weights, so the same trained UNet serves every rank; only the
graphs' input shapes and the manifest's layout change. alpha = rank keeps the LoRA scale at 1."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from .build_bundle import build_diffusion
from .unet import UNet, UNetConfig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundle", required=True, help="a diffusion bundle folder")
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-grad", type=int, default=32)
    ap.add_argument("--convs", action="store_true", help="LoRA on every ResBlock's 3x3 convolutions too")
    args = ap.parse_args(argv)
    src = Path(args.bundle)
    manifest = json.loads((src / "manifest.json").read_text())
    cfg = {k: v for k, v in manifest["model"].items() if k not in ("architecture", "parameters")}
    cfg |= {"lora_rank": args.rank, "lora_alpha": float(args.rank), "lora_convs": args.convs}
    model = UNet(UNetConfig.from_json(cfg))
    model.load_state_dict(torch.load(src / "torch_state.pt", weights_only=True))
    provenance = manifest["provenance"] | {
        "relora_command": "python -m tmdc_compiler.relora " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "relora_from": f"{manifest['name']}@{manifest['version']}",
    }
    name = f"{manifest['name']}-lora{args.rank}{'-convs' if args.convs else ''}"
    m = build_diffusion(model, Path(args.out), name, args.batch_grad, provenance, manifest.get("dc_default"))
    print(json.dumps({"bundle": args.out, "name": name, "files": m["files"]}, indent=2))


if __name__ == "__main__":
    main()
