"""Let a bundle's graphs share one weights file.

  python -m tmdc_compiler.share_weights ../models/fmnist-ddpm-unet32

The exporter writes each graph with its own external-data file (`eps_loss.onnx.data`, …), so
the UNet's weights are stored five times and the three gradient graphs each keep their own 8 MB
copy of them and of the constants their backward passes need (the default bundle: 39 MB). This
rewrites every graph's external tensors into one `weights.bin`, each distinct tensor once
(identified by its bytes), 64-byte aligned, and points each graph's initializers at their
(offset, length) in it; ONNX Runtime resolves `location` against the graph's folder. Graph
semantics do not change: only where the bytes live. The manifest's hashes are rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from .bundle import load_manifest, write_manifest

WEIGHTS = "weights.bin"
ALIGN = 64


def _external(t: onnx.TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in t.external_data}


def share(folder: Path) -> dict:
    folder = Path(folder)
    m = load_manifest(folder)  # hash-checked: never repack a corrupted bundle
    graphs = {k: onnx.load(str(folder / g["file"]), load_external_data=False) for k, g in m["graphs"].items()}
    offsets: dict[str, tuple[int, int]] = {}
    old_files: set[str] = set()
    tmp = folder / (WEIGHTS + ".tmp")
    size = 0
    # streamed to a temporary file (an SD UNet is 3.5 GB: never the whole blob in memory), then
    # renamed over weights.bin — which may itself be one of the files being read
    with open(tmp, "wb") as out:
        for model in graphs.values():
            for t in model.graph.initializer:
                if not uses_external_data(t):
                    continue
                info = ExternalDataInfo(t)
                old_files.add(info.location)
                with open(folder / info.location, "rb") as f:
                    f.seek(info.offset or 0)
                    data = f.read(info.length) if info.length else f.read()
                key = hashlib.sha256(data).hexdigest()
                if key not in offsets:
                    pad = -size % ALIGN
                    out.write(b"\0" * pad)
                    offsets[key] = (size + pad, len(data))
                    out.write(data)
                    size += pad + len(data)
                off, n = offsets[key]
                del t.external_data[:]
                for k, v in (("location", WEIGHTS), ("offset", str(off)), ("length", str(n))):
                    e = t.external_data.add()
                    e.key, e.value = k, v
    tmp.replace(folder / WEIGHTS)
    for k, g in m["graphs"].items():
        onnx.save(graphs[k], str(folder / g["file"]))
    for f in old_files - {WEIGHTS}:
        (folder / f).unlink()
    manifest = {k: v for k, v in m.items() if k not in ("schema_version", "files")}
    manifest["provenance"] = {
        **m["provenance"],
        "weights_shared": f"python -m tmdc_compiler.share_weights: {len(offsets)} distinct tensors in {WEIGHTS}",
    }
    return write_manifest(folder, manifest)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    args = ap.parse_args(argv)
    before = sum(p.stat().st_size for p in Path(args.bundle).iterdir())
    m = share(Path(args.bundle))
    after = sum(p.stat().st_size for p in Path(args.bundle).iterdir())
    print(json.dumps({"bundle": args.bundle, "bytes_before": before, "bytes_after": after, "files": sorted(m["files"])}))


if __name__ == "__main__":
    main()
