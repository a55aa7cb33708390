"""fra31 AutoAttack through the diffusion classifier's own estimator (issue 13's exact white-box
attack, PyTorch side; the GPU when there is one).

  python -m tmdc_compiler.exact_autoattack --autoattack /path/to/fra31 \\
      --bundle ../models/fmnist-ddpm-unet32 [--adapter STATE.bin] --n 128 --seed 0 \\
      --cells linf:0.1,linf:0.05,l2:1.5 --levels 1,2 --pairs 8 --device cuda \\
      --deadline 480 --out DIR

What AutoAttack sees (`OwnPairsOracle`): logits = −scale × the DC's weighted mean noise-prediction
error over a fresh uniform subset of `pairs` of the classifier's *own* (timestep, noise) grid pairs
per gradient call — lib/attacks/dc_oracle.ts `ownPairsOracle`, an unbiased estimate of the
full-grid mean the sequential race decides on. Calls without gradient (AutoAttack's "is it still
right?" checks, APGD-T's target order, FAB's predictions) use all the grid's pairs, so those
checks see the exact full-grid mean; Square, which only queries, uses the estimate too (5,000
exact queries would cost 14× more) and says so in the report.

Every point an attack returns is checked on the real classifier (`reference_dc.classify`, the
TypeScript engine's parity reference; fp32, TF32 off); an image counts as broken only when the
real DC misclassifies it, so an image an attack broke only on the estimate stays in play for the
next attack. The adversarial images are written beside the report (float32, `adv.f32`, in
report order) for the TypeScript engine to re-check (`deno task cli bench exact-recheck`).

Attacks follow AutoAttack `standard` (fra31 a392200: APGD-CE, APGD-T with 9 target classes,
FAB-T with 9, Square with 5,000 queries; 100 iterations, seed 0), one at a time on the images
still robust on the real DC, as `run_standard_evaluation` does. Budget level k multiplies the
iterations (Square: queries) by k; each level is an independent run from the clean images. The
report is rewritten after every attack, and `--deadline` (seconds) stops before an attack that
would start after it, so a run cut short keeps every finished attack.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import load_split, portable_subset
from .evaluate import load_unet, settings_from_json
from .reference_dc import DCSettings, classify, noise_bank, wilson
from .schedule import alphas_cumprod, noisy

STANDARD = ["apgd-ce", "apgd-t", "fab-t", "square"]
# apgd-t-real is APGD-T with its target loop on the real DC's verdicts (real_checked_targets); it
# stands in for apgd-t when a cell's completeness is judged
SAME_AS = {"apgd-t-real": "apgd-t"}


class OwnPairsOracle(torch.nn.Module):
    """`decide=True`: a no-grad call on the whole grid also runs the real classifier and lifts its
    label to the top of the logits (the others keep their full-grid order), so fra31's
    bookkeeping — which images are still robust, whether APGD-T moves on to its next target
    class — follows the real DC's decision, not the full-grid mean's argmax (which the
    sequential race can disagree with)."""

    def __init__(
        self,
        net,
        settings: DCSettings,
        lora,
        pairs: int,
        scale: float,
        num_classes: int,
        seed: int,
        max_rows: int,
        decide: bool = False,
    ):
        super().__init__()
        self.decide = decide
        dev = next(net.parameters()).device
        self.net, self.lora, self.pairs, self.scale, self.k = net, lora, pairs, scale, num_classes
        self.max_rows = max_rows
        grid = settings.full_grid()
        self.g = len(grid)
        if pairs > self.g:
            raise ValueError(f"--pairs {pairs} > the grid's {self.g} pairs")
        self.t = torch.from_numpy(grid).long().to(dev)
        self.noise = None  # filled on the first call (the image shape comes with it)
        self.settings = settings
        self.abar = alphas_cumprod().to(dev)
        w = settings.weights or (1.0,) * self.g
        self.w = torch.tensor(w, dtype=torch.float32, device=dev)
        self.err_col = 0 if settings.error == "l2" else 1
        self.gen = torch.Generator().manual_seed(seed)
        self.query_pairs: int | None = None  # pairs for no-grad calls; None: the whole grid
        self.rows = {"grad": 0, "nograd": 0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise is None:
            self.noise = torch.from_numpy(noise_bank(self.settings, tuple(x.shape[1:]))).float().to(x.device)
        grad = torch.is_grad_enabled()
        m = self.pairs if grad else (self.query_pairs or self.g)
        js = torch.randperm(self.g, generator=self.gen)[:m].to(x.device) if m < self.g else torch.arange(self.g, device=x.device)
        b, k = x.shape[0], self.k
        per_image = k * m
        step = max(1, self.max_rows // per_image)
        out = []
        for s in range(0, b, step):  # images in slices that keep a UNet batch under max_rows
            xs = x[s : s + step]
            bs = xs.shape[0]
            jj = js.repeat(bs * k)
            cc = torch.arange(k, device=x.device).repeat_interleave(m).repeat(bs)
            xr = xs.repeat_interleave(per_image, dim=0)
            pred = self.net(noisy(xr, self.t[jj], self.noise[jj], self.abar), self.t[jj], cc, self.lora)
            diff = (pred - self.noise[jj]).flatten(1)
            err = diff.pow(2).mean(1) if self.err_col == 0 else diff.abs().mean(1)
            err = (err * self.w[jj]).view(bs, k, m).mean(2)
            out.append(-self.scale * err)
            self.rows["grad" if grad else "nograd"] += bs * per_image
        logits = torch.cat(out)
        if self.decide and not grad and m == self.g:
            labels = torch.from_numpy(real_predict(self.net, x, self.settings, k, self.lora)).to(x.device)
            top = logits.max(1).values
            gap = 1e-3 * top.abs().clamp_min(1e-6)
            logits = logits.scatter(1, labels[:, None], torch.maximum(logits.gather(1, labels[:, None]), (top + gap)[:, None]))
            self.rows["decide"] = self.rows.get("decide", 0) + b
        return logits


def real_predict(net, images: torch.Tensor, settings: DCSettings, k: int, lora) -> np.ndarray:
    """The classifier's own verdicts, fp32 with TF32 off (the decision is what is scored)."""
    tf = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        v = classify(net, images.detach().cpu().numpy().astype(np.float32), settings, k, lora, batch_rows=4096)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf
    return np.array([r.label for r in v])


def load_adapter(path: str, net, dev) -> list[torch.Tensor]:
    """An adapter file of bench tm-study (`packState`: LoRA tensors, then Adam's m and v, float32,
    in the bundle's layout order) or a bare LoRA vector."""
    layout = net.lora_layout()
    sizes = [int(np.prod(e["shape"])) for e in layout]
    f = np.fromfile(path, dtype=np.float32)
    if f.size not in (sum(sizes), 3 * sum(sizes)):
        raise ValueError(f"{path}: {f.size} floats; the layout needs {sum(sizes)} (or 3×)")
    out, o = [], 0
    for e, n in zip(layout, sizes, strict=True):
        out.append(torch.from_numpy(f[o : o + n].copy()).reshape(e["shape"]).to(dev))
        o += n
    return out


def real_checked_targets(x, y, n_targets: int, rank, run_target, check):
    """fra31 APGD-T's loop over target classes (a392200 `APGDAttack_targeted.perturb`) with the
    real DC keeping the books. fra31 drops an image from later targets as soon as its gradient
    calls' logits (here the 8-pair estimate) misclassify it once; the estimate's noise "fools"
    nearly every image during the first target while the real DC stays right, so targets 3–10
    were rarely tried (the lease of 2026-11-27: 8,080 gradient rows per attacked image, one
    target's worth). Here each target's run ends with its best-loss point and its last
    estimate-fooled point checked on the real DC, and only an image the real DC gets wrong
    leaves; the rest go on to the next target, as run_standard_evaluation intends.

    rank(xs) → class order, ascending (no-grad logits); run_target(xs, ys, targets) →
    (best-loss points, last-fooled points); check(xs, ys) → bool array, True = real DC right.
    Returns (adversarial images, still-right flags)."""
    adv = x.clone()
    right = torch.as_tensor(check(x, y), dtype=torch.bool, device=x.device)
    # the order is of the clean images, so one no-grad pass (full grid + real DC) serves every target
    order = rank(x)
    for target_class in range(2, n_targets + 2):
        ind = right.nonzero().flatten()
        if ind.numel() == 0:
            break
        xs, ys = x[ind], y[ind]
        targets = order[ind][:, -target_class]
        for cand in run_target(xs, ys, targets):
            sel = right[ind].nonzero().flatten()
            if sel.numel() == 0:
                break
            ok = torch.as_tensor(check(cand[sel], ys[sel]), dtype=torch.bool, device=x.device)
            broke = sel[~ok]
            right[ind[broke]] = False
            adv[ind[broke]] = cand[broke]
    return adv, right


class RealCheckedAPGDT:
    """fra31's APGD-T (its attack_single_run, step sizes, restarts and seeding) driven by
    `real_checked_targets`."""

    def __init__(self, apgdt, oracle, check):
        self.a, self.oracle, self.check = apgdt, oracle, check

    def perturb(self, x, y):
        a = self.a
        a.init_hyperparam(x)
        x, y = x.detach().clone().float().to(a.device), y.detach().clone().long().to(a.device)
        torch.random.manual_seed(a.seed)
        torch.cuda.random.manual_seed(a.seed)

        def rank(xs):
            with torch.no_grad():
                return self.oracle(xs).sort(dim=1)[1]

        def run_target(xs, ys, targets):
            a.y_target = targets
            # attack_single_run enables gradients around its own model calls; under no_grad its
            # bookkeeping keeps no autograd history
            best, _, _, fooled = a.attack_single_run(xs, ys)
            return best.detach(), fooled.detach()

        return real_checked_targets(x, y, a.n_target_classes, rank, run_target, self.check)[0]


def make_attacks(aa_cls, oracle, norm: str, eps: float, iters: int, dev: str, check=None):
    """AutoAttack `standard`'s four attacks and settings with `iters` iterations (Square: 50×)."""
    aa = aa_cls(oracle, norm=norm, eps=eps, version="standard", seed=0, verbose=False, device=dev)
    from autoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    # fra31 fixes APGD's checkpoints from n_iter in the constructor: build them for the level.
    apgd = APGDAttack(oracle, n_restarts=1, n_iter=iters, eps=eps, norm=norm, eot_iter=1, rho=0.75, seed=0, device=dev)
    apgd.loss = "ce"
    apgdt = APGDAttack_targeted(oracle, n_restarts=1, n_iter=iters, eps=eps, norm=norm, eot_iter=1, rho=0.75, seed=0, device=dev)
    apgdt.n_target_classes = 9
    aa.fab.targeted, aa.fab.n_restarts, aa.fab.n_target_classes, aa.fab.n_iter = True, 1, 9, iters
    aa.square.n_queries = 50 * iters
    attacks = {"apgd-ce": apgd, "apgd-t": apgdt, "fab-t": aa.fab, "square": aa.square}
    if check is not None:  # a second APGD-T object: the targeted loss keeps its own state
        t2 = APGDAttack_targeted(oracle, n_restarts=1, n_iter=iters, eps=eps, norm=norm, eot_iter=1, rho=0.75, seed=0, device=dev)
        t2.n_target_classes = 9
        attacks["apgd-t-real"] = RealCheckedAPGDT(t2, oracle, check)
    return attacks


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--autoattack", required=True, help="a checkout of fra31/auto-attack (never committed)")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--adapter", help="bench tm-study state (step-N.bin): attack the TMDC")
    ap.add_argument("--split", choices=["test", "validation"], default="test")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cells", default="linf:0.1", help="norm:eps,… (linf or l2)")
    ap.add_argument("--levels", default="1,2")
    ap.add_argument(
        "--attacks",
        default=",".join(STANDARD),
        help="of apgd-ce, apgd-t, apgd-t-real (APGD-T whose target loop follows the real DC), fab-t, square",
    )
    ap.add_argument("--iters", type=int, default=100, help="×1's iterations (AutoAttack: 100)")
    ap.add_argument("--bs", type=int, default=64, help="images per attack call")
    ap.add_argument("--pairs", type=int, default=8, help="grid pairs per gradient call")
    ap.add_argument("--logit-scale", type=float, default=100.0, help="as bench dc-exact's")
    ap.add_argument("--max-rows", type=int, default=8192, help="UNet rows per batch")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--deadline", type=float, default=float("inf"), help="seconds; no attack starts after it")
    ap.add_argument("--after", help="an earlier report: each cell starts from its robust flags and stages")
    ap.add_argument(
        "--decide",
        choices=["real", "grid"],
        default="real",
        help="whose decision fra31's bookkeeping follows on no-grad calls: the real DC (default) or the full-grid mean",
    )
    ap.add_argument("--save-adv", action="store_true", help="write adv.f32 (every cell's images, report order)")
    ap.add_argument("--out", required=True, help="folder: report.json (and adv.f32)")
    args = ap.parse_args(argv)
    if args.after and args.save_adv:
        # its images broken before this run would be written clean, and a re-check would count them robust
        ap.error("--save-adv writes only this run's images: not with --after")
    t_start = time.time()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.autoattack)
    from autoattack import AutoAttack

    dev = args.device
    if dev.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # attack steps only
    net, m = load_unet(Path(args.bundle))
    net = net.to(dev)
    for p in net.parameters():
        p.requires_grad_(False)
    lora = load_adapter(args.adapter, net, dev) if args.adapter else None
    settings = settings_from_json(m["dc_default"])
    k = len(m["classes"])
    split = load_split(args.split)
    idx = portable_subset(len(split.labels), args.n, args.seed)
    x = torch.from_numpy(split.as_float()[idx]).to(dev)
    y = torch.from_numpy(split.labels[idx]).to(dev)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(f"[{time.time() - t_start:6.0f} s] {s}", file=sys.stderr, flush=True)  # noqa: E731

    t0 = time.time()
    clean = (real_predict(net, x, settings, k, lora) == y.cpu().numpy()).astype(int)
    log(f"clean on the real DC: {clean.mean():.4f} ({time.time() - t0:.0f} s)")
    report = {
        "benchmark": "exact-autoattack",
        "what": "fra31 AutoAttack standard through the DC's own estimator (fixed seed), every returned point checked on the real DC",
        "protocol": "white-box, exact: the classifier's own grid timesteps and noise draws; exact full-grid logits on no-grad calls",
        "bookkeeping": (
            "no-grad calls lift the real DC's label to the top (robust flags and APGD-T's next target follow the real decision)"
            if args.decide == "real"
            else "no-grad calls: the full-grid mean's argmax"
        ),
        "command": "python -m tmdc_compiler.exact_autoattack " + " ".join(argv if argv is not None else sys.argv[1:]),
        "reference": "fra31/auto-attack a392200 (attack objects called as run_standard_evaluation does)",
        "bundle": f"{m['name']}@{m['version']}",
        "adapter": args.adapter,
        "dc_settings": m["dc_default"],
        "split": args.split,
        "n": args.n,
        "seed": args.seed,
        "indices": idx.tolist(),
        "pairs_per_gradient_call": args.pairs,
        "logit_scale": args.logit_scale,
        "fab_t_and_square_queries": f"through the {args.pairs}-pair estimate (FAB-T predicts every step; exact would cost ~9× more)",
        "machine": {
            "device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "precision": "attack steps TF32 allowed; real-DC checks fp32, TF32 off",
        },
        "clean": clean.tolist(),
        "clean_accuracy": float(clean.mean()),
        "cells": [],
    }
    adv_blobs: list[np.ndarray] = []

    def save() -> None:
        report["seconds"] = time.time() - t_start
        (out_dir / "report.json").write_text(json.dumps(report) + "\n")
        if adv_blobs and args.save_adv:
            np.concatenate(adv_blobs).astype(np.float32).tofile(out_dir / "adv.f32")

    save()
    attacks = args.attacks.split(",")
    cells = []
    for level in [int(v) for v in args.levels.split(",")]:
        for c in args.cells.split(","):
            norm, eps = c.split(":")
            cells.append((level, {"linf": "Linf", "l2": "L2"}[norm], float(eps)))

    def real_check(xs: torch.Tensor, ys: torch.Tensor) -> np.ndarray:
        oracle.rows["real_checks"] = oracle.rows.get("real_checks", 0) + len(xs)
        return real_predict(net, xs, settings, k, lora) == ys.cpu().numpy()

    for level, norm, eps in cells:
        oracle = OwnPairsOracle(
            net, settings, lora, args.pairs, args.logit_scale, k, args.seed, args.max_rows, args.decide == "real"
        )
        objs = make_attacks(
            AutoAttack,
            oracle,
            norm,
            eps,
            args.iters * level,
            dev,
            check=real_check,
        )
        robust = clean.copy()
        x_adv = x.clone()
        cell = {
            "norm": norm.lower(),
            "eps": eps,
            "budget_multiplier": level,
            "iterations": args.iters * level,
            "stages": [],
            "complete": False,
        }
        if args.after:  # go on from an earlier run's cell: its robust flags, its stages
            before = json.loads(Path(args.after).read_text())
            tail = lambda a: a and "/".join(a.split("/")[-2:])  # noqa: E731 (the lease's folders differ)
            # an earlier run on more images of the same subset serves its first n (the subset's
            # first n images do not depend on n)
            same = (before["bundle"], tail(before["adapter"]), before["split"]) == (
                report["bundle"],
                tail(args.adapter),
                args.split,
            ) and before["indices"][: args.n] == idx.tolist()
            if not same or before["n"] < args.n:
                raise SystemExit(f"--after {args.after}: another classifier or other images than this run's")
            # the books it goes on with must be kept the same way and by the same estimate
            kept = (before.get("bookkeeping"), before["pairs_per_gradient_call"], before["logit_scale"])
            if kept != (report["bookkeeping"], args.pairs, args.logit_scale):
                raise SystemExit(f"--after {args.after}: other bookkeeping, --pairs or --logit-scale than this run's")
            prev = next(
                (c for c in before["cells"] if (c["norm"], c["eps"], c["budget_multiplier"]) == (cell["norm"], eps, level)),
                None,
            )
            if prev is None or "robust" not in prev:
                raise SystemExit(f"--after {args.after}: no finished {norm} {eps} ×{level} cell to go on from")
            robust = np.array(prev["robust"][: args.n]) & clean
            cell["stages"] = [{**st, "n": st.get("n", before["n"])} for st in prev["stages"]]
            cell["after"] = args.after
        report["cells"].append(cell)
        log(f"cell {norm} {eps} ×{level}")
        for name in attacks:
            if time.time() - t_start > args.deadline:
                log(f"deadline: {name} not started")
                break
            todo = np.flatnonzero(robust)
            if len(todo) == 0:
                break
            t0, rows0 = time.time(), dict(oracle.rows)
            atk = objs[name]
            oracle.query_pairs = args.pairs if name in ("fab-t", "square") else None
            xi, yi = x[todo], y[todo]
            with torch.no_grad():  # as run_standard_evaluation (the attacks enable grad themselves)
                adv = torch.cat([atk.perturb(xi[s : s + args.bs], yi[s : s + args.bs]) for s in range(0, len(todo), args.bs)])
            oracle.query_pairs = None
            adv = adv.detach()
            if norm == "Linf":
                size = (adv - xi).abs().flatten(1).max(1)[0]
                adv = torch.min(torch.max(adv, xi - eps), xi + eps).clamp(0, 1)  # fp slack only
            else:
                size = (adv - xi).flatten(1).norm(dim=1)
            moved = (adv != xi).flatten(1).any(1).cpu().numpy()
            cand = todo[moved]
            broken = []
            if len(cand):
                wrong = real_predict(net, adv[moved], settings, k, lora) != y[cand].cpu().numpy()
                for i, w in zip(cand, wrong, strict=True):
                    if w:
                        robust[i] = 0
                        x_adv[i] = adv[np.flatnonzero(todo == i)[0]]
                        broken.append(int(i))
            st = {
                "attack": name,
                "attacked": int(len(todo)),
                "returned_moved": int(moved.sum()),
                "broken_on_real_dc": len(broken),
                "broken": broken,
                "robust": robust.tolist(),
                "robust_accuracy": float(robust.mean()),
                "ci95": wilson(int(robust.sum()), len(robust)),
                "max_perturbation": float(size.max()) if len(size) else 0.0,
                "unet_rows_per_attacked_image": {g: (oracle.rows[g] - rows0[g]) / max(1, len(todo)) for g in ("grad", "nograd")},
                "real_dc_checks_per_attacked_image": (oracle.rows.get("real_checks", 0) - rows0.get("real_checks", 0))
                / max(1, len(todo)),
                "seconds": time.time() - t0,
            }
            cell["stages"].append(st)
            log(
                f"  {name}: {len(todo)} attacked, {int(moved.sum())} returned moved, {len(broken)} broken on the real DC → "
                f"{robust.mean():.4f} ({st['seconds']:.0f} s)"
            )
            save()
        ran = [s["attack"] for s in cell["stages"]]
        ran = [SAME_AS.get(a, a) for a in ran]
        cell["complete"] = bool(all(a in ran for a in STANDARD) or robust.sum() == 0)
        cell["robust"] = robust.tolist()
        cell["robust_accuracy"] = float(robust.mean())
        cell["ci95"] = wilson(int(robust.sum()), len(robust))
        cell["adv_offset_images"] = sum(len(b) for b in adv_blobs) // int(np.prod(x.shape[1:]))
        adv_blobs.append(x_adv.cpu().numpy().reshape(-1))
        save()
    log("done")


if __name__ == "__main__":
    main()
