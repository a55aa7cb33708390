import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmdc_compiler.surrogate import ResNet, ResNetConfig  # noqa: E402
from tmdc_compiler.unet import UNet, UNetConfig  # noqa: E402

TINY_UNET = UNetConfig(base_channels=8, channel_mult=(1, 2), attention_levels=(1,), groups=4, heads=2, dropout=0.0)
TINY_BATCH = 3


@pytest.fixture(scope="session")
def tiny_unet() -> UNet:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return UNet(TINY_UNET).eval()


@pytest.fixture(scope="session")
def tiny_diffusion_bundle(tiny_unet, tmp_path_factory):
    from tmdc_compiler.build_bundle import build_diffusion

    out = tmp_path_factory.mktemp("bundles") / "tiny-diffusion"
    build_diffusion(tiny_unet, out, "tiny-diffusion", TINY_BATCH, {"command": "pytest fixture", "seed": 0})
    return out


@pytest.fixture(scope="session")
def tiny_resnet() -> ResNet:
    torch.manual_seed(1)
    m = ResNet(ResNetConfig(depth=8, width=4))
    # Non-trivial BatchNorm statistics so the eval-mode graph is really exercised.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="session")
def tiny_surrogate_bundle(tiny_resnet, tmp_path_factory):
    from tmdc_compiler.build_bundle import build_surrogate

    out = tmp_path_factory.mktemp("bundles") / "tiny-surrogate"
    build_surrogate(tiny_resnet, out, TINY_BATCH, {"command": "pytest fixture", "seed": 0})
    return out
