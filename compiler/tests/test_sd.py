"""The paper's setting on tiny real-format models (issue 15).

The committed bundle `tests/fixtures/sd-tiny-cifar10` was converted from the diffusers folder
`sd_tiny.build(seed=0)` makes; these tests rebuild that folder (seconds) and check the ONNX
graphs against diffusers in PyTorch, the converter's refusals, its whole run reproducing the
committed graphs, and the CIFAR-10 layouts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tmdc_compiler import cifar10
from tmdc_compiler.convert_sd import CIFAR10, ConvertError, check_folder, convert, load
from tmdc_compiler.make_sd_fixture import TEMPLATE
from tmdc_compiler.sd_tiny import build

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "tests" / "fixtures" / "sd-tiny-cifar10"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("sd") / "sd-tiny", seed=0)


@pytest.fixture(scope="module")
def dc(folder):
    torch.set_num_threads(2)
    return load(folder, CIFAR10, TEMPLATE, None, 4, 4.0)[0]


def session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(BUNDLE / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def inputs(dc, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, 32, 32, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    eps = torch.randn(b, *dc.noise_shape, generator=g)
    c = torch.randint(0, 11, (b,), generator=g)
    lora = [torch.randn(e["shape"], generator=g) * 0.05 for e in dc.lora_layout()]
    return x, t, eps, c, lora


def feeds(dc, z, t, eps, c, lora, **extra):
    names = [e["name"] for e in dc.lora_layout()]
    f = {"z": z.numpy(), "t": t.numpy(), "eps": eps.numpy(), "class": c.numpy()}
    f |= {n: a.numpy() for n, a in zip(names, lora, strict=True)}
    return f | {k: v.numpy() for k, v in extra.items()}


def test_manifest_names_every_attention_projection(dc):
    m = json.loads((BUNDLE / "manifest.json").read_text())
    assert m["kind"] == "latent-diffusion"
    assert [e["name"] for e in m["lora"]["tensors"]] == [e["name"] for e in dc.lora_layout()]
    attn = {n.rsplit(".", 2)[0] for n in (e["name"] for e in dc.lora_layout())}
    assert any(".attn1." in a for a in attn) and any(".attn2." in a for a in attn)
    assert m["latent"]["scaling_factor"] == 0.18215 and m["latent"]["resolution"] == 64


def test_encode_and_its_vjp_match_diffusers(dc):
    x, *_ = inputs(dc, 8)
    x.requires_grad_(True)
    z = dc.encode(x)
    w = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    (gx,) = torch.autograd.grad((w * z).sum(), x)
    (z_onnx,) = session("encode").run(None, {"x": x.detach().numpy()})
    assert rel(z_onnx, z.detach()) < 1e-4
    # diffusers' own path: the pipeline's latent = vae.encode(2x − 1).latent_dist.mean × scale
    up = torch.nn.functional.interpolate(x.detach(), size=(64, 64), mode="bicubic", align_corners=False)
    direct = dc.vae.encode(2 * up - 1).latent_dist.mean * dc.vae.config.scaling_factor
    assert rel(z.detach(), direct.detach()) < 1e-5
    z2, gx_onnx = session("encode_vjp_x").run(None, {"x": x.detach().numpy()[:4], "w": w.numpy()[:4]})
    (gx4,) = torch.autograd.grad((w[:4] * dc.encode(x[:4])).sum(), x)
    assert rel(gx_onnx, gx4[:4]) < 1e-4 and rel(z2, z.detach()[:4]) < 1e-4
    assert gx.abs().sum() > 0


def test_losses_and_gradients_match_diffusers(dc):
    x, t, eps, c, lora = inputs(dc, 16, seed=2)
    with torch.no_grad():
        z = dc.encode(x)
        l2, l1 = dc.errors(z, t, eps, c, lora)
        # the UNet's prediction straight from diffusers, without LoRA: what the zero-LoRA graph scores
        a = dc.abar[t].reshape(-1, 1, 1, 1)
        pred = dc.unet(a.sqrt() * z + (1 - a).sqrt() * eps, t, encoder_hidden_states=dc.emb[c]).sample
        base_l2 = (pred - eps).pow(2).flatten(1).mean(1)
    out = session("eps_loss").run(None, feeds(dc, z, t, eps, c, lora))
    assert rel(out[0], l2) < 1e-4 and rel(out[1], l1) < 1e-4
    zero = [torch.zeros_like(v) for v in lora]
    assert rel(session("eps_loss").run(None, feeds(dc, z, t, eps, c, zero))[0], base_l2) < 1e-4

    b = 4
    zz = z[:b].clone().requires_grad_(True)
    w2, w1 = torch.rand(b), torch.rand(b)
    p2, p1 = dc.errors(zz, t[:b], eps[:b], c[:b], lora)
    (gz,) = torch.autograd.grad((w2 * p2).sum() + (w1 * p1).sum(), zz)
    o = session("eps_loss_vjp_x").run(None, feeds(dc, z[:b], t[:b], eps[:b], c[:b], lora, w_l2=w2, w_l1=w1))
    assert rel(o[2], gz) < 1e-4

    la = [v.clone().requires_grad_(True) for v in lora]
    q2, _ = dc.errors(z[:b], t[:b], eps[:b], c[:b], la)
    grads = torch.autograd.grad((w2 * q2).sum(), la)
    o = session("eps_loss_grad_lora").run(None, feeds(dc, z[:b], t[:b], eps[:b], c[:b], lora, w=w2))
    for got, want in zip(o[1:], grads, strict=True):
        assert rel(got, want) < 1e-4


def test_v_prediction_target_is_diffusers_velocity(folder, tmp_path):
    from diffusers import DDPMScheduler

    v_dir = tmp_path / "v"
    shutil.copytree(folder, v_dir)
    cfg_path = v_dir / "scheduler" / "scheduler_config.json"
    cfg = json.loads(cfg_path.read_text()) | {"prediction_type": "v_prediction"}
    cfg_path.write_text(json.dumps(cfg))
    dc = load(v_dir, CIFAR10, TEMPLATE, None, 4, 4.0)[0]
    x, t, eps, c, _ = inputs(dc, 4, seed=3)
    with torch.no_grad():
        z = dc.encode(x)
        l2, _ = dc.errors(z, t, eps, c)
        sched = DDPMScheduler.from_pretrained(str(v_dir / "scheduler"))
        target = sched.get_velocity(z, eps, t)
        a = dc.abar[t].reshape(-1, 1, 1, 1)
        pred = dc.unet(a.sqrt() * z + (1 - a).sqrt() * eps, t, encoder_hidden_states=dc.emb[c]).sample
    assert rel(l2, (pred - target).pow(2).flatten(1).mean(1)) < 1e-5


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: (d / "model_index.json").unlink(), "no model_index.json"),
        (lambda d: shutil.rmtree(d / "vae"), "component 'vae'"),
        (lambda d: [p.unlink() for p in (d / "unet").glob("*.safetensors")], "component 'unet': no weights"),
        (lambda d: shutil.rmtree(d / "tokenizer"), "component 'tokenizer'"),
        (
            lambda d: _edit(d / "model_index.json", {"unet": ["diffusers", "UNet2DModel"]}),
            "component 'unet' is diffusers.UNet2DModel",
        ),
        (lambda d: _edit(d / "unet" / "config.json", {"cross_attention_dim": 48}), "'text_encoder' makes 32-d"),
        (
            lambda d: _edit(d / "scheduler" / "scheduler_config.json", {"beta_schedule": "squaredcos_cap_v2"}),
            "component 'scheduler'",
        ),
    ],
)
def test_a_broken_folder_is_refused_naming_the_component(folder, tmp_path, breakage, message):
    d = tmp_path / "broken"
    shutil.copytree(folder, d)
    breakage(d)
    with pytest.raises((ConvertError, ValueError, OSError, RuntimeError)) as e:
        check_folder(d)
        load(d, CIFAR10, TEMPLATE, None, 4, 4.0)
    assert message in str(e.value), str(e.value)


def test_the_output_folder_is_never_the_download_and_upcast_attention_stays_float32(folder, tmp_path):
    with pytest.raises(ConvertError, match="would be deleted"):
        convert(folder, folder, CIFAR10, TEMPLATE)
    with pytest.raises(ConvertError, match="would be deleted"):
        convert(folder, folder.parent, CIFAR10, TEMPLATE)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConvertError, match="not a bundle"):
        convert(folder, other, CIFAR10, TEMPLATE)
    assert (other / "keep.txt").read_text() == "mine"
    up = tmp_path / "sd21"
    shutil.copytree(folder, up)
    _edit(up / "unet" / "config.json", {"upcast_attention": True})
    with pytest.raises(ConvertError, match="upcast_attention"):
        convert(up, tmp_path / "out16", CIFAR10, TEMPLATE, dtype="float16")


def test_fp16_weight_variant_loads(folder, tmp_path):
    """A download with only `*.fp16.safetensors` (diffusers' fp16 variant) loads, as float32."""
    from diffusers import UNet2DConditionModel

    d = tmp_path / "fp16"
    shutil.copytree(folder, d)
    unet = UNet2DConditionModel.from_pretrained(str(d / "unet")).half()
    for f in (d / "unet").glob("*.safetensors"):
        f.unlink()
    unet.save_pretrained(str(d / "unet"), variant="fp16")
    assert any(".fp16." in p.name for p in (d / "unet").iterdir())
    dc, _ = load(d, CIFAR10, TEMPLATE, None, 4, 4.0)
    assert next(dc.unet.parameters()).dtype == torch.float32


def test_prompts_that_truncate_to_the_same_embedding_are_refused(folder):
    with pytest.raises(ConvertError, match="same text embedding"):
        load(folder, CIFAR10, "a very very long prompt that the tiny tokenizer cuts off here {}", None, 4, 4.0)


def _edit(path: Path, patch: dict) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | patch))


def test_the_converter_reproduces_the_committed_bundle(folder, tmp_path):
    """The whole converter run (≈ 1 min): its graphs give the committed bundle's outputs."""
    from tmdc_compiler.make_sd_fixture import TINY_DC

    out = tmp_path / "sd-tiny-cifar10"
    m = convert(folder, out, CIFAR10, TEMPLATE, name="sd-tiny-cifar10", batch=16, batch_grad=4, dc_default=TINY_DC)
    committed = json.loads((BUNDLE / "manifest.json").read_text())
    assert m["lora"] == committed["lora"] and m["latent"] == committed["latent"] and m["dc_default"] == committed["dc_default"]
    assert set(m["graphs"]) == set(committed["graphs"])
    g = np.random.default_rng(0)
    x = g.random((4, 3, 32, 32), dtype=np.float32)
    new = ort.InferenceSession(str(out / "encode.onnx")).run(None, {"x": x})[0]
    assert rel(new, session("encode").run(None, {"x": x})[0]) < 1e-6


def test_cifar10_layouts_read_back_exactly(tmp_path):
    images, labels = cifar10.tiny()
    fx = ROOT / "tests" / "fixtures" / "cifar10-tiny"
    for layout in ("bin", "py2", "py3-protocol2", "py3-protocol4", "py3-protocol5"):
        got_x, got_y = cifar10.load(fx / layout, "test")
        assert np.array_equal(got_x, images) and np.array_equal(got_y, labels), layout
    cifar10.write_fixture(tmp_path)
    for f in (fx / "py2" / "cifar-10-batches-py" / "test_batch", fx / "bin" / "cifar-10-batches-bin" / "test_batch.bin"):
        again = tmp_path / f.relative_to(fx)
        assert again.read_bytes() == f.read_bytes(), f"{f} is not what write_fixture writes"


def test_cifar10_absent_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(cifar10.ENV, raising=False)
    with pytest.raises(cifar10.CifarError, match=cifar10.ENV):
        cifar10.load(None, "test")
    with pytest.raises(cifar10.CifarError, match="no CIFAR-10 test batches"):
        cifar10.load(tmp_path, "test")


def test_cifar_surrogate_recipe_trains_and_exports(tmp_path):
    """One epoch on tiny CIFAR-format training batches, exported: ONNX logits = PyTorch's."""
    import argparse

    from tmdc_compiler import cifar_surrogate as cs

    for i, name in enumerate(cifar10.TRAIN_BATCHES):
        x, y = cifar10.tiny(n=10, seed=i + 1)
        cifar10.write_binary(tmp_path / "data" / "cifar-10-batches-bin" / f"{name}.bin", x, y)
    args = argparse.Namespace(
        cifar10=str(tmp_path / "data"), out=str(tmp_path / "run"), epochs=1, batch=8, lr=0.05, width=4, seed=0, threads=2
    )
    final = cs.train(args)
    m = cs.export(final, tmp_path / "resnet18-cifar10", None, batch_grad=4)
    assert m["kind"] == "classifier" and m["image"]["channels"] == 3 and m["classes"] == cifar10.CLASSES
    ck = torch.load(final, weights_only=False)
    model = cs.ResNet18(cs.ResNet18Config(width=4)).eval()
    model.load_state_dict(ck["model"])
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    got = ort.InferenceSession(str(tmp_path / "resnet18-cifar10" / "logits.onnx")).run(None, {"x": x})[0]
    with torch.no_grad():
        assert rel(got, model(torch.from_numpy(x))) < 1e-4
    assert cs.held_out(50_000) == 5000 and cs.held_out(50) == 5


def test_float16_bundle_graph_keeps_float32_io_and_agrees(dc, tmp_path):
    """--dtype float16 (CUDA bundles): float16 weights inside, float32 inputs and outputs."""
    import onnx

    from tmdc_compiler.convert_sd import export_latent, to_float16

    graphs = export_latent(
        dc, tmp_path, (3, 32, 32), batch_grad=1, batch=4, only=("eps_loss", "eps_loss_vjp_x", "eps_loss_grad_lora")
    )
    to_float16(tmp_path, graphs)
    for name in graphs:  # every graph loads (the gradient graphs' layer norms once did not)
        ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    m = onnx.load(str(tmp_path / "eps_loss.onnx"), load_external_data=False)
    assert {i.type.tensor_type.elem_type for i in m.graph.input} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    assert {o.type.tensor_type.elem_type for o in m.graph.output} == {onnx.TensorProto.FLOAT}
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer)
    x, t, eps, c, lora = inputs(dc, 4, seed=5)
    with torch.no_grad():
        z = dc.encode(x)
        l2, _ = dc.errors(z, t, eps, c, lora)
    got = ort.InferenceSession(str(tmp_path / "eps_loss.onnx"), providers=["CPUExecutionProvider"]).run(
        None, feeds(dc, z, t, eps, c, lora)
    )
    assert rel(got[0], l2) < 2e-2  # float16 arithmetic
