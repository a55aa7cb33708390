"""A tiny, random, Stable-Diffusion-shaped diffusers folder, for tests of the SD path.

  python -m tmdc_compiler.sd_tiny --out DIR [--seed 0] [--prediction-type epsilon]

The folder has exactly the layout a real SD 2 download has (`model_index.json`, `unet/`,
`vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`), written by diffusers' and transformers'
own `save_pretrained`: a UNet2DConditionModel with cross-attention and SD 2's linear
projections, an AutoencoderKL with SD's 8× down-sampling, a CLIP text encoder, and a CLIP BPE
tokenizer whose vocabulary is the 256 byte symbols (so any prompt tokenizes). Only the sizes
are small: the converter and the reference classifier cannot tell it from the real thing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

# SD 2's VAE scaling factor and noise schedule (paper.md)
SCALING_FACTOR = 0.18215
RESOLUTION = 64  # CIFAR's 32 px are upsampled to this; SD 2 base uses 512
MAX_TOKENS = 40  # "a blurry photo of a automobile." is 33 character tokens with its two specials


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte → printable-character table (the BPE's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def write_tokenizer_files(folder: Path) -> None:
    """vocab.json and merges.txt of a character-level CLIP BPE (no merges)."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")


# SD 2 base's real component shapes (stabilityai/stable-diffusion-2-base configs), for
# `--shape sd2`: random weights at the real size, for throughput measurements only.
SD2 = {
    "resolution": 512,
    "tokens": 77,
    "text": {
        "vocab_size": 49408,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 23,
        "num_attention_heads": 16,
        "projection_dim": 512,
    },
    "unet": {
        "layers_per_block": 2,
        "block_out_channels": (320, 640, 1280, 1280),
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "cross_attention_dim": 1024,
        "attention_head_dim": (5, 10, 20, 20),
        "norm_num_groups": 32,
    },
    "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32},
}
TINY = {
    "resolution": RESOLUTION,
    "tokens": MAX_TOKENS,
    "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "projection_dim": 32},
    "unet": {
        "layers_per_block": 1,
        "block_out_channels": (16, 32),
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": 32,
        "attention_head_dim": (2, 4),  # SD 2 names heads per level here
        "norm_num_groups": 8,
    },
    "vae": {"block_out_channels": (8, 16, 16, 16), "layers_per_block": 1, "norm_num_groups": 8},
}


def build(out: Path, seed: int = 0, prediction_type: str = "epsilon", shape: str = "tiny") -> Path:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    raw = out / ".tokenizer-src"
    write_tokenizer_files(raw)
    spec = SD2 if shape == "sd2" else TINY
    tok = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), model_max_length=spec["tokens"])
    tok.save_pretrained(str(out / "tokenizer"))
    for f in raw.iterdir():
        f.unlink()
    raw.rmdir()

    text = CLIPTextModel(
        CLIPTextConfig(
            **({"vocab_size": len(tok)} | spec["text"]),
            max_position_embeddings=spec["tokens"],
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            hidden_act="gelu",
        )
    ).eval()
    text.save_pretrained(str(out / "text_encoder"))

    unet = UNet2DConditionModel(
        sample_size=spec["resolution"] // 8,
        in_channels=4,
        out_channels=4,
        use_linear_projection=True,  # SD 2's transformer blocks
        **spec["unet"],
    ).eval()
    unet.save_pretrained(str(out / "unet"))

    n = len(spec["vae"]["block_out_channels"])
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        latent_channels=4,
        sample_size=spec["resolution"],
        scaling_factor=SCALING_FACTOR,
        **spec["vae"],
    ).eval()
    vae.save_pretrained(str(out / "vae"))

    DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        clip_sample=False,
    ).save_pretrained(str(out / "scheduler"))

    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": _version("diffusers"),
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=type("F", (argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter), {}),
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], default="epsilon")
    p.add_argument("--shape", choices=["tiny", "sd2"], default="tiny", help="sd2: SD 2 base's real sizes (random weights)")
    a = p.parse_args()
    print(build(a.out, a.seed, a.prediction_type, a.shape))


if __name__ == "__main__":
    main()
