"""The U-Net of Ronneberger et al. (2015), configurable in depth, width and normalisation.

A contracting path of ``depth`` levels (two 3×3 convolutions each, then 2×2 max
pooling), a symmetric expanding path (2×2 up-convolution, concatenation with the
skip connection of the same level, two 3×3 convolutions) and a 1×1 convolution to
class scores. One difference from the paper, on purpose: convolutions are padded,
so the output has the input's size and tiles need no cropping (the overlap of the
tile grid plays the role of the paper's overlap-tile strategy).

``UNetConfig(depth=5, width=64)`` is the paper's network; the default is sized for a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from geoseg.config import ENCODERS, RESNET_LEVELS
from geoseg.errors import CheckpointError, InputError

NORMS = {
    "instance": lambda ch: nn.InstanceNorm2d(ch, affine=True),
    "batch": nn.BatchNorm2d,
    "none": lambda ch: nn.Identity(),
}


MAX_WIDTH, MAX_BANDS, MAX_CLASSES = 256, 64, 256


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net; stored in every checkpoint so it can be rebuilt.

    in_channels: image bands. classes: output classes (2: background, roof).
    depth: levels of the contracting path (the paper: 5, i.e. 4 poolings).
    width: filters in the first level, doubled at each level down (the paper: 64).
    norm: "batch" (default), "instance" (the original roof project's) or "none".

    Batch normalisation is the default because, in eval mode, it uses statistics fixed
    at training, so a pixel's prediction does not depend on which tile it falls in:
    tiled prediction matches one pass over the whole scene on 99.99 % of pixels
    (``bench/seams.py``). Instance normalisation normalises each tile by its own
    statistics, which made tiled and whole-scene masks differ on 3.5 % of pixels.
    """

    in_channels: int = 3
    classes: int = 2
    depth: int = 4
    width: int = 16
    norm: str = "batch"
    encoder: str = "unet"  # the contracting path: the paper's ("unet"), or a torchvision ResNet's

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise InputError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.encoder not in ENCODERS:
            raise InputError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if self.encoder != "unet" and self.depth != RESNET_LEVELS:
            raise InputError(f"a {self.encoder} encoder has {RESNET_LEVELS} levels, not {self.depth}")
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or not 2 <= self.depth <= 7:
            raise InputError(f"depth {self.depth} out of range; use 2..7 (the paper uses 5)")
        # bounds on what any network here could use, so a crafted checkpoint's absurd width is refused
        # before the allocator is asked for it
        for name, value, lo, hi in (("width", self.width, 1, MAX_WIDTH),
                                    ("in_channels", self.in_channels, 1, MAX_BANDS),
                                    ("classes", self.classes, 2, MAX_CLASSES)):
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise InputError(f"{name} {value!r} out of range; use {lo}..{hi}")

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (one halving per level down)."""
        return 2 ** (self.depth - 1)

    def describe(self) -> str:
        if self.encoder == "unet":
            return f"U-Net depth {self.depth}, width {self.width}, {self.norm} norm"
        if self.encoder.startswith("efficientnet"):
            return f"U-Net with an {self.encoder} encoder, decoder width {self.width}, {self.norm} norm"
        return f"U-Net with a {self.encoder} encoder, decoder width {self.width}, {self.norm} norm"


class DoubleConv(nn.Sequential):
    """(3×3 conv → norm → ReLU) × 2, padded so the size is kept."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        make = NORMS[norm]
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none"),
            make(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none"),
            make(cout),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2×2 max pooling, then a double convolution: one step down the contracting path."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(cin, cout, norm))


class Up(nn.Module):
    """2×2 up-convolution halving the channels, concatenation with the skip, double convolution."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * cout, cout, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net: ``(N, in_channels, H, W)`` float → ``(N, classes, H, W)`` logits.

    H and W must be multiples of ``config.multiple``.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.width * 2**i for i in range(config.depth)]
        self.inc = DoubleConv(config.in_channels, widths[0], config.norm)
        self.downs = nn.ModuleList(Down(a, b, config.norm) for a, b in zip(widths, widths[1:]))
        self.ups = nn.ModuleList(
            Up(a, b, config.norm) for a, b in zip(reversed(widths[1:]), reversed(widths[:-1]))
        )
        self.head = nn.Conv2d(widths[0], config.classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:  # contracting path
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:  # expanding path, each level joined with its skip
            x = up(x, skips.pop())
        return self.head(x)


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
    """A U-Net whose contracting path is EfficientNet-Lite0 or -Lite2 (``efficientnet``),
    ImageNet-pretrained when built with ``pretrained``; the expanding path is the ResNet
    U-Net's (``expanding_path``) over its features at 1/2 … 1/32 (16, 24, 40, 112 and 320
    channels for Lite0). The encoder keeps BatchNorm whatever ``config.norm`` says (its
    weights were trained with it); ``norm`` is the decoder's. Inputs: multiples of 32, in
    the encoder's range (``(x − 127) / 128`` of 8-bit values: ``data.encoder_normalisation``)."""

    def __init__(self, config: UNetConfig, pretrained: bool = False) -> None:
        super().__init__()
        from geoseg.efficientnet import EfficientNetLite, load_pretrained

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
                         " efficientnet-lite encoder, or train it from scratch (--no-pretrained)")
    return net


def config_from_dict(d: dict) -> UNetConfig:
    """Rebuild a config stored in a checkpoint, refusing unknown keys."""
    try:
        return UNetConfig(**d)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint model config does not fit this geoseg ({exc})") from None


def config_to_dict(config: UNetConfig) -> dict:
    return asdict(config)
