"""Exported graphs vs PyTorch: values, autograd gradients and finite differences."""

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import TINY_BATCH

from tmdc_compiler.schedule import alphas_cumprod, eps_errors


def _session(bundle, graph):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(bundle / f"{graph}.onnx"), opts, providers=["CPUExecutionProvider"])


def _inputs(unet, b, seed):
    g = torch.Generator().manual_seed(seed)
    s = unet.cfg.image_size
    x = torch.rand(b, 1, s, s, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    eps = torch.randn(b, 1, s, s, generator=g)
    c = torch.randint(0, unet.cfg.num_classes + 1, (b,), generator=g)
    lora = [torch.randn(e["shape"], generator=g) * 0.3 for e in unet.lora_layout()]  # A and B both non-zero
    return x, t, eps, c, lora


def _feed(unet, x, t, eps, c, lora, **extra):
    names = [e["name"] for e in unet.lora_layout()]
    feed = {"x": x.numpy(), "t": t.numpy(), "eps": eps.numpy(), "class": c.numpy()}
    feed.update({k: v.numpy() for k, v in extra.items()})
    feed.update({n: a.numpy() for n, a in zip(names, lora, strict=True)})
    return feed


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("b", [1, 5])
def test_eps_loss_matches_torch_dynamic_batch(tiny_unet, tiny_diffusion_bundle, b):
    x, t, eps, c, lora = _inputs(tiny_unet, b, 1)
    l2, l1 = _session(tiny_diffusion_bundle, "eps_loss").run(None, _feed(tiny_unet, x, t, eps, c, lora))
    with torch.no_grad():
        r2, r1 = eps_errors(tiny_unet, x, t, eps, c, alphas_cumprod(), lora)
    assert rel_err(l2, r2) < 1e-5
    assert rel_err(l1, r1) < 1e-5


def test_eps_loss_base_model_is_zero_lora(tiny_unet, tiny_diffusion_bundle):
    x, t, eps, c, _ = _inputs(tiny_unet, 2, 2)
    zeros = tiny_unet.zero_lora()
    (l2, _) = _session(tiny_diffusion_bundle, "eps_loss").run(None, _feed(tiny_unet, x, t, eps, c, zeros))
    with torch.no_grad():
        r2, _ = eps_errors(tiny_unet, x, t, eps, c, alphas_cumprod(), None)
    assert rel_err(l2, r2) < 1e-5


def _torch_vjp_x(unet, x, t, eps, c, w2, w1, lora):
    x = x.clone().requires_grad_(True)
    l2, l1 = eps_errors(unet, x, t, eps, c, alphas_cumprod().to(x.dtype), lora)
    ((w2 * l2).sum() + (w1 * l1).sum()).backward()
    return l2.detach(), l1.detach(), x.grad


def test_eps_loss_vjp_x_matches_autograd(tiny_unet, tiny_diffusion_bundle):
    x, t, eps, c, lora = _inputs(tiny_unet, TINY_BATCH, 3)
    w2 = torch.tensor([1.0, 0.5, 0.0])
    w1 = torch.tensor([0.0, 0.25, 2.0])
    out = _session(tiny_diffusion_bundle, "eps_loss_vjp_x").run(None, _feed(tiny_unet, x, t, eps, c, lora, w_l2=w2, w_l1=w1))
    r2, r1, gx = _torch_vjp_x(tiny_unet, x, t, eps, c, w2, w1, lora)
    assert rel_err(out[0], r2) < 1e-5
    assert rel_err(out[1], r1) < 1e-5
    assert rel_err(out[2], gx) < 1e-4
    assert np.abs(out[2][0]).max() > 0


def test_eps_loss_vjp_x_finite_differences(tiny_unet, tiny_diffusion_bundle):
    """The ONNX gradient is the true gradient: central differences on the float64 model."""
    x, t, eps, c, lora = _inputs(tiny_unet, TINY_BATCH, 4)
    w2 = torch.tensor([1.0, 1.0, 0.5])
    w1 = torch.zeros(TINY_BATCH)
    gx = _session(tiny_diffusion_bundle, "eps_loss_vjp_x").run(None, _feed(tiny_unet, x, t, eps, c, lora, w_l2=w2, w_l1=w1))[2]
    m64 = copy.deepcopy(tiny_unet).double()
    abar = alphas_cumprod().double()
    lora64 = [a.double() for a in lora]

    def total(xx):
        with torch.no_grad():
            l2, _ = eps_errors(m64, xx, t, eps.double(), c, abar, lora64)
        return float((w2.double() * l2).sum())

    rng = np.random.default_rng(0)
    h = 1e-4
    for _ in range(6):
        i, p, q = rng.integers(0, TINY_BATCH), rng.integers(0, 28), rng.integers(0, 28)
        xp, xm = x.double().clone(), x.double().clone()
        xp[i, 0, p, q] += h
        xm[i, 0, p, q] -= h
        fd = (total(xp) - total(xm)) / (2 * h)
        assert abs(fd - gx[i, 0, p, q]) <= 2e-3 * max(abs(fd), 1e-4), (fd, gx[i, 0, p, q])


def test_eps_loss_grad_lora_matches_autograd_and_fd(tiny_unet, tiny_diffusion_bundle):
    x, t, eps, c, lora = _inputs(tiny_unet, TINY_BATCH, 5)
    w = torch.tensor([1.0, 0.0, 0.5])
    out = _session(tiny_diffusion_bundle, "eps_loss_grad_lora").run(None, _feed(tiny_unet, x, t, eps, c, lora, w=w))
    leaves = [a.clone().requires_grad_(True) for a in lora]
    l2, _ = eps_errors(tiny_unet, x, t, eps, c, alphas_cumprod(), leaves)
    (w * l2).sum().backward()
    assert rel_err(out[0], l2.detach()) < 1e-5
    for got, leaf in zip(out[1:], leaves, strict=True):
        assert got.shape == tuple(leaf.shape)
        assert rel_err(got, leaf.grad) < 1e-4
    assert all(np.abs(g).max() > 0 for g in out[1:])

    m64 = copy.deepcopy(tiny_unet).double()
    abar = alphas_cumprod().double()

    def total(ls):
        with torch.no_grad():
            l2, _ = eps_errors(m64, x.double(), t, eps.double(), c, abar, ls)
        return float((w.double() * l2).sum())

    h = 1e-5
    for k, (ti, ei) in enumerate([(0, (0, 0)), (1, (3, 1)), (6, (2, 5)), (7, (1, 2))]):
        lp = [a.double().clone() for a in lora]
        lm = [a.double().clone() for a in lora]
        lp[ti][ei] += h
        lm[ti][ei] -= h
        fd = (total(lp) - total(lm)) / (2 * h)
        got = out[1 + ti][ei]
        assert abs(fd - got) <= 2e-3 * max(abs(fd), 1e-5), (k, fd, got)


def test_surrogate_logits_and_vjp(tiny_resnet, tiny_surrogate_bundle):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(TINY_BATCH, 1, 28, 28, generator=g)
    w = torch.randn(TINY_BATCH, 10, generator=g)
    (z,) = _session(tiny_surrogate_bundle, "logits").run(None, {"x": x.numpy()})
    zv, gx = _session(tiny_surrogate_bundle, "logits_vjp_x").run(None, {"x": x.numpy(), "w": w.numpy()})
    xr = x.clone().requires_grad_(True)
    ref = tiny_resnet(xr)
    (w * ref).sum().backward()
    assert rel_err(z, ref.detach()) < 1e-5
    assert rel_err(zv, ref.detach()) < 1e-5
    assert rel_err(gx, xr.grad) < 1e-4


def test_conv_lora_is_a_low_rank_kernel_update():
    """LoRA on a ResBlock convolution equals the convolution with W + scale·Σ_r B[:, r] A[r]."""
    from tmdc_compiler.unet import UNet, UNetConfig

    torch.manual_seed(0)
    cfg = UNetConfig(base_channels=8, channel_mult=(1, 2), attention_levels=(1,), groups=4, heads=2, dropout=0.0, lora_convs=True)
    net = UNet(cfg).eval()
    layout = net.lora_layout()
    n_attn = 2 * 4 * len(net.attention_blocks())
    assert len(layout) == n_attn + 2 * 2 * len(net.res_blocks())
    lora = [torch.randn(e["shape"]) * 0.1 for e in layout]
    block = net.res_blocks()[0][1]
    pair = lora[n_attn : n_attn + 4]
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    emb = torch.randn(2, net.time_mlp[-1].out_features)
    got = block(x, emb, pair, scale=0.5)
    # the same block with the low-rank updates merged into its kernels
    ref = UNet(cfg).eval()
    ref.load_state_dict(net.state_dict())
    rb = ref.res_blocks()[0][1]
    with torch.no_grad():
        for conv, (a, b) in ((rb.conv1, pair[0:2]), (rb.conv2, pair[2:4])):
            r = a.shape[0]
            delta = torch.einsum("or,rikl->oikl", b, a.reshape(r, conv.in_channels, 3, 3))
            conv.weight += 0.5 * delta
    want = rb(x, emb)
    assert torch.allclose(got, want, atol=1e-5)
    # zero B: the base model; and the full UNet takes the conv pairs (outputs move)
    t, c = torch.tensor([10, 500]), torch.tensor([1, 2])
    xi = torch.randn(2, 1, 28, 28)
    zero = [torch.zeros_like(v) if i % 2 else v for i, v in enumerate(lora)]
    assert torch.allclose(net(xi, t, c, zero), net(xi, t, c, None), atol=1e-6)
    assert not torch.allclose(net(xi, t, c, lora), net(xi, t, c, None), atol=1e-4)
