"""Band normalisation: the per-band shift and gain a model was trained with (``Normalisation``,
stored in its checkpoint), measured from training pixels, or (``stretch``) the 1st–99th
percentiles mapped onto the 8-bit range an ImageNet encoder knows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoseg.config import STRETCH_PERCENTILES
from geoseg.errors import InputError

STRETCH_SAMPLE = 1 << 21  # pixels per band the percentiles are taken from (a random subset beyond it)


def normalisation_of(pixels, bands: int, scale: float, when_empty: str, stretch: bool = False) -> Normalisation:
    """The normalisation of ``pixels``, an iterable of ``(bands, n)`` arrays (scaled values).

    Without ``stretch``: per-band mean and standard deviation, accumulated in float64 (a band
    of one value gets a std of 1). With ``stretch``, the input a pretrained encoder expects,
    ``(v − 127) / 128`` of 8-bit values ``v``: 8-bit imagery as it is; any other (16-bit,
    float) with each band's ``STRETCH_PERCENTILES`` mapped onto 0 … 255 (robust to a few
    saturated or dead pixels), so a 12-bit satellite band and an 8-bit photo reach the
    encoder alike. ``when_empty``: the ``InputError`` message when there is no pixel at all."""
    if stretch:
        return _stretch_of(pixels, bands, scale, when_empty)
    total, sq, n = np.zeros(bands), np.zeros(bands), 0
    for x in pixels:
        x = x.astype(np.float64)
        total += x.sum(1)
        sq += (x * x).sum(1)
        n += x.shape[1]
    if n == 0:
        raise InputError(when_empty)
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    return Normalisation(scale=float(scale), mean=tuple(mean.tolist()), std=tuple(std.tolist()))


def _stretch_of(pixels, bands: int, scale: float, when_empty: str) -> Normalisation:
    from geoseg.datasets.normalisation import IMAGENET_MEAN, IMAGENET_STD

    if scale == 255.0:  # 8-bit: the encoder's own input, (x − 127) / 128
        if not any(x.shape[1] for x in pixels):
            raise InputError(when_empty)
        return Normalisation(scale=255.0, mean=(IMAGENET_MEAN / 255,) * bands, std=(IMAGENET_STD / 255,) * bands)
    chunks = [x for x in pixels if x.shape[1]]
    if not chunks:
        raise InputError(when_empty)
    x = np.concatenate(chunks, axis=1)
    if x.shape[1] > STRETCH_SAMPLE:
        x = x[:, np.random.default_rng(0).choice(x.shape[1], STRETCH_SAMPLE, replace=False)]
    lo, hi = np.percentile(x.astype(np.float64), STRETCH_PERCENTILES, axis=1)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)  # a flat band: any span, it carries nothing
    # v = (x − lo) / span · 255, and the encoder's (v − 127) / 128 as (x − mean) / std
    mean = lo + span * IMAGENET_MEAN / 255
    std = span * IMAGENET_STD / 255
    return Normalisation(scale=float(scale), mean=tuple(mean.tolist()), std=tuple(std.tolist()))


@dataclass(frozen=True)
class Normalisation:
    """x_model = (x_raw / scale − mean) / std, per band."""

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]


IMAGENET_MEAN, IMAGENET_STD = 127.0, 128.0  # the pretrained input: (x − 127) / 128 of 8-bit values
