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
    # The output at a pixel depends on the input at that very pixel: the top skip connection
    # brings full-resolution features to the last layers. (Seeded, with a random input, so
    # that no ReLU on the way happens to be shut by the draw of the weights.)
    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=1, depth=3, width=4, norm="none")).eval()
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    model(x)[0, 1, 8, 8].backward()
    assert x.grad[0, 0, 8, 8] != 0


@pytest.mark.parametrize("kwargs", [{"norm": "group"}, {"depth": 1}, {"classes": 1}])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(InputError):
        UNetConfig(**kwargs)


def test_folding_batchnorm_keeps_the_output():
    model = UNet(UNetConfig(in_channels=3, depth=3, width=8, norm="batch"))
    model.train()
    for _ in range(3):  # give the running statistics something other than 0/1
        model(torch.randn(4, 3, 32, 32) * 3 + 1)
    model.eval()
    x = torch.randn(2, 3, 32, 32) * 3 + 1
    with torch.no_grad():
        before = model(x)
        from geoseg.model import fuse_for_inference

        after = fuse_for_inference(model)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4)
