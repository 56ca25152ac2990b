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

from dataclasses import dataclass

import torch
from torch import nn

from geoseg.config import ENCODERS, RESNET_LEVELS
from geoseg.errors import InputError

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
