"""Add the purification graphs (`eps_pred`, `eps_pred_vjp_x`: the base model's noise prediction
and its input VJP) to an existing diffusion bundle, for DiffPure targets and their full-gradient
adaptive attacks. The bundle's other graphs and weights are untouched (their hashes stay), so the
version stays and every record made with the bundle stays valid.

`python -m tmdc_compiler.add_purifier_graphs --bundle ../models/fmnist-ddpm-unet32`
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .bundle import git_commit, load_manifest, write_manifest
from .evaluate import load_unet
from .export import export_eps_pred
from .share_weights import share


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--batch-grad", type=int, default=32)
    args = ap.parse_args(argv)
    folder = Path(args.bundle)
    m = load_manifest(folder)
    before = dict(m["files"])
    unet, _ = load_unet(folder)
    m["graphs"].update(export_eps_pred(unet, folder, args.batch_grad))
    m["provenance"]["graphs_added"] = {
        "graphs": ["eps_pred", "eps_pred_vjp_x"],
        "command": "python -m tmdc_compiler.add_purifier_graphs " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "git_commit": git_commit(),
    }
    write_manifest(folder, m)
    m = share(folder)  # the new graphs' weights join the shared weights.bin
    changed = [f for f, h in before.items() if m["files"].get(f) != h]
    if changed:
        raise SystemExit(f"existing files changed: {changed}")
    print("added eps_pred, eps_pred_vjp_x; existing files unchanged")


if __name__ == "__main__":
    main()
