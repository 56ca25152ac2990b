"""The one place a network is made from its ``UNetConfig`` (``create_model``) and a config is
turned to and from the plain dict a checkpoint stores."""

from __future__ import annotations

from dataclasses import asdict

from torch import nn

from geoseg.errors import CheckpointError, InputError
from geoseg.models.encoders import LiteUNet, ResNetUNet
from geoseg.models.unet import UNet, UNetConfig


def make_network(config: UNetConfig, pretrained: bool = False) -> nn.Module:
    """The network a config describes: the plain U-Net, the ResNet-encoder one or the
    EfficientNet-Lite one; ``pretrained``: the encoder starts from its ImageNet weights (an
    EfficientNet-Lite's only; the others have none here)."""
    if config.encoder == "unet":
        net = UNet(config)
    elif config.encoder.startswith("resnet"):
        net = ResNetUNet(config)
    else:
        return LiteUNet(config, pretrained)
    if pretrained:
        raise InputError(f"the {config.encoder} encoder has no pretrained weights in geoseg; choose an"
                         " efficientnet-lite encoder, or train it from scratch (`no_pretrained`)")
    return net


def config_from_dict(d: dict) -> UNetConfig:
    """Rebuild a config stored in a checkpoint, refusing unknown keys."""
    try:
        return UNetConfig(**d)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint model config does not fit this geoseg ({exc})") from None


def config_to_dict(config: UNetConfig) -> dict:
    return asdict(config)
