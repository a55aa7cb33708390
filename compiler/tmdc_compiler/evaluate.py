"""Benchmarks on Fashion-MNIST that print JSON (the numbers in docs/results/).

  python -m tmdc_compiler.evaluate dc --bundle models/fmnist-ddpm-unet32 --n 1024 --seed 0 [--settings JSON] [--split test]
  python -m tmdc_compiler.evaluate surrogate --bundle models/resnet14-fmnist --n 1024 --seed 0
  python -m tmdc_compiler.evaluate tune --bundle models/fmnist-ddpm-unet32 --n 256       (validation split only)
  python -m tmdc_compiler.evaluate parity TS.json PY.json

Subsets are `data.portable_subset(len(split), n, seed)`, the same images the TypeScript
bench uses. The reference DC runs the bundle's PyTorch weights (`torch_state.pt`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .bundle import load_manifest, record_metrics
from .data import load_split, portable_subset
from .reference_dc import DCSettings, Sequential, Stage, classify, wilson
from .unet import UNet, UNetConfig


def machine() -> dict:
    return {
        "os": f"{platform.system()}-{platform.machine()}",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }


def settings_from_json(d: dict) -> DCSettings:
    """camelCase settings as in the manifest's dc_default and the TypeScript engine."""
    base = DCSettings()
    return DCSettings(
        stages=tuple(Stage(s["nSamples"], s["keep"]) for s in d["stages"]) if "stages" in d else base.stages,
        grid_size=d.get("gridSize", base.grid_size),
        t_range=tuple(d.get("tRange", base.t_range)),
        error=d.get("error", base.error),
        timesteps=d.get("timesteps", base.timesteps),
        seed=d.get("seed", base.seed),
        posterior_scale=d.get("posteriorScale", base.posterior_scale),
        sequential=Sequential(q["z"], q["batch"], q["minTimesteps"], q["maxTimesteps"], q.get("orderSeed", 0))
        if (q := d.get("sequential"))
        else None,
        weights=tuple(float(w) for w in d["weights"]) if d.get("weights") else None,
    )


def settings_to_json(s: DCSettings) -> dict:
    return {
        "stages": [{"nSamples": st.n_samples, "keep": st.keep} for st in s.stages],
        "gridSize": s.grid_size,
        "tRange": list(s.t_range),
        "error": s.error,
        "timesteps": s.timesteps,
        "seed": s.seed,
        "posteriorScale": s.posterior_scale,
        **({"weights": list(s.weights)} if s.weights else {}),
        **(
            {
                "sequential": {
                    "z": s.sequential.z,
                    "batch": s.sequential.batch,
                    "minTimesteps": s.sequential.min_timesteps,
                    "maxTimesteps": s.sequential.max_timesteps,
                    "orderSeed": s.sequential.order_seed,
                }
            }
            if s.sequential
            else {}
        ),
    }


def load_unet(bundle: Path) -> tuple[UNet, dict]:
    if bundle.suffix == ".pt":  # a training checkpoint, for tuning before export
        ck = torch.load(bundle, weights_only=False)
        model = UNet(UNetConfig.from_json(ck["config"]))
        # Early in training the EMA still holds much of the random init (0.999^750 ≈ 0.47):
        # TMDC_WEIGHTS=model reads the raw weights instead.
        model.load_state_dict(ck[os.environ.get("TMDC_WEIGHTS", "ema")])
        return model.eval(), {"name": f"checkpoint:{bundle}", "version": str(ck["step"]), "dc_default": {}}
    m = load_manifest(bundle)
    model = UNet(UNetConfig.from_json({k: v for k, v in m["model"].items() if k not in ("architecture", "parameters")}))
    model.load_state_dict(torch.load(bundle / m["reference_weights"], weights_only=True))
    return model.eval(), m


def run_dc(model: UNet, images: np.ndarray, labels: np.ndarray, s: DCSettings, chunk: int = 64) -> dict:
    t0 = time.time()
    verdicts = []
    for i in range(0, len(images), chunk):
        verdicts += classify(model, images[i : i + chunk], s, 10, batch_rows=1024)
        print(f"[dc] {len(verdicts)}/{len(images)} images, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    secs = time.time() - t0
    pred = np.array([v.label for v in verdicts])
    k = int((pred == labels).sum())
    return {
        "n": len(labels),
        "correct": k,
        "accuracy": k / len(labels),
        "ci95": list(wilson(k, len(labels))),
        "unet_calls_per_image": s.unet_calls(10),
        "unet_calls_total": int(sum(v.unet_calls for v in verdicts)),
        "seconds": secs,
        "images_per_second": len(labels) / secs,
        "labels": pred.tolist(),
        "unet_calls": [v.unet_calls for v in verdicts],
        "mean_errors": [v.mean_error.tolist() for v in verdicts],
        "finalists": [v.finalists for v in verdicts],
    }


def fit_posterior_scale(r: dict, labels: np.ndarray) -> dict:
    """Scale minimising the NLL of the true class under softmax(-err*scale) over the finalists
    (images whose true class was eliminated early are skipped: their posterior is 0 at any scale)."""
    grid = [1, 3, 10, 30, 100, 300, 1000, 3000, 10000]
    rows = [
        (np.array(e)[f], f.index(int(y))) for e, f, y in zip(r["mean_errors"], r["finalists"], labels, strict=True) if int(y) in f
    ]
    nll = []
    for s in grid:
        total = 0.0
        for err, k in rows:
            z = -err * s
            z = z - z.max()
            total -= z[k] - np.log(np.exp(z).sum())
        nll.append(total / max(len(rows), 1))
    best = int(np.argmin(nll))
    return {"scale": grid[best], "nll": nll[best], "grid": grid, "nll_per_scale": nll, "images": len(rows)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dc")
    d.add_argument("--bundle", required=True)
    d.add_argument("--n", type=int, default=1024)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--split", default="test", choices=["test", "validation"])
    d.add_argument("--settings", help="JSON; default: the bundle's dc_default")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--json", default="-")
    d.add_argument("--record", action="store_true", help="also store the summary in the bundle manifest")
    for name in ("surrogate", "classifier"):  # any classifier bundle; the name keys its metric
        s = sub.add_parser(name)
        s.add_argument("--bundle", required=True)
        s.add_argument("--n", type=int, default=1024)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--json", default="-")
        s.add_argument("--record", action="store_true", help="also store the summary in the bundle manifest")
    t = sub.add_parser("tune")
    t.add_argument("--bundle", required=True)
    t.add_argument("--n", type=int, default=256)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--threads", type=int, default=2)
    a = sub.add_parser("aa-compare", help="TypeScript vs fra31 AutoAttack: paired sign test per attack stage")
    a.add_argument("ts")
    a.add_argument("py")
    f = sub.add_parser("aa-final", help="a bench paper AutoAttack cell vs fra31 on the same images: final robust flags")
    f.add_argument("--state", required=True, help="bench paper's cells.json")
    f.add_argument("--cell", required=True, help="block|row|cell key of the TypeScript AutoAttack cell")
    f.add_argument("--reference", required=True, help="reference_autoattack's JSON")
    f.add_argument("--json", default="-")
    p = sub.add_parser("parity")
    p.add_argument("ts")
    p.add_argument("py")
    p.add_argument("--json", default="-")
    args = ap.parse_args(argv)
    command = "python -m tmdc_compiler.evaluate " + " ".join(argv or sys.argv[1:])

    if args.cmd == "dc":
        torch.set_num_threads(args.threads)
        model, m = load_unet(Path(args.bundle))
        st = settings_from_json(json.loads(args.settings) if args.settings else m.get("dc_default") or {})
        split = load_split(args.split)
        idx = portable_subset(len(split.labels), args.n, args.seed)
        r = run_dc(model, split.as_float()[idx], split.labels[idx], st)
        out = {
            "benchmark": "classify-reference",
            "what": "reference diffusion classifier (PyTorch, compiler/reference_dc.py)",
            "command": command,
            "split": args.split,
            "seed": args.seed,
            **r,
            "schedule": settings_to_json(st),
            "bundle": f"{m['name']}@{m['version']}",
            "machine": machine(),
        }
    elif args.cmd in ("surrogate", "classifier"):
        import onnxruntime as ort

        m = load_manifest(args.bundle)
        sess = ort.InferenceSession(str(Path(args.bundle) / m["graphs"]["logits"]["file"]), providers=["CPUExecutionProvider"])
        test = load_split("test")
        idx = portable_subset(len(test.labels), args.n, args.seed)
        t0 = time.time()
        x = test.as_float()
        full = np.concatenate([sess.run(None, {"x": x[i : i + 1000]})[0].argmax(1) for i in range(0, len(x), 1000)])
        secs = time.time() - t0
        k = int((full[idx] == test.labels[idx]).sum())
        kf = int((full == test.labels).sum())
        out = {
            "benchmark": f"{args.cmd}-clean",
            "what": f"{m['name']} clean accuracy through its ONNX logits graph (onnxruntime)",
            "command": command,
            "n": args.n,
            "seed": args.seed,
            "correct": k,
            "accuracy": k / args.n,
            "ci95": list(wilson(k, args.n)),
            "full_test": {"n": len(full), "accuracy": kf / len(full), "ci95": list(wilson(kf, len(full)))},
            "seconds_full_test": secs,
            "bundle": f"{m['name']}@{m['version']}",
            "machine": machine(),
        }
    elif args.cmd == "tune":
        torch.set_num_threads(args.threads)
        model, m = load_unet(Path(args.bundle))
        val = load_split("validation")
        idx = portable_subset(len(val.labels), args.n, args.seed)
        x, y = val.as_float()[idx], val.labels[idx]
        rows = []
        for cand in json.loads(os.environ.get("TMDC_TUNE_CANDIDATES", "[]")) or default_candidates():
            st = settings_from_json(cand)
            r = run_dc(model, x, y, st)
            rows.append(
                {
                    "settings": cand,
                    "posterior_scale": fit_posterior_scale(r, y),
                    "accuracy": r["accuracy"],
                    "ci95": r["ci95"],
                    "unet_calls_per_image": r["unet_calls_per_image"],
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        out = {
            "benchmark": "dc-schedule-tuning",
            "split": "validation",
            "n": args.n,
            "seed": args.seed,
            "command": command,
            "results": rows,
            "machine": machine(),
        }
    elif args.cmd == "aa-final":
        cell = json.loads(Path(args.state).read_text())["cells"][args.cell]
        ref = json.loads(Path(args.reference).read_text())
        f_ts = np.array(cell["flags"])
        f_py = np.array(ref["stages"][-1]["robust"])
        if len(f_ts) != len(f_py) or ref["n"] != cell["n"]:
            raise SystemExit(f"different images: {cell['n']} vs {ref['n']}")
        b = int(((f_ts == 1) & (f_py == 0)).sum())
        c = int(((f_ts == 0) & (f_py == 1)).sum())
        out = {
            "benchmark": "autoattack-final-agreement",
            "what": "TypeScript AutoAttack (standard) through the evaluation engine vs fra31/auto-attack on the bundle's PyTorch weights, same images: final robust flags",
            "command": command,
            "cell": args.cell,
            "n": cell["n"],
            "ts_robust_accuracy": float(f_ts.mean()),
            "reference_robust_accuracy": float(f_py.mean()),
            "reference_per_stage": [{"attack": s["attack"], "robust_accuracy": s["robust_accuracy"]} for s in ref["stages"]],
            "robust_only_ts": b,
            "robust_only_reference": c,
            "sign_test_p": sign_test(b, c),
            "agree": sign_test(b, c) > 0.01,
            "reference_command": ref["command"],
        }
    elif args.cmd == "aa-compare":
        ts, py = json.loads(Path(args.ts).read_text()), json.loads(Path(args.py).read_text())
        rows = []
        for st_ts, st_py in zip(ts["stages"], py["stages"], strict=True):
            f_ts, f_py = np.array(st_ts["robust"]), np.array(st_py["robust"])
            b = int(((f_ts == 1) & (f_py == 0)).sum())  # robust only in TypeScript
            c = int(((f_ts == 0) & (f_py == 1)).sum())  # robust only in the reference
            rows.append(
                {
                    "attack": st_py["attack"],
                    "ts": st_ts["robust_accuracy"],
                    "reference": st_py["robust_accuracy"],
                    "robust_only_ts": b,
                    "robust_only_reference": c,
                    "sign_test_p": sign_test(b, c),
                    "agree": sign_test(b, c) > 0.01,
                }
            )
        out = {
            "benchmark": "autoattack-level3",
            "norm": py["norm"],
            "eps": py["eps"],
            "n": py["n"],
            "seed": py["seed"],
            "clean": {"ts": ts["clean_accuracy"], "reference": py["clean_accuracy"]},
            "stages": rows,
            "all_agree": all(r["agree"] for r in rows),
            "ts_command": ts["command"],
            "reference_command": py["command"],
        }
    else:
        ts, py = json.loads(Path(args.ts).read_text()), json.loads(Path(args.py).read_text())
        a, b = np.array(ts["mean_errors"]), np.array(py["mean_errors"])
        mask = (a > 0) & (b > 0)
        rel = float(np.abs(a[mask] - b[mask]).max() / np.abs(b[mask]).max())
        per = float((np.abs(a[mask] - b[mask]) / np.abs(b[mask])).max())
        agree = int((np.array(ts["labels"]) == np.array(py["labels"])).sum())
        calls = (
            int((np.array(ts["unet_calls"]) == np.array(py["unet_calls"])).sum())
            if "unet_calls" in ts and "unet_calls" in py
            else None
        )
        out = {
            "benchmark": "dc-parity",
            "n": len(ts["labels"]),
            "labels_agree": agree,
            "unet_calls_agree": calls,
            "max_abs_over_max_rel": rel,
            "max_elementwise_rel": per,
            "ts_images_per_second": ts["images_per_second"],
            "py_images_per_second": py["images_per_second"],
            "ts_bundle": ts["bundle"],
            "py_bundle": py["bundle"],
            "schedule_equal": ts["schedule"] == py["schedule"],
        }
    if getattr(args, "record", False):
        summary = {
            k: out[k]
            for k in ("what", "command", "n", "seed", "accuracy", "ci95", "unet_calls_per_image", "full_test", "schedule")
            if k in out
        }
        record_metrics(args.bundle, f"{out['benchmark']}-{getattr(args, 'split', 'test')}", summary)
    text = json.dumps(out, indent=2)
    if getattr(args, "json", "-") == "-":
        print(text)
    else:
        Path(args.json).write_text(text + "\n")


def sign_test(b: int, c: int) -> float:
    """Two-sided exact sign test for b vs c discordant pairs at 1/2."""
    from math import comb

    m = b + c
    if m == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(m, i) for i in range(min(b, c) + 1)) / 2**m)


def default_candidates() -> list[dict]:
    c = []
    for lo, hi in ((0, 1000), (0, 600), (50, 500)):
        for err in ("l2", "l1"):
            c.append(
                {
                    "stages": [{"nSamples": 20, "keep": 3}, {"nSamples": 100, "keep": 1}],
                    "gridSize": 100,
                    "tRange": [lo, hi],
                    "error": err,
                }
            )
    return c


if __name__ == "__main__":
    main()
