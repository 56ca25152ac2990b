"""The one place a network is made from its ``UNetConfig`` (``create_model``) and a config is
turned to and from the plain dict a checkpoint stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from torch import nn

from geoseg.config import ENCODERS
from geoseg.errors import CheckpointError, InputError
from geoseg.models.encoders import LiteUNet, ResNetUNet
from geoseg.models.unet import UNet, UNetConfig

# encoder name (``UNetConfig.encoder``; a prefix for families) → the U-Net built on it, and whether geoseg
# holds ImageNet weights for it (from an installed package: ``models.efficientnet``)
ARCHITECTURES: dict[str, tuple[Callable[[UNetConfig, bool], nn.Module], bool]] = {
    "unet": (lambda config, pretrained: UNet(config), False),
    "resnet": (lambda config, pretrained: ResNetUNet(config), False),
    "efficientnet-lite": (LiteUNet, True),
}


def create_model(config: UNetConfig, pretrained: bool = False) -> nn.Module:
    """The network a config describes: the plain U-Net, the ResNet-encoder one or the
    EfficientNet-Lite one (``ARCHITECTURES``); ``pretrained``: the encoder starts from its
    ImageNet weights (an EfficientNet-Lite's only; the others have none here)."""
    family = next((k for k in ARCHITECTURES if config.encoder.startswith(k)), None)
    if family is None:
        raise InputError(f"unknown encoder {config.encoder!r}; choose one of {', '.join(ENCODERS)}")
    build, has_weights = ARCHITECTURES[family]
    if pretrained and not has_weights:
        raise InputError(f"the {config.encoder} encoder has no pretrained weights in geoseg; choose an"
                         " efficientnet-lite encoder, or train it from scratch (`no_pretrained`)")
    return build(config, pretrained)


def config_from_dict(d: dict) -> UNetConfig:
    """Rebuild a config stored in a checkpoint, refusing unknown keys."""
    try:
        return UNetConfig(**d)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint model config does not fit this geoseg ({exc})") from None


def config_to_dict(config: UNetConfig) -> dict:
    """The plain dict a checkpoint stores."""
    return asdict(config)
