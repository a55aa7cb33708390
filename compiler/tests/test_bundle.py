import json
import shutil

import pytest

from tmdc_compiler.bundle import BundleError, load_manifest


def test_bundle_loads_and_lists_io(tiny_diffusion_bundle):
    m = load_manifest(tiny_diffusion_bundle)
    g = m["graphs"]["eps_loss_vjp_x"]
    assert [i["name"] for i in g["inputs"]][:6] == ["x", "t", "eps", "class", "w_l2", "w_l1"]
    assert g["batch"] == {"kind": "fixed", "size": 3}
    assert m["graphs"]["eps_loss"]["inputs"][0]["shape"][0] == "batch"
    assert {i["dtype"] for i in g["inputs"][1:4:2]} == {"int64"}
    # attention at level 1 on the way down and up, plus the middle block: 3 blocks x 4 targets x (A, B)
    assert len(m["lora"]["tensors"]) == 24
    assert all(f in m["files"] for f in ("eps_loss.onnx", "weights.bin"))


def test_tampered_file_is_refused(tiny_diffusion_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_diffusion_bundle, copy)
    with open(copy / "weights.bin", "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="weights.bin.*does not match its manifest sha256"):
        load_manifest(copy)


def test_missing_file_is_refused(tiny_diffusion_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_diffusion_bundle, copy)
    (copy / "eps_loss_grad_lora.onnx").unlink()
    with pytest.raises(BundleError, match="'eps_loss_grad_lora.onnx' is missing"):
        load_manifest(copy)


@pytest.mark.parametrize("field", ["classes", "graphs", "files", "schedule", "lora"])
def test_manifest_missing_field_is_refused(tiny_diffusion_bundle, tmp_path, field):
    copy = tmp_path / "b"
    shutil.copytree(tiny_diffusion_bundle, copy)
    m = json.loads((copy / "manifest.json").read_text())
    del m[field]
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=f"missing the field '{field}'"):
        load_manifest(copy)


def test_surrogate_bundle_loads(tiny_surrogate_bundle):
    m = load_manifest(tiny_surrogate_bundle)
    assert m["kind"] == "classifier" and set(m["graphs"]) == {"logits", "logits_vjp_x"}


def test_graphs_share_one_weights_file(tiny_diffusion_bundle):
    """build_diffusion ends with share_weights: one weights.bin, each distinct tensor once."""
    import onnx

    from tmdc_compiler.bundle import load_manifest

    m = load_manifest(tiny_diffusion_bundle)
    assert {g["data_file"] for g in m["graphs"].values()} == {"weights.bin"}
    assert not list(tiny_diffusion_bundle.glob("*.onnx.data"))
    spans = set()
    for g in m["graphs"].values():
        model = onnx.load(str(tiny_diffusion_bundle / g["file"]), load_external_data=False)
        for t in model.graph.initializer:
            ext = {e.key: e.value for e in t.external_data}
            if ext:
                spans.add((int(ext["offset"]), int(ext["length"])))
    size = (tiny_diffusion_bundle / "weights.bin").stat().st_size
    assert max(o + n for o, n in spans) == size  # the file holds exactly the spans named
    starts = sorted(spans)
    assert all(a[0] + a[1] <= b[0] for a, b in zip(starts, starts[1:], strict=False))  # no overlap
