"""U-Nets on an encoder: the expanding path shared by all of them, on torchvision's ResNet-18/34
(``ResNetUNet``) or on EfficientNet-Lite0/2 (``LiteUNet``, the default, ImageNet-pretrained)."""

from __future__ import annotations

import torch
from torch import nn

from geoseg.config import RESNET_LEVELS
from geoseg.models.unet import NORMS, DoubleConv, UNetConfig


class Upsample(nn.Module):
    """Double the size (nearest neighbour), join the skip of that level, double convolution."""

    def __init__(self, cin: int, skip: int, cout: int, norm: str) -> None:
        super().__init__()
        self.conv = DoubleConv(cin + skip, cout, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x if skip is None else torch.cat([x, skip], dim=1))


def expanding_path(bottom: int, skips: tuple[int, ...], config: UNetConfig) -> tuple[nn.ModuleList, nn.Conv2d]:
    """The expanding path over an encoder's features: five ``Upsample`` steps from the 1/32
    feature (``bottom`` channels) joining the 1/16 … 1/2 features (``skips`` channels), each
    step half as wide (``config.width`` at the input's size), and a 3×3 head to class scores.

    He et al. (2015) for the ReLU convolutions and Glorot for the head, as an encoder's own
    are He's: with torch's default (smaller) start the ResNet U-Net trained to a higher loss
    and a lower held-out IoU on the reference tiles."""
    widths = [config.width * 2**i for i in reversed(range(RESNET_LEVELS - 1))]
    ups = nn.ModuleList(Upsample(cin, skip, cout, config.norm) for cin, skip, cout in
                        zip([bottom, *widths[:-1]], [*skips, 0], widths))
    head = nn.Conv2d(widths[-1], config.classes, kernel_size=3, padding=1)
    for m in ups.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return ups, head


class ResNetUNet(nn.Module):
    """A U-Net whose contracting path is torchvision's ResNet-18 or -34 (random weights).

    The ResNet's stem (7×7 convolution at stride 2) and its four stages give features at
    1/2, 1/4, 1/8, 1/16 and 1/32 of the input; the expanding path doubles the size five
    times, joining the feature of each level (the encoder–decoder of the SpaceNet winners'
    and segmentation-models-pytorch's U-Nets). Most of its work is at low resolution, where
    wide convolutions are cheap, so on the reference roof tiles it learns far more per
    training step than the plain U-Net (README, Figures). ``width`` is the decoder's
    narrowest level (16: 256, 128, 64, 32, 16 filters up the path); inputs must be multiples
    of 32 (``UNetConfig.multiple``)."""

    SKIPS = (256, 128, 64, 64)  # channels of the 1/16, 1/8, 1/4 and 1/2 features (ResNet-18/34)

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        from torchvision.models import resnet18, resnet34

        self.config = config
        net = {"resnet18": resnet18, "resnet34": resnet34}[config.encoder](weights=None, norm_layer=NORMS[config.norm])
        if config.in_channels != 3:
            net.conv1 = nn.Conv2d(config.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.ups, self.head = expanding_path(512, self.SKIPS, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        x = self.pool(skips[0])
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        x = skips.pop()  # 1/32: the bottom of the U
        for up in self.ups:
            x = up(x, skips.pop() if skips else None)
        return self.head(x)


class LiteUNet(nn.Module):
    """A U-Net whose contracting path is EfficientNet-Lite0 or -Lite2 (``models.efficientnet``),
    ImageNet-pretrained when built with ``pretrained``; the expanding path is the ResNet
    U-Net's (``expanding_path``) over its features at 1/2 … 1/32 (16, 24, 40, 112 and 320
    channels for Lite0). The encoder keeps BatchNorm whatever ``config.norm`` says (its
    weights were trained with it); ``norm`` is the decoder's. Inputs: multiples of 32, in
    the encoder's range (``(x − 127) / 128`` of 8-bit values: ``datasets.normalisation.normalisation_of``)."""

    def __init__(self, config: UNetConfig, pretrained: bool = False) -> None:
        super().__init__()
        from geoseg.models.efficientnet import EfficientNetLite, load_pretrained

        self.config = config
        self.encoder = EfficientNetLite(config.encoder, config.in_channels)
        if pretrained:
            load_pretrained(self.encoder)
        *skips, bottom = self.encoder.channels
        self.ups, self.head = expanding_path(bottom, tuple(reversed(skips)), config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self.encoder.features(x)
        x = skips.pop()  # 1/32: the bottom of the U
        for up in self.ups:
            x = up(x, skips.pop() if skips else None)
        return self.head(x)
