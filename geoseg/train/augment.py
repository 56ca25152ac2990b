"""Augmentation with ``torchvision.transforms.v2``: image, mask and their companions move together.

The image is a ``tv_tensors.Image`` (float, about [0, 1]); the label, the valid-pixel
map and the loss weights are ``tv_tensors.Mask``, so v2 applies the same flips and
rotation to all of them, with nearest-neighbour sampling for the masks. Rotation fills
the corners it brings in with 0 in the valid map, so those pixels never reach the loss.
Colour jitter and blur touch the image only (v2 passes masks through them untouched).
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class BandJitter(v2.Transform):
    """Random gain and offset per band, on images only: brightness jitter for any band count."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, gain: float = 0.2, offset: float = 0.05) -> None:
        super().__init__()
        self.gain, self.offset = gain, offset

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        bands = next(x.shape[-3] for x in flat_inputs if isinstance(x, tv_tensors.Image))
        return {"gain": 1 + (torch.rand(bands, 1, 1) * 2 - 1) * self.gain,
                "offset": (torch.rand(bands, 1, 1) * 2 - 1) * self.offset}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return tv_tensors.wrap(inpt * params["gain"] + params["offset"], like=inpt)


class QuarterTurn(v2.Transform):
    """A random turn by 0, 90, 180 or 270° of the image and its masks alike (no interpolation,
    no corners brought in)."""

    _transformed_types = (tv_tensors.Image, tv_tensors.Mask)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": int(torch.randint(0, 4, ()))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return tv_tensors.wrap(torch.rot90(inpt, params["k"], dims=(-2, -1)), like=inpt)


ROTATIONS = ("any", "quarter")  # rotation 0–360° (bilinear), or quarter turns only


def train_transform(in_channels: int, photometric: bool = True, rotation: str = "any") -> v2.Compose:
    """Flips, rotation (``rotation``: 0–360°, or quarter turns), and (optionally) photometric
    jitter on the image only."""
    turn = (QuarterTurn() if rotation == "quarter" else
            v2.RandomRotation(degrees=(0.0, 360.0), interpolation=v2.InterpolationMode.BILINEAR, fill=0))
    steps: list = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), turn]
    if photometric:
        if in_channels == 3:
            steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
        else:  # torchvision's colour operations take 1 or 3 bands; gain and offset take any
            steps.append(BandJitter(gain=0.2, offset=0.05))
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.2))], p=0.25))
    return v2.Compose(steps)
