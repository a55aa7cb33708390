"""Class-conditional pixel-space UNet for 1x28x28 images, with LoRA slots as inputs.

LoRA tensors are *forward arguments*, not parameters, so the exported ONNX graphs take
them as inputs: one graph serves the base model (B = 0) and every adapter.
Per attention block there are four LoRA pairs (q, k, v, out), each `A: [r, C]`,
`B: [C, r]`, and the projection becomes `W x + (alpha / r) * B (A x)`. With
`lora_convs`, every ResBlock's two 3x3 convolutions take a pair too (after all attention pairs,
ResBlocks in module order): `A: [r, Cin*9]` is r 3x3 filters, `B: [Cout, r]` a 1x1 mix, and the
convolution becomes `W * x + (alpha / r) * B (A * x)` (the Truth-Maximization capacity study).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

LORA_TARGETS = ("q", "k", "v", "out")
CONV_TARGETS = ("conv1", "conv2")


@dataclass(frozen=True)
class UNetConfig:
    image_channels: int = 1
    image_size: int = 28
    base_channels: int = 48
    channel_mult: tuple[int, ...] = (1, 2, 2)
    attention_levels: tuple[int, ...] = (2,)  # 7x7: attention where tokens are few
    num_classes: int = 10  # plus one "null" class (index num_classes) for label dropout
    groups: int = 8
    heads: int = 4
    dropout: float = 0.1
    lora_rank: int = 4
    lora_alpha: float = 4.0
    lora_convs: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> UNetConfig:
        d = dict(d)
        for k in ("channel_mult", "attention_levels"):
            d[k] = tuple(d[k])
        return UNetConfig(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, lora: list[torch.Tensor] | None = None, scale: float = 1.0
    ) -> torch.Tensor:
        def conv(i: int, layer: nn.Conv2d, inp: torch.Tensor) -> torch.Tensor:
            y = layer(inp)
            if lora is not None:
                a, bb = lora[2 * i], lora[2 * i + 1]
                r = a.shape[0]
                low = F.conv2d(inp, a.reshape(r, layer.in_channels, 3, 3), padding=1)
                y = y + scale * F.conv2d(low, bb.reshape(layer.out_channels, r, 1, 1))
            return y

        h = conv(0, self.conv1, F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = conv(1, self.conv2, self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over spatial tokens; q/k/v/out take LoRA deltas."""

    def __init__(self, channels: int, groups: int, heads: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)
        self.heads = heads

    def forward(self, x: torch.Tensor, lora: list[torch.Tensor] | None, scale: float) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)  # [B, HW, C]

        def proj(i: int, layer: nn.Linear, inp: torch.Tensor) -> torch.Tensor:
            y = layer(inp)
            if lora is not None:
                a, bb = lora[2 * i], lora[2 * i + 1]
                y = y + scale * ((inp @ a.t()) @ bb.t())
            return y

        q = proj(0, self.q, tokens)
        k = proj(1, self.k, tokens)
        v = proj(2, self.v, tokens)
        d = c // self.heads
        q = q.reshape(b, h * w, self.heads, d).transpose(1, 2)
        k = k.reshape(b, h * w, self.heads, d).transpose(1, 2)
        v = v.reshape(b, h * w, self.heads, d).transpose(1, 2)
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(d), dim=-1)
        o = (att @ v).transpose(1, 2).reshape(b, h * w, c)
        o = proj(3, self.out, o)
        return x + o.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        temb = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, temb)
        self.conv_in = nn.Conv2d(cfg.image_channels, ch, 3, padding=1)

        chans = [ch * m for m in cfg.channel_mult]
        self.down_res = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = ch
        for lvl, c in enumerate(chans):
            self.down_res.append(ResBlock(cin, c, temb, cfg.groups, cfg.dropout))
            self.down_attn.append(Attention(c, cfg.groups, cfg.heads) if lvl in cfg.attention_levels else nn.Identity())
            if lvl < len(chans) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            cin = c
        self.mid_res1 = ResBlock(cin, cin, temb, cfg.groups, cfg.dropout)
        self.mid_attn = Attention(cin, cfg.groups, cfg.heads)
        self.mid_res2 = ResBlock(cin, cin, temb, cfg.groups, cfg.dropout)

        self.up_res = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(chans))):
            c = chans[lvl]
            self.up_res.append(ResBlock(cin + c, c, temb, cfg.groups, cfg.dropout))
            self.up_attn.append(Attention(c, cfg.groups, cfg.heads) if lvl in cfg.attention_levels else nn.Identity())
            if lvl > 0:
                self.upsample.append(nn.ConvTranspose2d(c, c, 4, stride=2, padding=1))
            cin = c
        self.norm_out = nn.GroupNorm(cfg.groups, cin)
        self.conv_out = nn.Conv2d(cin, cfg.image_channels, 3, padding=1)

    def attention_blocks(self) -> list[tuple[str, Attention]]:
        """Attention blocks in a fixed order: the LoRA layout of the bundle."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, Attention)]

    def res_blocks(self) -> list[tuple[str, ResBlock]]:
        """ResBlocks in a fixed order: their conv LoRA pairs follow the attention pairs."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, ResBlock)]

    def lora_layout(self) -> list[dict]:
        r = self.cfg.lora_rank
        layout = []
        for name, m in self.attention_blocks():
            for tgt in LORA_TARGETS:
                lin: nn.Linear = getattr(m, tgt)
                layout.append({"name": f"lora.{name}.{tgt}.A", "shape": [r, lin.in_features]})
                layout.append({"name": f"lora.{name}.{tgt}.B", "shape": [lin.out_features, r]})
        if self.cfg.lora_convs:
            for name, m in self.res_blocks():
                for tgt in CONV_TARGETS:
                    cv: nn.Conv2d = getattr(m, tgt)
                    layout.append({"name": f"lora.{name}.{tgt}.A", "shape": [r, cv.in_channels * 9]})
                    layout.append({"name": f"lora.{name}.{tgt}.B", "shape": [cv.out_channels, r]})
        return layout

    def zero_lora(self) -> list[torch.Tensor]:
        return [torch.zeros(e["shape"]) for e in self.lora_layout()]

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, lora: list[torch.Tensor] | None = None) -> torch.Tensor:
        scale = self.cfg.lora_alpha / self.cfg.lora_rank
        per_block = 2 * len(LORA_TARGETS)
        n_attn = len(self.attention_blocks())
        blocks = iter(range(n_attn))
        res_index = {id(m): i for i, (_, m) in enumerate(self.res_blocks())}
        per_res = 2 * len(CONV_TARGETS)

        def attn(m: nn.Module, h: torch.Tensor) -> torch.Tensor:
            if isinstance(m, Attention):
                i = next(blocks)
                sl = None if lora is None else lora[i * per_block : (i + 1) * per_block]
                return m(h, sl, scale)
            return h

        def res(m: ResBlock, h: torch.Tensor) -> torch.Tensor:
            if lora is None or not self.cfg.lora_convs:
                return m(h, emb)
            o = n_attn * per_block + res_index[id(m)] * per_res
            return m(h, emb, lora[o : o + per_res], scale)

        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels).to(x.dtype)) + self.class_emb(c)
        h = self.conv_in(x)
        skips = []
        for lvl, block in enumerate(self.down_res):
            h = attn(self.down_attn[lvl], res(block, h))
            skips.append(h)
            if lvl < len(self.downsample):
                h = self.downsample[lvl](h)
        h = res(self.mid_res2, attn(self.mid_attn, res(self.mid_res1, h)))
        for i, block in enumerate(self.up_res):
            h = attn(self.up_attn[i], res(block, torch.cat([h, skips.pop()], dim=1)))
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.conv_out(F.silu(self.norm_out(h)))
