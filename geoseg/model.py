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

from geoseg.errors import CheckpointError, InputError

NORMS = {
    "instance": lambda ch: nn.InstanceNorm2d(ch, affine=True),
    "batch": nn.BatchNorm2d,
    "none": lambda ch: nn.Identity(),
}


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

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise InputError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if not 2 <= self.depth <= 7:
            raise InputError(f"depth {self.depth} out of range; use 2..7 (the paper uses 5)")
        if self.width < 1 or self.in_channels < 1 or self.classes < 2:
            raise InputError("width and in_channels must be >= 1 and classes >= 2")

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (one halving per pooling)."""
        return 2 ** (self.depth - 1)


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


def config_from_dict(d: dict) -> UNetConfig:
    """Rebuild a config stored in a checkpoint, refusing unknown keys."""
    try:
        return UNetConfig(**d)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint model config does not fit this geoseg ({exc})") from None


def config_to_dict(config: UNetConfig) -> dict:
    return asdict(config)
