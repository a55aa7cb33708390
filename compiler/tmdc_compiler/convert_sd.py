"""Convert a local Stable Diffusion (diffusers) folder into a latent-diffusion bundle.

  python -m tmdc_compiler.convert_sd --diffusers DIR --classes cifar10 \\
      --template "a blurry photo of a {}." --out ../models/sd2-cifar10 [--resolution 512]

The paper's classifier (Li et al.'s public code, which TMDC builds on): CIFAR-10 images in [0, 1], upsampled to the UNet's
resolution (bicubic), scaled to [-1, 1], encoded by the VAE (latent mean × scaling factor);
one text embedding per class prompt (CLIP `last_hidden_state` of the padded prompt, Li et al.'s
`text_encoder(text_input.input_ids)[0]`), computed here once and stored in the bundle's weights
(the class index selects one; the empty prompt is the null class); LoRA on every attention
projection the paper targets (to_q, to_k, to_v, to_out.0, self- and cross-attention).

Graphs (the bundle contract's latent variant; lib/bundle_manifest.ts): `encode` x → z and `encode_vjp_x` (d(Σ w·z)/dx),
and on latents `eps_loss`, `eps_loss_vjp_x` (gradient w.r.t. z) and `eps_loss_grad_lora`. The
worker chains them, so the DC, the attacks (back to the pixel image) and Truth Maximization
run unchanged. A missing or mismatched component is refused with a message naming it.

Decisions: the resampling is torch's bicubic (a = −0.75, align_corners=False), not PIL's
(a = −0.5) that Li et al.'s torchvision transform applies to PIL images: the upsampling must
be inside the differentiable graph. `--dtype float16` (CUDA) keeps float32 inputs and outputs
and runs float16 inside (onnxruntime's converter, keep_io_types); the CPU provider has no
float16 kernels for most of these ops, so float32 is the CPU bundle.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .bundle import write_manifest
from .export import _export, _trace_grad, _Traced
from .share_weights import share

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CLASS_SETS = {"cifar10": CIFAR10}
COMPONENTS = {
    "unet": ("diffusers", "UNet2DConditionModel"),
    "vae": ("diffusers", "AutoencoderKL"),
    "text_encoder": ("transformers", "CLIPTextModel"),
    "tokenizer": ("transformers", "CLIPTokenizer"),
    "scheduler": ("diffusers", None),  # any scheduler: only its training schedule is read
}
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module's docstring as written, and every option's default in --help."""


class ConvertError(ValueError):
    """A diffusers folder this converter refuses; the message names the component."""


def check_folder(folder: Path) -> dict:
    """model_index.json and every component folder with its config and weights."""
    folder = Path(folder)
    if not folder.exists():
        raise ConvertError(f"{folder} does not exist")
    if not folder.is_dir():
        raise ConvertError(f"{folder} is a file: --diffusers takes the pipeline folder (the one holding model_index.json)")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ConvertError(f"{folder} has no model_index.json: not a diffusers pipeline folder")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as e:
        raise ConvertError(f"model_index.json is not valid JSON: {e}") from e
    for name, (lib, cls) in COMPONENTS.items():
        entry = index.get(name)
        if not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
            raise ConvertError(f"model_index.json lists no '{name}' component")
        if entry[0] != lib or (cls is not None and entry[1] not in (cls, cls + "Fast", "CLIPTokenizerFast")):
            raise ConvertError(f"component '{name}' is {entry[0]}.{entry[1]}, expected {lib}.{cls or 'a scheduler'}")
        sub = folder / name
        if not sub.is_dir():
            raise ConvertError(f"component '{name}': folder {sub} is missing")
        if name == "tokenizer":
            if not ((sub / "tokenizer.json").is_file() or ((sub / "vocab.json").is_file() and (sub / "merges.txt").is_file())):
                raise ConvertError("component 'tokenizer': neither tokenizer.json nor vocab.json + merges.txt")
            continue
        cfg = sub / ("scheduler_config.json" if name == "scheduler" else "config.json")
        if not cfg.is_file():
            raise ConvertError(f"component '{name}': {cfg.name} is missing")
        if name != "scheduler" and not any(p.suffix in (".safetensors", ".bin") for p in sub.iterdir()):
            raise ConvertError(f"component '{name}': no weights (.safetensors or .bin) in {sub}")
    return index


def schedule_of(folder: Path) -> tuple[dict, str]:
    cfg = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text())
    kind = cfg.get("beta_schedule", "linear")
    if kind not in ("linear", "scaled_linear"):
        raise ConvertError(f"component 'scheduler': beta_schedule {kind!r} is not supported (linear, scaled_linear)")
    for key in ("trained_betas", "rescale_betas_zero_snr"):
        if cfg.get(key):
            raise ConvertError(
                f"component 'scheduler': {key} is not supported (the bundle's schedule would differ from the training one)"
            )
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction"):
        raise ConvertError(f"component 'scheduler': prediction_type {pred!r} is not supported (epsilon, v_prediction)")
    sched = {
        "kind": "ddpm_linear" if kind == "linear" else "scaled_linear",
        "num_timesteps": int(cfg.get("num_train_timesteps", 1000)),
        "beta_start": float(cfg.get("beta_start", 0.0001)),
        "beta_end": float(cfg.get("beta_end", 0.02)),
    }
    return sched, pred


def alphas_cumprod_of(sched: dict) -> torch.Tensor:
    n, b0, b1 = sched["num_timesteps"], sched["beta_start"], sched["beta_end"]
    if sched["kind"] == "scaled_linear":
        betas = torch.linspace(b0**0.5, b1**0.5, n, dtype=torch.float64) ** 2
    else:
        betas = torch.linspace(b0, b1, n, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def bicubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """torch's bicubic resize along one axis as an [n_out, n_in] matrix (the resize is linear and
    separable, so out = M_h · x · M_wᵀ equals F.interpolate(..., "bicubic") exactly); a matmul
    exports with its gradient, where upsample_bicubic2d_backward has no ONNX lowering."""
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, 1, n_in)
    cols = F.interpolate(eye, size=(1, n_out), mode="bicubic", align_corners=False)  # [n_in, 1, 1, n_out]
    return cols.reshape(n_in, n_out).T.contiguous().float()


class LoraLinear(nn.Module):
    """y = W x + (α/r)·B A x; A and B are graph inputs, set on the module for one forward."""

    def __init__(self, base: nn.Linear, scale: float):
        super().__init__()
        self.base = base
        self.scale = scale
        self.a: torch.Tensor | None = None
        self.b: torch.Tensor | None = None

    def forward(self, x):
        y = self.base(x)
        if self.a is not None:
            y = y + self.scale * F.linear(F.linear(x, self.a), self.b)
        return y


def _attention_scores(self, query, key, attention_mask=None):
    """diffusers' Attention.get_attention_scores without its `baddbmm(torch.empty(...), beta=0)`:
    the exporter bakes that empty [batch·heads, tokens, tokens] tensor into the graph as a
    constant (gigabytes at SD's 4,096 tokens). Same arithmetic otherwise."""
    dtype = query.dtype
    if self.upcast_attention:
        query, key = query.float(), key.float()
    scores = torch.bmm(query, key.transpose(-1, -2)) * self.scale
    if attention_mask is not None:
        scores = scores + attention_mask
    if self.upcast_softmax:
        scores = scores.float()
    return scores.softmax(dim=-1).to(dtype)


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    owner = root.get_submodule(parent) if parent else root
    if leaf.isdigit():
        owner[int(leaf)] = module
    else:
        setattr(owner, leaf, module)


class LatentDC(nn.Module):
    """The classifier's differentiable pieces from diffusers components."""

    def __init__(self, unet, vae, embeddings, sched: dict, prediction_type: str, resolution: int, rank: int, alpha: float):
        super().__init__()
        from diffusers.models.attention_processor import Attention, AttnProcessor

        self.unet, self.vae = unet.eval(), vae.eval()
        # plain matmul-softmax attention: traceable forward and backward (SDPA's CPU backward is not)
        self.unet.set_attn_processor(AttnProcessor())
        self.vae.set_attn_processor(AttnProcessor())
        for m in [*self.unet.modules(), *self.vae.modules()]:
            if isinstance(m, Attention):
                m.get_attention_scores = types.MethodType(_attention_scores, m)
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("emb", embeddings.float())
        abar = alphas_cumprod_of(sched).double()
        self.register_buffer("abar", abar.float())
        # √ā and √(1 − ā) as their own tables, from float64: a float16 bundle then rounds each
        # relatively (ā itself in float16 near 1 would put 1 − ā off by up to 18% at t = 0)
        self.register_buffer("sqrt_abar", abar.sqrt().float())
        self.register_buffer("sqrt_1m_abar", (1.0 - abar).sqrt().float())
        self.prediction_type = prediction_type
        self.resolution = resolution
        self.scaling = float(vae.config.scaling_factor)
        self.slots: list[tuple[str, LoraLinear]] = []
        attn_paths = [n for n, m in self.unet.named_modules() if isinstance(m, Attention)]
        for ap in attn_paths:
            for tgt in LORA_TARGETS:
                path = f"{ap}.{tgt}"
                base = self.unet.get_submodule(path)
                wrapped = LoraLinear(base, alpha / rank)
                _set_submodule(self.unet, path, wrapped)
                self.slots.append((path, wrapped))
        self.rank = rank

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        f = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return (self.vae.config.latent_channels, self.resolution // f, self.resolution // f)

    def lora_layout(self) -> list[dict]:
        out = []
        for path, m in self.slots:
            out.append({"name": f"lora.{path}.A", "shape": [self.rank, m.base.in_features]})
            out.append({"name": f"lora.{path}.B", "shape": [m.base.out_features, self.rank]})
        return out

    def zero_lora(self) -> list[torch.Tensor]:
        return [torch.zeros(e["shape"]) for e in self.lora_layout()]

    def _use(self, lora) -> None:
        for i, (_, m) in enumerate(self.slots):
            m.a, m.b = (lora[2 * i], lora[2 * i + 1]) if lora else (None, None)

    def encode(self, x01: torch.Tensor) -> torch.Tensor:
        """[0, 1] image → upsample (bicubic) → [-1, 1] → VAE latent mean × scaling factor."""
        x = x01
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            mh = bicubic_matrix(x.shape[-2], self.resolution)
            mw = bicubic_matrix(x.shape[-1], self.resolution)
            x = mh @ x @ mw.T
        return self.vae.encode(2.0 * x - 1.0).latent_dist.mean * self.scaling

    def errors(self, z, t, eps, c, lora=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row mean squared and mean absolute prediction error on latent z (ε or v target)."""
        sa = self.sqrt_abar[t].reshape(-1, 1, 1, 1)
        s1a = self.sqrt_1m_abar[t].reshape(-1, 1, 1, 1)
        zt = sa * z + s1a * eps
        self._use(list(lora) if lora else None)
        try:
            pred = self.unet(zt, t, encoder_hidden_states=self.emb[c]).sample
        finally:
            self._use(None)
        target = eps if self.prediction_type == "epsilon" else sa * eps - s1a * z
        d = (pred - target).flatten(1)
        return d.pow(2).mean(1), d.abs().mean(1)

    def pixel_errors(self, x01, t, eps, c, lora=None):
        return self.errors(self.encode(x01), t, eps, c, lora)


@torch.no_grad()
def text_embeddings(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    ids = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return text_encoder(ids)[0]


def load(folder: Path, classes: list[str], template: str, resolution: int | None, rank: int, alpha: float):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    check_folder(folder)
    sched, pred = schedule_of(folder)
    cfg = {n: json.loads((folder / n / "config.json").read_text()) for n in ("unet", "vae", "text_encoder")}
    # configs agree before any weights load (a mismatch then names the components, not a tensor)
    if cfg["unet"].get("in_channels") != cfg["vae"].get("latent_channels", 4):
        raise ConvertError(
            f"component 'unet' takes {cfg['unet'].get('in_channels')} channels but 'vae' makes {cfg['vae'].get('latent_channels', 4)}"
        )
    if cfg["unet"].get("addition_embed_type") or (folder / "text_encoder_2").exists():
        raise ConvertError("component 'unet' takes added (SDXL-style) conditioning: only SD 1.x/2.x pipelines are supported")
    cross, hidden = cfg["unet"].get("cross_attention_dim"), cfg["text_encoder"].get("hidden_size")
    if cross != hidden:
        raise ConvertError(f"component 'unet' attends to {cross}-d text but 'text_encoder' makes {hidden}-d")

    def loaded(name, loader):
        sub = folder / name
        # a download with only fp16 weights (`*.fp16.safetensors`) is diffusers' "fp16" variant
        names = [p.name for p in sub.iterdir()] if sub.is_dir() else []
        plain = any(n.endswith((".safetensors", ".bin")) and ".fp16." not in n for n in names)
        kw = {} if plain or name == "tokenizer" or not any(".fp16." in n for n in names) else {"variant": "fp16"}
        try:
            return loader(str(sub), **kw)
        except (OSError, RuntimeError, ValueError) as e:
            raise ConvertError(f"component '{name}' does not load: {str(e).splitlines()[0]}") from e

    # float32 whatever the download's dtype: the graphs are traced in float32 (--dtype float16
    # converts them afterwards)
    unet = loaded("unet", UNet2DConditionModel.from_pretrained).float()
    vae = loaded("vae", AutoencoderKL.from_pretrained).float()
    text = loaded("text_encoder", CLIPTextModel.from_pretrained).float().eval()
    tok = loaded("tokenizer", CLIPTokenizer.from_pretrained)
    if len(tok) > text.config.vocab_size:
        raise ConvertError(f"component 'tokenizer' has {len(tok)} tokens, 'text_encoder' only {text.config.vocab_size}")
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    res = resolution or unet.config.sample_size * factor
    if res % factor:
        raise ConvertError(f"--resolution {res} is not a multiple of the VAE's down-sampling factor {factor}")
    dup = sorted({c for c in classes if classes.count(c) > 1})
    if dup:
        raise ConvertError(f"--classes names {', '.join(dup)} more than once")
    if "{}" not in template:
        raise ConvertError(f"--template {template!r} has no '{{}}' for the class name")
    prompts = [template.format(c) for c in classes]
    emb = text_embeddings(tok, text, prompts + [""])
    for i in range(len(prompts)):
        for j in range(i):
            if torch.equal(emb[i], emb[j]):
                raise ConvertError(
                    f"component 'tokenizer': prompts {prompts[j]!r} and {prompts[i]!r} give the same text embedding "
                    f"(truncated at {min(tok.model_max_length, text.config.max_position_embeddings)} tokens?)"
                )
    dc = LatentDC(unet, vae, emb, sched, pred, res, rank, alpha)
    info = {
        "schedule": sched,
        "prediction_type": pred,
        "resolution": res,
        "latent": [vae.config.latent_channels, res // factor, res // factor],
        "prompts": prompts,
        "tokens": min(tok.model_max_length, text.config.max_position_embeddings),
        "embedding_dim": int(emb.shape[-1]),
    }
    return dc, info


def export_latent(
    dc: LatentDC, out: Path, image: tuple[int, int, int], batch_grad: int, batch: int, only: tuple[str, ...] | None = None
) -> dict:
    """Writes encode, encode_vjp_x, eps_loss, eps_loss_vjp_x, eps_loss_grad_lora (or `only` those:
    the throughput benchmark needs eps_loss alone); returns `graphs`."""

    def want(name: str) -> bool:
        return only is None or name in only

    g = torch.Generator().manual_seed(0)
    zc, zh, zw = (dc.vae.config.latent_channels, dc.resolution // 8, dc.resolution // 8)
    with torch.no_grad():
        zc, zh, zw = dc.encode(torch.rand(1, *image, generator=g)).shape[1:]
    layout = dc.lora_layout()
    lora_names = [e["name"] for e in layout]
    k1 = dc.emb.shape[0]
    T = dc.abar.shape[0]

    def example(b: int):
        z = torch.randn(b, zc, zh, zw, generator=g)
        t = torch.randint(0, T, (b,), generator=g)
        eps = torch.randn(b, zc, zh, zw, generator=g)
        c = torch.randint(0, k1, (b,), generator=g)
        lora = [torch.randn(e["shape"], generator=g) * 0.01 for e in layout]
        return z, t, eps, c, lora

    class Encode(nn.Module):
        def __init__(self):
            super().__init__()
            self.dc = dc

        def forward(self, x):
            return self.dc.encode(x)

    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.dc = dc

        def forward(self, z, t, eps, c, *lora):
            return self.dc.errors(z, t, eps, c, list(lora))

    graphs: dict[str, dict] = {}

    def record(name, inputs, outputs, batch):
        graphs[name] = {"file": f"{name}.onnx", "inputs": inputs, "outputs": outputs, "batch": batch}

    x = torch.rand(2, *image, generator=g)
    if want("encode"):
        _export(Encode(), (x,), out / "encode.onnx", ["x"], ["z"], 1)
        record("encode", ["x"], ["z"], {"kind": "dynamic"})

    def enc_vjp(x, w):
        x = x.detach().requires_grad_(True)
        z = dc.encode(x)
        (gx,) = torch.autograd.grad((w * z).sum(), x)
        return z, gx

    x = torch.rand(batch_grad, *image, generator=g)
    w = torch.randn(batch_grad, zc, zh, zw, generator=g)
    if want("encode_vjp_x"):
        _export(_Traced(_trace_grad(enc_vjp, (x, w))), (x, w), out / "encode_vjp_x.onnx", ["x", "w"], ["z", "grad_x"])
        record("encode_vjp_x", ["x", "w"], ["z", "grad_x"], {"kind": "fixed", "size": batch_grad})

    base_in = ["z", "t", "eps", "class"]
    # A fixed batch: diffusers' up-sampling branches on `batch >= 64` (a no-op `.contiguous()`),
    # which torch.export turns into a guard no dynamic batch axis satisfies. The runtime pads.
    z, t, eps, c, lora = example(batch)
    if want("eps_loss"):
        _export(Loss(), (z, t, eps, c, *lora), out / "eps_loss.onnx", base_in + lora_names, ["loss_l2", "loss_l1"])
        record("eps_loss", base_in + lora_names, ["loss_l2", "loss_l1"], {"kind": "fixed", "size": batch})

    def vjp_z(z, t, eps, c, w_l2, w_l1, *lora):
        z = z.detach().requires_grad_(True)
        l2, l1 = dc.errors(z, t, eps, c, list(lora))
        (gz,) = torch.autograd.grad((w_l2 * l2).sum() + (w_l1 * l1).sum(), z)
        return l2, l1, gz

    z, t, eps, c, lora = example(batch_grad)
    w = torch.rand(batch_grad, generator=g)
    args = (z, t, eps, c, w, w.flip(0), *lora)
    names = base_in + ["w_l2", "w_l1"] + lora_names
    if want("eps_loss_vjp_x"):
        _export(_Traced(_trace_grad(vjp_z, args)), args, out / "eps_loss_vjp_x.onnx", names, ["loss_l2", "loss_l1", "grad_z"])
        record("eps_loss_vjp_x", names, ["loss_l2", "loss_l1", "grad_z"], {"kind": "fixed", "size": batch_grad})

    def grad_lora(z, t, eps, c, w, *lora):
        lora = [a.detach().requires_grad_(True) for a in lora]
        l2, _ = dc.errors(z, t, eps, c, lora)
        return (l2, *torch.autograd.grad((w * l2).sum(), lora))

    args = (z, t, eps, c, w, *lora)
    names = base_in + ["w"] + lora_names
    grad_names = [f"grad.{n}" for n in lora_names]
    if want("eps_loss_grad_lora"):
        _export(_Traced(_trace_grad(grad_lora, args)), args, out / "eps_loss_grad_lora.onnx", names, ["loss_l2", *grad_names])
        record("eps_loss_grad_lora", names, ["loss_l2", *grad_names], {"kind": "fixed", "size": batch_grad})
    return graphs


def strip_metadata(out: Path, graphs: dict) -> None:
    """Drop the exporter's per-node stack traces (≈ 85% of each graph file); weights stay put."""
    import onnx

    for g in graphs.values():
        path = out / g["file"]
        m = onnx.load(str(path), load_external_data=False)
        for n in m.graph.node:
            n.doc_string = ""
            del n.metadata_props[:]
        onnx.save(m, str(path))


def to_float16(out: Path, graphs: dict) -> None:
    """float16 weights and compute with float32 inputs and outputs (CUDA bundles)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    for g in graphs.values():
        path = out / g["file"]
        m = onnx.load(str(path))  # with its external data
        # attention's softmax stays float32 (what diffusers' fp16 pipelines do with upcast_softmax)
        # LayerNormalization stays float32 too: its backward graphs read the node's saved mean and
        # inverse deviation, which the converter would leave typed float32 behind float16 edges
        m16 = convert_float_to_float16(
            m, keep_io_types=True, disable_shape_infer=True, op_block_list=["Softmax", "LayerNormalization"]
        )
        for f in out.glob(f"{g['file']}*data"):
            f.unlink()
        onnx.save(m16, str(path), save_as_external_data=True, location=f"{g['file']}.data")


# Li et al.'s CIFAR-10 setting (paper.md): 500 even timesteps, 50 for every class, keep 5, then
# the remaining 450 for those 5 (2,750 UNet calls), L1 error as their public code.
PAPER_DC = {
    "stages": [{"nSamples": 50, "keep": 5}, {"nSamples": 500, "keep": 1}],
    "gridSize": 500,
    "tRange": [0, 1000],
    "error": "l1",
    "timesteps": "even",
    "seed": 0,
    "posteriorScale": 1.0,
}


def convert(
    folder: Path,
    out: Path,
    classes: list[str],
    template: str,
    name: str | None = None,
    resolution: int | None = None,
    image_size: int = 32,
    rank: int = 4,
    alpha: float = 4.0,
    dtype: str = "float32",
    batch_grad: int = 2,
    batch: int = 32,
    dc_default: dict | None = None,
) -> dict:
    folder, out = Path(folder), Path(out)
    check_folder(folder)  # the source's problems first
    src, dst = folder.resolve(), out.resolve()
    if out.exists() and not out.is_dir():
        raise ConvertError(f"--out {out} is a file, not a bundle folder")
    if dst == src or dst in src.parents:
        raise ConvertError(f"--out {out} is (or holds) the diffusers folder: it would be deleted")
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise ConvertError(f"--out {out} is a non-empty folder that is not a bundle: refusing to replace it")
    dc, info = load(folder, classes, template, resolution, rank, alpha)
    if dtype == "float16" and dc.unet.config.get("upcast_attention"):
        raise ConvertError(
            "component 'unet' asks for upcast_attention (float32 attention scores, SD 2.1): "
            "a float16 bundle would overflow there; convert with --dtype float32"
        )
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    image = (3, image_size, image_size)
    graphs = export_latent(dc, out, image, batch_grad, batch)
    strip_metadata(out, graphs)
    if dtype == "float16":
        to_float16(out, graphs)
    manifest = {
        "name": name or out.name,
        "version": "1.0.0",
        "kind": "latent-diffusion",
        "image": {
            "channels": 3,
            "height": image_size,
            "width": image_size,
            "value_range": [0.0, 1.0],
            "layout": "NCHW",
            "dtype": "float32",
        },
        "classes": classes,
        "null_class": len(classes),
        "schedule": info["schedule"],
        "latent": {
            "channels": info["latent"][0],
            "height": info["latent"][1],
            "width": info["latent"][2],
            "resolution": info["resolution"],
            "resampling": "bicubic",
            "pixel_range": [-1.0, 1.0],
            "scaling_factor": dc.scaling,
        },
        "prediction_type": info["prediction_type"],
        "conditioning": {
            "kind": "text",
            "template": template,
            "prompts": info["prompts"],
            "null_prompt": "",
            "tokens": info["tokens"],
            "embedding_dim": info["embedding_dim"],
            "note": "CLIP last_hidden_state of each padded prompt, computed at conversion, stored in the weights",
        },
        "dtype": dtype,
        "model": {
            "architecture": "stable-diffusion (diffusers)",
            "unet": dict(dc.unet.config),
            "vae_scaling_factor": dc.scaling,
            "parameters": sum(p.numel() for p in dc.unet.parameters()),
        },
        "lora": {
            "rank": rank,
            "alpha": alpha,
            "targets": list(LORA_TARGETS),
            "tensors": dc.lora_layout(),
            "init": "A ~ kaiming-uniform(a=sqrt(5)) as in LoRA, B = 0",
        },
        "graphs": graphs,
        "dc_default": dc_default if dc_default is not None else PAPER_DC,
        "provenance": {
            "export_command": " ".join(shlex.quote(a) for a in sys.argv),
            "diffusers_folder": str(folder.resolve()),
            "diffusers_index": json.loads((folder / "model_index.json").read_text()),
        },
    }
    manifest["model"]["unet"] = json.loads(json.dumps(manifest["model"]["unet"], default=str))
    write_manifest(out, manifest)
    return share(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--diffusers", required=True, type=Path, help="local diffusers pipeline folder")
    p.add_argument("--classes", default="cifar10", help="cifar10, or comma-separated class names")
    p.add_argument("--template", default="a blurry photo of a {}.", help="prompt template, '{}' = class name")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--name", help="bundle name (default: the --out folder's name)")
    p.add_argument("--resolution", type=int, help="UNet input resolution in pixels (default: the UNet's sample_size × 8)")
    p.add_argument("--image-size", type=int, default=32, help="input image side (CIFAR-10: 32)")
    p.add_argument("--rank", type=int, default=4, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=4.0, help="LoRA alpha")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="float16: CUDA bundles")
    p.add_argument(
        "--batch-grad", type=int, default=2, help="fixed batch of the gradient graphs (tracing runs it: keep SD's small)"
    )
    p.add_argument("--batch", type=int, default=32, help="fixed batch of eps_loss (the classifier's graph)")
    a = p.parse_args()
    if a.classes in CLASS_SETS:
        classes = CLASS_SETS[a.classes]
    elif "," in a.classes:
        classes = [c.strip() for c in a.classes.split(",") if c.strip()]
    else:
        p.error(f"--classes {a.classes!r} is not a preset ({', '.join(CLASS_SETS)}) nor a comma-separated list")
    if len(classes) < 2:
        p.error("--classes needs at least two classes")
    for name in ("rank", "image_size", "batch_grad", "batch"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.image_size < 8:
        p.error("--image-size must be at least 8")
    if a.alpha <= 0:
        p.error("--alpha must be positive")
    try:
        m = convert(
            a.diffusers,
            a.out,
            classes,
            a.template,
            a.name,
            a.resolution,
            a.image_size,
            a.rank,
            a.alpha,
            a.dtype,
            a.batch_grad,
            a.batch,
        )
    except ConvertError as e:
        sys.exit(f"convert_sd: {e}")
    print(json.dumps({"bundle": str(a.out), "name": m["name"], "files": m["files"]}, indent=2))


if __name__ == "__main__":
    main()
