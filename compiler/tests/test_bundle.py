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
    assert all(f in m["files"] for f in ("eps_loss.onnx", "eps_loss.onnx.data"))


def test_tampered_file_is_refused(tiny_diffusion_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_diffusion_bundle, copy)
    with open(copy / "eps_loss.onnx.data", "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="eps_loss.onnx.data.*does not match its manifest sha256"):
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
