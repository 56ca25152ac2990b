"""Inference machinery beside the U-Net: BatchNorm folded into the convolutions, each
convolution joined to its ReLU in one oneDNN call on the CPU, and ``torch.compile`` with
a fallback to the plain model where it cannot compile. The architecture itself is ``model``.
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from geoseg.models.unet import DoubleConv


def fuse_for_inference(model: nn.Module, onednn: bool = True) -> nn.Module:
    """Fold each eval-mode BatchNorm into the convolution before it (exact up to rounding),
    and with ``onednn`` join each convolution to its ReLU (``ConvReLU``).

    Saves a pass over every activation map at inference; the model is put in eval mode.
    Instance normalisation depends on each input's statistics and cannot be folded.
    ``onednn=False`` keeps plain operations only (for ONNX export).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for block in model.modules():
        if isinstance(block, nn.Sequential):  # DoubleConv, and a ResNet encoder's stem and shortcuts
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()
        for conv, norm in (("conv1", "bn1"), ("conv2", "bn2")):  # the blocks of a ResNet encoder
            if isinstance(getattr(block, conv, None), nn.Conv2d) and isinstance(getattr(block, norm, None),
                                                                                nn.BatchNorm2d):
                setattr(block, conv, fuse_conv_bn_eval(getattr(block, conv), getattr(block, norm)))
                setattr(block, norm, nn.Identity())
        if isinstance(block, DoubleConv):
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

    def __init__(self, model: nn.Module, fallback: nn.Module) -> None:
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

            from geoseg.errors import GeosegWarning, first_line

            warnings.warn(f"torch.compile failed ({first_line(exc)}); running the model uncompiled", GeosegWarning,
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


def compile_for_inference(model: nn.Module) -> CompiledModel:
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
