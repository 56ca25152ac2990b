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

import copy
import functools
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


def fuse_for_inference(model: UNet, onednn: bool = True) -> UNet:
    """Fold each eval-mode BatchNorm into the convolution before it (exact up to rounding),
    and with ``onednn`` join each convolution to its ReLU (``ConvReLU``).

    Saves a pass over every activation map at inference; the model is put in eval mode.
    Instance normalisation depends on each input's statistics and cannot be folded.
    ``onednn=False`` keeps plain operations only (for ONNX export).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for block in model.modules():
        if isinstance(block, DoubleConv):
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()
            for i in range(len(block) - 2):
                if (onednn and isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.Identity)
                        and isinstance(block[i + 2], nn.ReLU)):
                    block[i], block[i + 2] = ConvReLU(block[i]), nn.Identity()
    return model


class ConvReLU(nn.Module):
    """A convolution and the ReLU after it, for inference.

    On the CPU (float32 or bfloat16, no gradient) both run as one oneDNN call that applies
    the ReLU as it writes the convolution's output: one pass less over every activation
    map, about a fifth of this U-Net's forward pass in bfloat16. Anywhere else (CUDA,
    gradients, tracing for export, a torch without the call) the two plain operations.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self._cast: dict = {}  # dtype → (weight, bias) in it, made at first use

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        if (x.device.type != "cpu" or torch.is_grad_enabled() or torch.jit.is_tracing()
                or torch.onnx.is_in_onnx_export() or not onednn_pointwise(dtype)):
            return torch.relu(self.conv(x))
        c = self.conv
        key = (dtype, c.weight.data_ptr(), c.weight._version)
        if key not in self._cast:
            bias = c.bias if c.bias is not None else torch.zeros(c.out_channels)
            self._cast = {key: (c.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last),
                                bias.detach().to(dtype))}
        weight, bias = self._cast[key]
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(dtype), weight, bias, list(c.padding), list(c.stride), list(c.dilation), c.groups,
            "relu", [None], "")


class CompiledModel:
    """A U-Net compiled by ``torch.compile`` for inference, weights frozen as constants
    (inductor's ``freezing``: BatchNorm folded, convolution weights pre-packed, each ReLU
    and concatenation written by the convolution before it). Call it like the model,
    under ``torch.no_grad()``.

    It compiles at the first call and at each new tile shape: about 13 s on 2 cores the
    first time, 3 s once inductor's cache on disk (``TORCHINDUCTOR_CACHE_DIR``, by
    default under the system's temporary folder) holds it; then the forward pass is
    about 1.2× faster than ``fuse_for_inference``'s (``bench/compile.py``). Where it
    cannot compile (no C++ compiler, a device inductor does not support) it says so once
    and runs ``fallback`` instead.
    """

    def __init__(self, model: UNet, fallback: nn.Module) -> None:
        import logging

        # a CUDA build of torch on a machine without a GPU logs this as it compiles for the CPU
        logging.getLogger("torch.utils.cpp_extension").addFilter(_NoCudaRuntimeNote())
        self.compiled = torch.compile(model, dynamic=False)
        self.fallback = fallback
        self.failed = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.failed:
            return self.fallback(x)
        import torch._inductor.config as inductor_config

        try:
            with inductor_config.patch(freezing=True):
                return self.compiled(x)
        except Exception as exc:  # a compiler missing or failing: the plain model gives the same output
            import warnings

            from geoseg.errors import GeosegWarning

            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            warnings.warn(f"torch.compile failed ({reason}); running the model uncompiled", GeosegWarning,
                          stacklevel=2)
            self.failed = True
            return self.fallback(x)


class _NoCudaRuntimeNote:
    """Drops torch's "No CUDA runtime is found" note, which says nothing to a CPU user."""

    def filter(self, record) -> bool:
        return not record.getMessage().startswith("No CUDA runtime is found")

    def __eq__(self, other) -> bool:  # logging adds a filter only once when an equal one is there
        return isinstance(other, _NoCudaRuntimeNote)

    def __hash__(self) -> int:
        return hash(_NoCudaRuntimeNote)


def compile_for_inference(model: UNet) -> CompiledModel:
    """``CompiledModel`` of ``model``, channels-last: the model is compiled with plain
    operations for inductor to fuse; a copy fused by ``fuse_for_inference`` is the fallback."""
    fallback = fuse_for_inference(copy.deepcopy(model)).to(memory_format=torch.channels_last)
    return CompiledModel(fuse_for_inference(model, onednn=False).to(memory_format=torch.channels_last), fallback)


@functools.cache
def onednn_pointwise(dtype: torch.dtype) -> bool:
    """Whether this torch and CPU run oneDNN's convolution with a ReLU in ``dtype``, and
    agree with the plain operations on a small probe."""
    if dtype not in (torch.float32, torch.bfloat16) or not torch.backends.mkldnn.is_available():
        return False
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(s, generator=g).to(dtype) for s in ((1, 4, 9, 9), (8, 4, 3, 3), (8,)))
    with torch.no_grad(), torch.autocast("cpu", enabled=False):  # the probe may run inside autocast
        try:
            got = torch.ops.mkldnn._convolution_pointwise(x, w, b, [1, 1], [1, 1], [1, 1], 1, "relu", [None], "")
        except (AttributeError, RuntimeError):
            return False
        want = torch.relu(nn.functional.conv2d(x.float(), w.float(), b.float(), padding=1))
    return bool(torch.allclose(got.float(), want, atol=0.1 if dtype == torch.bfloat16 else 1e-4))


def config_from_dict(d: dict) -> UNetConfig:
    """Rebuild a config stored in a checkpoint, refusing unknown keys."""
    try:
        return UNetConfig(**d)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint model config does not fit this geoseg ({exc})") from None


def config_to_dict(config: UNetConfig) -> dict:
    return asdict(config)
