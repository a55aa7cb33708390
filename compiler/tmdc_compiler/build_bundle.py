"""Export a trained checkpoint as a model bundle:
`python -m tmdc_compiler.build_bundle diffusion|surrogate|classifier ...` (`classifier`: a baseline
from `train_classifier`, any architecture in baselines.py, clean or adversarially trained)."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import torch

from .baselines import build as build_baseline
from .bundle import write_manifest
from .data import CLASS_NAMES
from .export import export_diffusion, export_surrogate
from .schedule import schedule_json
from .share_weights import share
from .surrogate import ResNet, ResNetConfig
from .unet import CONV_TARGETS, LORA_TARGETS, UNet, UNetConfig

IMAGE = {"channels": 1, "height": 28, "width": 28, "value_range": [0.0, 1.0], "layout": "NCHW", "dtype": "float32"}


def build_diffusion(model: UNet, out: Path, name: str, batch_grad: int, provenance: dict, dc_default: dict | None = None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    graphs = export_diffusion(model, out, batch_grad)
    # The PyTorch weights travel with the bundle so the reference classifier can be rerun from it.
    torch.save(model.state_dict(), out / "torch_state.pt")
    cfg = model.cfg
    manifest = {
        "name": name,
        "version": "1.0.0",
        "kind": "diffusion",
        "image": IMAGE | {"channels": cfg.image_channels, "height": cfg.image_size, "width": cfg.image_size},
        "classes": CLASS_NAMES[: cfg.num_classes]
        if cfg.num_classes <= len(CLASS_NAMES)
        else [str(i) for i in range(cfg.num_classes)],
        "null_class": cfg.num_classes,
        "schedule": schedule_json(),
        "model": {"architecture": "unet", **cfg.to_json(), "parameters": sum(p.numel() for p in model.parameters())},
        "lora": {
            "rank": cfg.lora_rank,
            "alpha": cfg.lora_alpha,
            "targets": list(LORA_TARGETS) + (list(CONV_TARGETS) if cfg.lora_convs else []),
            "tensors": model.lora_layout(),
            "init": "A ~ kaiming-uniform(a=sqrt(5)) as in LoRA, B = 0",
        },
        "graphs": graphs,
        "reference_weights": "torch_state.pt",
        "dc_default": dc_default or {},
        "provenance": provenance,
    }
    write_manifest(out, manifest)
    return share(out)  # one weights file for every graph


def baseline_name(ck: dict) -> str:
    """The bundle name: the architecture's real size, plus how it was trained when not clean."""
    model = build_baseline(ck["arch"], ck["config"])
    eps = ck["args"].get("adv_eps", 0.0)
    return model.cfg.name + (f"-pgdat-linf{eps:g}" if eps > 0 else "")


def build_surrogate(
    model: torch.nn.Module,
    out: Path,
    batch_grad: int,
    provenance: dict,
    name: str | None = None,
    architecture: str = "resnet",
    training: dict | None = None,
) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    graphs = export_surrogate(model, out, batch_grad, (1, 28, 28))
    torch.save(model.state_dict(), out / "torch_state.pt")  # for the reference attacks in PyTorch
    manifest = {
        "name": name or model.cfg.name,
        "version": "1.0.0",
        "kind": "classifier",
        "image": IMAGE,
        "classes": CLASS_NAMES,
        "model": {"architecture": architecture, **model.cfg.to_json(), "parameters": sum(p.numel() for p in model.parameters())},
        **({"training": training} if training else {}),
        "graphs": graphs,
        "reference_weights": "torch_state.pt",
        "provenance": provenance,
    }
    return write_manifest(out, manifest)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kind", choices=["diffusion", "surrogate", "classifier"])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="fmnist-ddpm-unet32")
    ap.add_argument("--batch-grad", type=int, default=32)
    ap.add_argument("--metrics", help="JSON file whose content goes into provenance.metrics")
    ap.add_argument("--dc-default", help="JSON file: the documented default DC settings")
    args = ap.parse_args(argv)
    ck = torch.load(args.checkpoint, weights_only=False)
    from .bundle import git_commit

    module = {"diffusion": "train_diffusion", "surrogate": "train_surrogate", "classifier": "train_classifier"}[args.kind]
    provenance = {
        "training_command": f"python -m tmdc_compiler.{module} "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in ck["args"].items()),
        "training_args": ck["args"],
        "export_command": "python -m tmdc_compiler.build_bundle " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "seed": ck["args"]["seed"],
        "data": "Fashion-MNIST (Debian dataset-fashion-mnist), train split = official train minus a seeded 5,000-image validation split",
        "git_commit": git_commit(),
        "metrics": json.loads(Path(args.metrics).read_text()) if args.metrics else {},
    }
    if args.kind == "diffusion":
        model = UNet(UNetConfig.from_json(ck["config"]))
        model.load_state_dict(ck["ema"])
        provenance["training_steps"] = ck["step"]
        dc = json.loads(Path(args.dc_default).read_text()) if args.dc_default else None
        m = build_diffusion(model, Path(args.out), args.name, args.batch_grad, provenance, dc)
    elif args.kind == "classifier":
        model = build_baseline(ck["arch"], ck["config"])
        model.load_state_dict(ck["model"])
        provenance["training_history"] = ck.get("history", [])
        eps = ck["args"].get("adv_eps", 0.0)
        training = {
            "method": "PGD adversarial training (Madry et al.)" if eps > 0 else "clean (cross-entropy)",
            "adversarial": {
                "norm": "linf",
                "eps": eps,
                "steps": ck["args"]["adv_steps"],
                "step_size": 2.5 * eps / ck["args"]["adv_steps"],
                "random_start": True,
                "attack_mode": "model in eval mode during the inner PGD",
            }
            if eps > 0
            else None,
            "epochs": ck["args"]["epochs"],
        }
        m = build_surrogate(model, Path(args.out), args.batch_grad, provenance, baseline_name(ck), ck["arch"], training)
    else:
        model = ResNet(ResNetConfig(**ck["config"]))
        model.load_state_dict(ck["model"])
        m = build_surrogate(model, Path(args.out), args.batch_grad, provenance)
    print(json.dumps({"bundle": args.out, "files": m["files"]}, indent=2))


if __name__ == "__main__":
    main()
