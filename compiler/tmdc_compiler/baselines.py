"""The paper's comparison architectures, sized for Fashion-MNIST on two CPU cores and named by their
real size: a Wide ResNet (Zagoruyko & Komodakis, depth 6n+4, widen factor k) and a small Vision
Transformer (patches of p×p pixels, pre-norm blocks, a class token). The paper's ResNet50,
WideResNet50 and ViT-B/16 are CIFAR/ImageNet models two to three orders of magnitude larger.

Like the surrogate ResNet (surrogate.py), each takes 1×28×28 images in [0, 1] and normalises
inside, so attacks perturb and differentiate the [0, 1] image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .surrogate import FMNIST_MEAN, FMNIST_STD, ResNet, ResNetConfig


@dataclass(frozen=True)
class WRNConfig:
    depth: int = 10  # 6n + 4
    widen: int = 2
    num_classes: int = 10
    image_channels: int = 1

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def name(self) -> str:
        return f"wrn{self.depth}-{self.widen}-fmnist"


class WideBlock(nn.Module):
    """Pre-activation wide basic block (BN-ReLU-conv, twice)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        h = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return h + (self.short(o) if self.short is not None else x)


class WideResNet(nn.Module):
    def __init__(self, cfg: WRNConfig):
        super().__init__()
        if (cfg.depth - 4) % 6 != 0:
            raise ValueError("depth must be 6n+4")
        n = (cfg.depth - 4) // 6
        self.cfg = cfg
        widths = [16, 16 * cfg.widen, 32 * cfg.widen, 64 * cfg.widen]
        self.stem = nn.Conv2d(cfg.image_channels, widths[0], 3, 1, 1, bias=False)
        layers, cin = [], widths[0]
        for stage, cout in enumerate(widths[1:]):
            for i in range(n):
                layers.append(WideBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, cfg.num_classes)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.layers(self.stem((x01 - FMNIST_MEAN) / FMNIST_STD))))
        return self.fc(h.mean(dim=(2, 3)))


@dataclass(frozen=True)
class ViTConfig:
    patch: int = 4
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp: int = 128
    num_classes: int = 10
    image_channels: int = 1
    image_size: int = 28

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def name(self) -> str:
        return f"vit-p{self.patch}-d{self.dim}-l{self.depth}-fmnist"


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        # explicit softmax attention (no fused kernel): it exports and differentiates everywhere
        a = torch.softmax((q @ k.transpose(-2, -1)) * (d // h) ** -0.5, dim=-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        if cfg.image_size % cfg.patch != 0:
            raise ValueError("the patch size must divide the image size")
        self.cfg = cfg
        tokens = (cfg.image_size // cfg.patch) ** 2
        self.embed = nn.Conv2d(cfg.image_channels, cfg.dim, cfg.patch, cfg.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, cfg.dim) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(cfg.dim, cfg.heads, cfg.mlp) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.dim)
        self.fc = nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        h = self.embed((x01 - FMNIST_MEAN) / FMNIST_STD).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.pos  # shape[0]: a dynamic batch
        return self.fc(self.norm(self.blocks(h))[:, 0])


ARCHITECTURES = {
    "resnet": (ResNet, ResNetConfig),
    "wrn": (WideResNet, WRNConfig),
    "vit": (ViT, ViTConfig),
}


def build(arch: str, config: dict) -> nn.Module:
    model_cls, cfg_cls = ARCHITECTURES[arch]
    return model_cls(cfg_cls(**config))
