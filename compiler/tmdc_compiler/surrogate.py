"""CIFAR-style ResNet (depth 6n+2) for 1x28x28 inputs in [0, 1]: the transfer-attack surrogate.

The paper attacks with a ResNet50 on CIFAR-10; on two CPU cores we train a much
smaller one and name it by its real depth (e.g. `resnet14-fmnist`). Normalisation
lives inside the model, so attacks see logits of the [0, 1] image (spec §0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530


@dataclass(frozen=True)
class ResNetConfig:
    depth: int = 14  # 6n + 2
    width: int = 16
    num_classes: int = 10
    image_channels: int = 1

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def name(self) -> str:
        return f"resnet{self.depth}-fmnist"


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        if (cfg.depth - 2) % 6 != 0:
            raise ValueError("depth must be 6n+2")
        n = (cfg.depth - 2) // 6
        w = cfg.width
        self.cfg = cfg
        self.stem = nn.Sequential(nn.Conv2d(cfg.image_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers = []
        cin = w
        for stage, cout in enumerate((w, 2 * w, 4 * w)):
            for i in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, cfg.num_classes)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        h = self.layers(self.stem((x01 - FMNIST_MEAN) / FMNIST_STD))
        return self.fc(h.mean(dim=(2, 3)))
