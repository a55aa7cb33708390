"""Model bundles: a folder with `manifest.json` and its ONNX files (DESIGN.md §2).

`write_manifest` derives every graph's input/output names, dtypes and shapes from the
ONNX files themselves, so the manifest cannot drift from the graphs; `load_manifest`
refuses a bundle whose manifest lacks a field or whose files do not match their sha256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import onnx

SCHEMA_VERSION = 1
REQUIRED = {
    "schema_version": int,
    "name": str,
    "version": str,
    "kind": str,
    "image": dict,
    "classes": list,
    "graphs": dict,
    "provenance": dict,
    "files": dict,
}
REQUIRED_BY_KIND = {
    "diffusion": {"schedule": dict, "lora": dict, "null_class": int},
    # latent text-conditioned models (convert_sd): the graphs run on VAE latents
    "latent-diffusion": {
        "schedule": dict,
        "lora": dict,
        "null_class": int,
        "latent": dict,
        "conditioning": dict,
        "prediction_type": str,
    },
    "classifier": {},
}
REQUIRED_GRAPHS = {
    "diffusion": ("eps_loss", "eps_loss_vjp_x", "eps_loss_grad_lora"),
    "latent-diffusion": ("encode", "encode_vjp_x", "eps_loss", "eps_loss_vjp_x", "eps_loss_grad_lora"),
    "classifier": ("logits", "logits_vjp_x"),
}
_DTYPES = {1: "float32", 7: "int64", 6: "int32", 11: "float64"}


class BundleError(ValueError):
    """A bundle that must not be loaded; the message says which file or field."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _io(values) -> list[dict]:
    out = []
    for v in values:
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else "batch" for d in tt.shape.dim]
        out.append({"name": v.name, "dtype": _DTYPES.get(tt.elem_type, str(tt.elem_type)), "shape": dims})
    return out


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Fill graph I/O from the ONNX files, hash every file, write manifest.json."""
    files = {}
    for g in manifest["graphs"].values():
        model = onnx.load(str(folder / g["file"]), load_external_data=False)
        g["inputs"] = _io(model.graph.input)
        g["outputs"] = _io(model.graph.output)
        # the external-data file the graph's initializers name (one per graph; graphs may share it)
        locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
        if len(locations) > 1:
            raise BundleError(f"{g['file']} keeps its weights in {len(locations)} files: {sorted(locations)}")
        g["data_file"] = next(iter(locations), None)
        for f in (g["file"], g["data_file"]):
            if f:
                files[f] = sha256(folder / f)
    if manifest.get("reference_weights"):
        files[manifest["reference_weights"]] = sha256(folder / manifest["reference_weights"])
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "files": files}
    manifest["provenance"].setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    validate(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def validate(m: dict) -> None:
    for key, typ in REQUIRED.items():
        if key not in m:
            raise BundleError(f"manifest is missing the field {key!r}")
        if not isinstance(m[key], typ):
            raise BundleError(f"manifest field {key!r} must be {typ.__name__}")
    if m["schema_version"] != SCHEMA_VERSION:
        raise BundleError(f"manifest schema_version {m['schema_version']} is not supported (expected {SCHEMA_VERSION})")
    if m["kind"] not in REQUIRED_BY_KIND:
        raise BundleError(f"manifest kind {m['kind']!r} is not one of {sorted(REQUIRED_BY_KIND)}")
    for key, typ in REQUIRED_BY_KIND[m["kind"]].items():
        if not isinstance(m.get(key), typ):
            raise BundleError(f"manifest of a {m['kind']} bundle is missing the field {key!r}")
    for g in REQUIRED_GRAPHS[m["kind"]]:
        if g not in m["graphs"]:
            raise BundleError(f"manifest lists no {g!r} graph")
        for key in ("file", "inputs", "outputs", "batch"):
            if key not in m["graphs"][g]:
                raise BundleError(f"graph {g!r} is missing the field {key!r}")
    for key in ("channels", "height", "width", "value_range"):
        if key not in m["image"]:
            raise BundleError(f"manifest image spec is missing {key!r}")


def load_manifest(folder: Path | str) -> dict:
    """Parse, validate and hash-check a bundle; raises BundleError naming what is wrong."""
    folder = Path(folder)
    path = folder / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise BundleError(f"{path} does not exist") from e
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON: {e}") from e
    validate(m)
    for g in m["graphs"].values():
        for f in (g["file"], g.get("data_file")):
            if f and f not in m["files"]:
                raise BundleError(f"graph file {f!r} has no sha256 in the manifest")
    for f, digest in m["files"].items():
        p = folder / f
        if not p.exists():
            raise BundleError(f"bundle file {f!r} is missing")
        actual = sha256(p)
        if actual != digest:
            raise BundleError(
                f"bundle file {f!r} does not match its manifest sha256 (expected {digest[:12]}…, found {actual[:12]}…)"
            )
    return m


def record_metrics(folder: Path | str, key: str, metrics: dict) -> None:
    """Store a benchmark summary under provenance.metrics[key] (manifest.json is not itself hashed)."""
    folder = Path(folder)
    m = load_manifest(folder)
    m["provenance"].setdefault("metrics", {})[key] = metrics
    validate(m)
    (folder / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
