"""UNet calls per second of a latent-diffusion classifier graph on ONNX Runtime (issue 15).

  python -m tmdc_compiler.sd_throughput --shape tiny|sd2 [--dtype float16] [--providers cuda,cpu] \\
      [--rows 8,32] [--seconds 10] [--json ../docs/results/sd_throughput_<device>.json]

Builds a random-weight diffusers folder (`sd_tiny.build`: the tiny test model, or SD 2 base's
real shapes — a 865M-parameter UNet at 64×64 latents, 4,096 attention tokens), exports the
classifier's `eps_loss` graph exactly as `convert_sd` does (optionally float16 inside), and times
one session on the requested providers. The report names the provider that actually ran: when
CUDA was asked for and ONNX Runtime fell back to the CPU, it says so (`cpu_fallback: true`).
The whole bundle's throughput through the service's own adapter is `deno task cli bench
unet-throughput --bundle DIR [--cuda]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from .convert_sd import CIFAR10, HelpFormatter, export_latent, load, strip_metadata, to_float16
from .sd_tiny import build

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def measure(shape: str, dtype: str, providers: list[str], rows: list[int], seconds: float, threads: int) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        folder = build(Path(tmp) / "sd", seed=0, shape=shape)
        dc, info = load(folder, CIFAR10, "a blurry photo of a {}.", None, 4, 4.0)
        params = sum(p.numel() for p in dc.unet.parameters())
        cells = []
        for b in rows:
            out = Path(tmp) / f"b{b}"
            out.mkdir()
            graphs = export_latent(dc, out, (3, 32, 32), batch_grad=1, batch=b, only=("eps_loss",))
            strip_metadata(out, graphs)
            if dtype == "float16":
                to_float16(out, graphs)
            export_s = time.time() - t0
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(out / "eps_loss.onnx"), opts, providers=[PROVIDERS[p] for p in providers])
            used = sess.get_providers()[0]
            g = np.random.default_rng(0)
            zc, zh, zw = dc.noise_shape
            feeds = {
                "z": g.standard_normal((b, zc, zh, zw), dtype=np.float32),
                "t": g.integers(0, 1000, b).astype(np.int64),
                "eps": g.standard_normal((b, zc, zh, zw), dtype=np.float32),
                "class": (np.arange(b) % 10).astype(np.int64),
            } | {e["name"]: np.zeros(e["shape"], np.float32) for e in dc.lora_layout()}
            sess.run(None, feeds)  # warm-up
            n, t1 = 0, time.time()
            while time.time() - t1 < seconds or n == 0:
                sess.run(None, feeds)
                n += 1
            s = time.time() - t1
            cells.append({"rows_per_call": b, "calls": n, "seconds": round(s, 3), "unet_calls_per_s": round(n * b / s, 2)})
            print(json.dumps(cells[-1] | {"provider": used}), flush=True)
            t0 = time.time()
    return {
        "benchmark": "sd-throughput",
        "what": "UNet calls/s of a latent-diffusion bundle's eps_loss graph (random weights), ONNX Runtime",
        "shape": shape,
        "unet_parameters": params,
        "latent": list(dc.noise_shape),
        "resolution": info["resolution"],
        "dtype": dtype,
        "providers_requested": providers,
        "provider_used": used,
        "cpu_fallback": "cuda" in providers and used != PROVIDERS["cuda"],
        "export_seconds_last": round(export_s, 1),
        "cells": cells,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": threads,
            "onnxruntime": ort.__version__,
            "available_providers": ort.get_available_providers(),
            "gpu": _gpu_name(),
        },
    }


def measure_torch(shape: str, dtype: str, rows: list[int], seconds: float) -> dict:
    """The same classifier step (encode-free: latents in, errors out) in PyTorch on CUDA when
    present: the reference point for what the ONNX Runtime path should approach on a GPU."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = torch.float16 if dtype == "float16" and dev == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp) / "sd", seed=0, shape=shape)
        dc, _ = load(folder, CIFAR10, "a blurry photo of a {}.", None, 4, 4.0)
    dc = dc.to(dev, dt)
    cells = []
    for b in rows:
        g = torch.Generator(device="cpu").manual_seed(0)
        z = torch.randn(b, *dc.noise_shape, generator=g).to(dev, dt)
        eps = torch.randn(b, *dc.noise_shape, generator=g).to(dev, dt)
        t = torch.randint(0, 1000, (b,), generator=g).to(dev)
        c = (torch.arange(b) % 10).to(dev)
        with torch.no_grad():
            dc.errors(z, t, eps, c)
            if dev == "cuda":
                torch.cuda.synchronize()
            n, t1 = 0, time.time()
            while time.time() - t1 < seconds or n == 0:
                dc.errors(z, t, eps, c)
                n += 1
            if dev == "cuda":
                torch.cuda.synchronize()
        s = time.time() - t1
        cells.append({"rows_per_call": b, "calls": n, "seconds": round(s, 3), "unet_calls_per_s": round(n * b / s, 2)})
        print(json.dumps(cells[-1] | {"engine": f"torch-{dev}"}), flush=True)
    return {
        "benchmark": "sd-throughput-torch",
        "shape": shape,
        "device": dev,
        "dtype": str(dt),
        "cells": cells,
        "gpu": _gpu_name(),
    }


def _gpu_name() -> str | None:
    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - a broken driver is "no GPU" here
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--shape", choices=["tiny", "sd2"], default="tiny")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--providers", default="cpu", help="comma-separated, in order: cuda,cpu")
    p.add_argument("--rows", default="8,32", help="rows per call (the graph's fixed batch), comma-separated")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engine", choices=["onnxruntime", "torch"], default="onnxruntime", help="torch: the PyTorch reference point")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    providers = [s.strip() for s in a.providers.split(",") if s.strip()]
    unknown = [q for q in providers if q not in PROVIDERS]
    if unknown or not providers:
        p.error(f"--providers: {', '.join(unknown) or '(none)'} — choose from {', '.join(PROVIDERS)}")
    try:
        rows = [int(r) for r in a.rows.split(",")]
    except ValueError:
        p.error(f"--rows {a.rows!r}: comma-separated integers")
    if min(rows) < 1 or a.seconds <= 0 or a.threads < 1:
        p.error("--rows must be ≥ 1, --seconds > 0, --threads ≥ 1")
    if a.engine == "torch":
        report = measure_torch(a.shape, a.dtype, rows, a.seconds)
    else:
        report = measure(a.shape, a.dtype, providers, rows, a.seconds, a.threads)
    report["command"] = "python -m tmdc_compiler.sd_throughput " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if v is not None and k != "json"
    )
    text = json.dumps(report, indent=2)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
