"""Export forward and gradient graphs to ONNX (DESIGN.md §3).

onnxruntime has no autodiff, so gradients are exported as ordinary graphs: the joint
forward+backward is traced with `make_fx` under the core ATen decompositions plus a
decomposition of `aten.convolution_backward` (which has no ONNX lowering), then
exported with the dynamo exporter.

Batch handling (decision): forward-only graphs (`eps_loss`, `logits`) have a dynamic
batch axis. Gradient graphs are traced at a *fixed* batch size recorded in the
manifest; the runtime pads a short batch with rows of weight 0 (their gradient
contribution is then exactly zero) and splits a long one.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch._decomp import core_aten_decompositions
from torch.fx.experimental.proxy_tensor import make_fx

from .schedule import alphas_cumprod, eps_errors

aten = torch.ops.aten


def _conv_backward(grad_out, inp, weight, bias_sizes, stride, padding, dilation, transposed, output_padding, groups, output_mask):
    """Gradients of conv2d / conv_transpose2d with transposed convolutions (groups == 1)."""
    if groups != 1 or inp.dim() != 4:
        raise NotImplementedError("convolution_backward decomposition supports 2-D convolutions with groups=1")
    kh, kw = weight.shape[2], weight.shape[3]
    gi = gw = gb = None
    if not transposed:
        if output_mask[0]:
            op = [
                inp.shape[2 + d]
                - ((grad_out.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * ((kh, kw)[d] - 1) + 1)
                for d in range(2)
            ]
            gi = F.conv_transpose2d(grad_out, weight, None, stride, padding, op, 1, dilation)
        if output_mask[1]:
            gw = F.conv2d(inp.transpose(0, 1), grad_out.transpose(0, 1), None, dilation, padding, stride).transpose(0, 1)
            gw = gw[:, :, :kh, :kw]
    else:
        # y = conv_transpose(x, W) is the adjoint of conv(., W): its input gradient is that conv.
        if output_mask[0]:
            gi = F.conv2d(grad_out, weight, None, stride, padding, dilation)
        if output_mask[1]:
            gw = F.conv2d(grad_out.transpose(0, 1), inp.transpose(0, 1), None, dilation, padding, stride).transpose(0, 1)
            gw = gw[:, :, :kh, :kw]
    if output_mask[2]:
        gb = grad_out.sum(dim=(0, 2, 3))
    return gi, gw, gb


def _upsample_nearest2d_backward(grad_out, output_size, input_size, scales_h=None, scales_w=None):
    """Nearest up-sampling by whole factors (diffusers' UNet: ×2) copies each input pixel to an
    f_h × f_w block, so its input gradient sums each block."""
    n, c, h, w = input_size
    oh, ow = output_size
    if oh % h or ow % w:
        raise NotImplementedError("upsample_nearest2d_backward decomposition needs whole scale factors")
    return grad_out.reshape(n, c, h, oh // h, w, ow // w).sum(dim=(3, 5))


def decompositions() -> dict:
    table = dict(core_aten_decompositions())
    table[aten.convolution_backward.default] = _conv_backward
    table[aten.upsample_nearest2d_backward.default] = _upsample_nearest2d_backward
    return table


class _Traced(nn.Module):
    """Wraps an fx graph so the dynamo exporter sees an ordinary module."""

    def __init__(self, gm: torch.fx.GraphModule):
        super().__init__()
        self.gm = gm

    def forward(self, *args):
        return self.gm(*args)


def _export(
    module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str], n_batched: int = 0
) -> None:
    """`n_batched` > 0: the first n arguments share a dynamic batch axis; the rest are a
    variadic tail (LoRA tensors) with static shapes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_shapes = None
    if n_batched:
        batch = torch.export.Dim("batch", min=1, max=4096)
        head = tuple({0: batch} for _ in range(n_batched))
        tail = args[n_batched:]
        dynamic_shapes = head + ((tuple(None for _ in tail),) if tail else ())
    # torch.export first: the onnx compat layer mangles nested dynamic_shapes.
    ep = torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
    prog = torch.onnx.export(
        ep,
        args,
        input_names=input_names,
        output_names=output_names,
        dynamo=True,
        external_data=True,
        optimize=True,
        verify=False,
    )
    prog.save(str(path), external_data=True)


def _trace_grad(fn, args: tuple) -> torch.fx.GraphModule:
    return make_fx(fn, decomposition_table=decompositions(), tracing_mode="real")(*args)


class EpsLoss(nn.Module):
    """`eps_loss`: per-row MSE and MAE of the noise prediction (forward only)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet
        self.register_buffer("abar", alphas_cumprod())

    def forward(self, x, t, eps, c, *lora):
        return eps_errors(self.unet, x, t, eps, c, self.abar, list(lora))


def export_diffusion(unet: nn.Module, out: Path, batch_grad: int) -> dict:
    """Writes eps_loss, eps_loss_vjp_x and eps_loss_grad_lora; returns the manifest `graphs` entry."""
    unet = unet.eval()
    for p in unet.parameters():
        p.requires_grad_(False)
    cfg = unet.cfg
    abar = alphas_cumprod()
    lora_names = [e["name"] for e in unet.lora_layout()]
    s = cfg.image_size
    g = torch.Generator().manual_seed(0)

    def example(b: int):
        x = torch.rand(b, cfg.image_channels, s, s, generator=g)
        t = torch.randint(0, 1000, (b,), generator=g)
        eps = torch.randn(b, cfg.image_channels, s, s, generator=g)
        c = torch.randint(0, cfg.num_classes + 1, (b,), generator=g)
        lora = [torch.randn(e["shape"], generator=g) * 0.01 for e in unet.lora_layout()]
        return x, t, eps, c, lora

    graphs = {}
    base_in = ["x", "t", "eps", "class"]
    # eps_loss: dynamic batch, plain export.
    x, t, eps, c, lora = example(4)
    _export(EpsLoss(unet), (x, t, eps, c, *lora), out / "eps_loss.onnx", base_in + lora_names, ["loss_l2", "loss_l1"], 4)
    graphs["eps_loss"] = {
        "file": "eps_loss.onnx",
        "inputs": base_in + lora_names,
        "outputs": ["loss_l2", "loss_l1"],
        "batch": {"kind": "dynamic"},
    }

    n_lora = len(lora_names)

    def vjp_x(x, t, eps, c, w_l2, w_l1, *lora):
        x = x.detach().requires_grad_(True)
        l2, l1 = eps_errors(unet, x, t, eps, c, abar, list(lora))
        (gx,) = torch.autograd.grad((w_l2 * l2).sum() + (w_l1 * l1).sum(), x)
        return l2, l1, gx

    x, t, eps, c, lora = example(batch_grad)
    w = torch.rand(batch_grad, generator=g)
    gm = _trace_grad(vjp_x, (x, t, eps, c, w, w.flip(0), *lora))
    names = base_in + ["w_l2", "w_l1"] + lora_names
    _export(
        _Traced(gm), (x, t, eps, c, w, w.flip(0), *lora), out / "eps_loss_vjp_x.onnx", names, ["loss_l2", "loss_l1", "grad_x"]
    )
    graphs["eps_loss_vjp_x"] = {
        "file": "eps_loss_vjp_x.onnx",
        "inputs": names,
        "outputs": ["loss_l2", "loss_l1", "grad_x"],
        "batch": {"kind": "fixed", "size": batch_grad},
    }

    def grad_lora(x, t, eps, c, w, *lora):
        lora = [a.detach().requires_grad_(True) for a in lora]
        l2, _ = eps_errors(unet, x, t, eps, c, abar, lora)
        grads = torch.autograd.grad((w * l2).sum(), lora)
        return (l2, *grads)

    gm = _trace_grad(grad_lora, (x, t, eps, c, w, *lora))
    names = base_in + ["w"] + lora_names
    grad_names = [f"grad.{n}" for n in lora_names]
    _export(_Traced(gm), (x, t, eps, c, w, *lora), out / "eps_loss_grad_lora.onnx", names, ["loss_l2", *grad_names])
    graphs["eps_loss_grad_lora"] = {
        "file": "eps_loss_grad_lora.onnx",
        "inputs": names,
        "outputs": ["loss_l2", *grad_names],
        "batch": {"kind": "fixed", "size": batch_grad},
    }
    assert n_lora == len(grad_names)
    return graphs


def export_surrogate(model: nn.Module, out: Path, batch_grad: int, image_shape: tuple[int, int, int]) -> dict:
    """Writes `logits` (dynamic batch) and `logits_vjp_x` (fixed batch): d(sum w*logits)/dx."""
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, *image_shape, generator=g)
    _export(model, (x,), out / "logits.onnx", ["x"], ["logits"], 1)
    k = model.cfg.num_classes

    def vjp(x, w):
        x = x.detach().requires_grad_(True)
        z = model(x)
        (gx,) = torch.autograd.grad((w * z).sum(), x)
        return z, gx

    x = torch.rand(batch_grad, *image_shape, generator=g)
    w = torch.randn(batch_grad, k, generator=g)
    gm = _trace_grad(vjp, (x, w))
    _export(_Traced(gm), (x, w), out / "logits_vjp_x.onnx", ["x", "w"], ["logits", "grad_x"])
    return {
        "logits": {"file": "logits.onnx", "inputs": ["x"], "outputs": ["logits"], "batch": {"kind": "dynamic"}},
        "logits_vjp_x": {
            "file": "logits_vjp_x.onnx",
            "inputs": ["x", "w"],
            "outputs": ["logits", "grad_x"],
            "batch": {"kind": "fixed", "size": batch_grad},
        },
    }


class EpsPred(nn.Module):
    """`eps_pred`: the base model's noise prediction at a noisy input x_t (model space, where
    x_t = √ā·(2x − 1) + √(1 − ā)·ε), for purification (DiffPure). No LoRA inputs."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, xt, t, c):
        return self.unet(xt, t, c, None)


def export_eps_pred(unet: nn.Module, out: Path, batch_grad: int) -> dict:
    """Writes eps_pred (dynamic batch) and eps_pred_vjp_x (fixed batch): d(Σ w·ε̂)/dx_t, so an
    attack's gradient can flow through every reverse step of a purification."""
    unet = unet.eval()
    for p in unet.parameters():
        p.requires_grad_(False)
    cfg = unet.cfg
    s = cfg.image_size
    g = torch.Generator().manual_seed(0)

    def example(b: int):
        xt = torch.randn(b, cfg.image_channels, s, s, generator=g)
        t = torch.randint(0, 1000, (b,), generator=g)
        c = torch.randint(0, cfg.num_classes + 1, (b,), generator=g)
        return xt, t, c

    xt, t, c = example(4)
    _export(EpsPred(unet), (xt, t, c), out / "eps_pred.onnx", ["x_t", "t", "class"], ["eps"], 3)

    def vjp(xt, t, c, w):
        xt = xt.detach().requires_grad_(True)
        e = unet(xt, t, c, None)
        (gx,) = torch.autograd.grad((w * e).sum(), xt)
        return e, gx

    xt, t, c = example(batch_grad)
    w = torch.randn(xt.shape, generator=g)
    gm = _trace_grad(vjp, (xt, t, c, w))
    _export(_Traced(gm), (xt, t, c, w), out / "eps_pred_vjp_x.onnx", ["x_t", "t", "class", "w"], ["eps", "grad_x"])
    return {
        "eps_pred": {"file": "eps_pred.onnx", "inputs": ["x_t", "t", "class"], "outputs": ["eps"], "batch": {"kind": "dynamic"}},
        "eps_pred_vjp_x": {
            "file": "eps_pred_vjp_x.onnx",
            "inputs": ["x_t", "t", "class", "w"],
            "outputs": ["eps", "grad_x"],
            "batch": {"kind": "fixed", "size": batch_grad},
        },
    }
