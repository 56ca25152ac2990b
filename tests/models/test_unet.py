import pytest
import torch

from geoseg.errors import InputError
from geoseg.models.encoders import ResNetUNet
from geoseg.models.registry import config_from_dict, create_model
from geoseg.models.unet import UNet, UNetConfig


@pytest.mark.parametrize("depth,width,norm", [(2, 4, "instance"), (3, 8, "batch"), (5, 4, "none")])
def test_output_has_the_input_size_and_one_score_per_class(depth, width, norm):
    cfg = UNetConfig(in_channels=4, depth=depth, width=width, norm=norm)
    model = UNet(cfg).eval()
    x = torch.randn(2, 4, 2 * cfg.multiple, 3 * cfg.multiple)
    assert model(x).shape == (2, 2, 2 * cfg.multiple, 3 * cfg.multiple)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_convolutions_joined_to_their_relu_give_the_plain_models_output(norm):
    import copy

    from geoseg.models.inference import ConvReLU, fuse_for_inference, onednn_pointwise

    if not onednn_pointwise(torch.float32):
        pytest.skip("this torch or CPU has no oneDNN convolution with a ReLU: the plain path is used")
    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=3, depth=3, width=8, norm=norm))
    model.train()
    for _ in range(3):
        model(torch.randn(4, 3, 32, 32) * 3 + 1)
    plain = fuse_for_inference(copy.deepcopy(model), onednn=False).to(memory_format=torch.channels_last)
    joined = fuse_for_inference(model).to(memory_format=torch.channels_last)
    assert sum(isinstance(m, ConvReLU) for m in joined.modules()) == 10  # 2 per double convolution
    assert not any(isinstance(m, ConvReLU) for m in plain.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in joined.modules())
    x = (torch.randn(2, 3, 64, 48) * 3 + 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(joined(x), plain(x), atol=1e-4)
        if onednn_pointwise(torch.bfloat16):
            with torch.autocast("cpu", torch.bfloat16):
                a, b = joined(x), plain(x)
            assert a.dtype == b.dtype == torch.bfloat16
            assert (a.float() - b.float()).abs().max() <= 0.02 * b.float().abs().max()
    # with gradients (training, or a user's fine-tuning) the plain operations run, and backpropagate
    out = joined(x)
    out.sum().backward()
    assert joined.head.weight.grad is not None


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


@pytest.mark.parametrize("kwargs", [{"norm": "group"}, {"depth": 1}, {"classes": 1}, {"encoder": "vgg16"},
                                    {"encoder": "resnet18", "depth": 4}])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(InputError):
        UNetConfig(**kwargs)


@pytest.mark.parametrize("cfg,side", [(UNetConfig(depth=3, width=8), 32),
                                      (UNetConfig(depth=6, width=4, encoder="resnet18"), 64),
                                      (UNetConfig(depth=6, width=4, encoder="efficientnet-lite0"), 64)])
def test_folding_batchnorm_keeps_the_output(cfg, side):
    """Into each convolution: the plain U-Net's, a ResNet encoder's blocks, stem and shortcuts, and an
    EfficientNet-Lite's padded convolutions."""
    from geoseg.models.inference import fuse_for_inference

    model = create_model(cfg).train()
    for _ in range(3):  # give the running statistics something other than 0/1
        model(torch.randn(4, 3, side, side) * 3 + 1)
    model.eval()
    x = torch.randn(2, 3, side, side) * 3 + 1
    with torch.no_grad():
        before = model(x)
        after = fuse_for_inference(model)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4 * max(1.0, before.abs().max().item()))


@pytest.mark.parametrize("encoder,bands,norm", [("resnet18", 3, "batch"), ("resnet34", 4, "instance"),
                                                ("resnet18", 1, "none")])
def test_a_resnet_encoder_gives_one_score_per_class_at_the_input_size(encoder, bands, norm):
    cfg = UNetConfig(in_channels=bands, depth=6, width=4, norm=norm, encoder=encoder)
    model = create_model(cfg).eval()
    assert isinstance(model, ResNetUNet) and cfg.multiple == 32
    with torch.no_grad():
        assert model(torch.rand(2, bands, 64, 96)).shape == (2, 2, 64, 96)


def test_the_resnet_unet_is_smp_sized():
    """ResNet-34 encoder, decoder 256…16, 3×3 head: the size of segmentation-models-pytorch's
    Unet("resnet34"), 24 436 514 parameters."""
    n = sum(p.numel() for p in create_model(UNetConfig(depth=6, encoder="resnet34")).parameters())
    assert n == 24_436_514


def test_the_resnet_unet_sees_fine_detail_through_its_skips():
    model = create_model(UNetConfig(in_channels=1, depth=6, width=4, norm="none", encoder="resnet18")).eval()
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    model(x)[0, 1, 33, 33].backward()
    assert x.grad[0, 0, 33, 33] != 0 and x.grad[0, 0, 0, 0] != 0  # its own pixel, and the context at 1/32


def test_checkpoints_from_before_encoders_are_plain_unets():
    cfg = config_from_dict({"in_channels": 3, "classes": 2, "depth": 4, "width": 16, "norm": "batch"})
    assert cfg.encoder == "unet" and isinstance(create_model(cfg), UNet)


@pytest.mark.parametrize("bands", [1, 3, 5])
def test_the_efficientnet_unet_takes_any_bands_and_old_networks_still_build(bands):
    from geoseg.models.encoders import LiteUNet

    cfg = UNetConfig(in_channels=bands, depth=6, width=16, encoder="efficientnet-lite0")
    model = create_model(cfg, pretrained=True).eval()
    assert isinstance(model, LiteUNet) and cfg.multiple == 32
    assert 5.0e6 < sum(p.numel() for p in model.parameters()) < 5.5e6  # Lite0's 3.4 M and the decoder
    with torch.no_grad():
        assert model(torch.rand(2, bands, 64, 96)).shape == (2, 2, 64, 96)
    with pytest.raises(InputError, match="no pretrained weights"):
        create_model(UNetConfig(depth=6, encoder="resnet34"), pretrained=True)
