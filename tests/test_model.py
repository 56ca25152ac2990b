import pytest
import torch

from geoseg.errors import InputError
from geoseg.model import UNet, UNetConfig


@pytest.mark.parametrize("depth,width,norm", [(2, 4, "instance"), (3, 8, "batch"), (5, 4, "none")])
def test_output_has_the_input_size_and_one_score_per_class(depth, width, norm):
    cfg = UNetConfig(in_channels=4, depth=depth, width=width, norm=norm)
    model = UNet(cfg).eval()
    x = torch.randn(2, 4, 2 * cfg.multiple, 3 * cfg.multiple)
    assert model(x).shape == (2, 2, 2 * cfg.multiple, 3 * cfg.multiple)


def test_paper_sized_unet_has_the_known_parameter_count():
    # Ronneberger et al.: 5 levels, 64 → 1024 filters, transposed convolutions up: about 31 M weights.
    n = sum(p.numel() for p in UNet(UNetConfig(depth=5, width=64, norm="batch")).parameters())
    assert 30.9e6 < n < 31.2e6


def test_skip_connections_carry_fine_detail():
    # A U-Net whose bottom path is cut still depends on every input pixel through the top skip.
    model = UNet(UNetConfig(in_channels=1, depth=3, width=4, norm="none")).eval()
    x = torch.zeros(1, 1, 16, 16, requires_grad=True)
    model(x)[0, 1, 8, 8].backward()
    assert x.grad[0, 0, 8, 8] != 0


@pytest.mark.parametrize("kwargs", [{"norm": "group"}, {"depth": 1}, {"classes": 1}])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(InputError):
        UNetConfig(**kwargs)
