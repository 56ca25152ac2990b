"""Segmentation losses in a name table, and the U-Net paper's weight map.

Every loss takes ``logits`` ``(N, C, H, W)``, ``target`` long ``(N, H, W)`` in
``0..C-1``, ``valid`` float ``(N, H, W)`` (0 where a pixel must not count: the
corners a rotation brought in, padding) and ``weight`` float ``(N, H, W)`` (the
paper's pixel weights; ones when a loss does not use them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from geoseg.errors import InputError

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def dice_loss(logits, target, valid, weight):  # noqa: ARG001 - weight unused by design
    """1 − soft Dice of the roof class over the batch (empty masks are fine)."""
    prob = logits.float().softmax(dim=1)[:, 1]
    t = (target == 1).float()
    inter = (prob * t * valid).sum()
    denom = (prob * valid).sum() + (t * valid).sum()
    return 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)


def softmax_loss(logits, target, valid, weight):  # noqa: ARG001
    """Plain softmax cross-entropy, averaged over valid pixels."""
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    return (ce * valid).sum() / valid.sum().clamp_min(1.0)


def pixel_softmax_loss(logits, target, valid, weight):
    """The paper's pixel-wise softmax cross-entropy, weighted by ``unet_weight_map``."""
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    w = weight * valid
    return (ce * w).sum() / w.sum().clamp_min(1.0)


def dice_ce_loss(logits, target, valid, weight):
    """Dice plus plain cross-entropy, the common choice when objects are small."""
    return dice_loss(logits, target, valid, weight) + softmax_loss(logits, target, valid, weight)


LOSSES: dict[str, Loss] = {
    "dice": dice_loss,
    "pixel-softmax": pixel_softmax_loss,
    "softmax": softmax_loss,
    "dice+ce": dice_ce_loss,
}

# Losses that need the weight map computed from each mask (once, before augmentation).
NEEDS_WEIGHT_MAP = {"pixel-softmax"}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise InputError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


def unet_weight_map(mask: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """Pixel weights of the U-Net paper for a 0/1 mask ``(H, W)``, float32 ``(H, W)``.

    w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / 2σ²), where w_c balances the class
    frequencies (mean weight 1 for a balanced image) and d1, d2 are the distances in
    pixels to the nearest and second-nearest roof. The second term is put on background
    pixels, so the thin gaps between touching roofs weigh most.
    """
    m = mask.astype(bool)
    n = m.size
    fg = max(int(m.sum()), 1)
    bg = max(n - int(m.sum()), 1)
    w = np.where(m, n / (2.0 * fg), n / (2.0 * bg)).astype(np.float32)
    labels, count = ndimage.label(m)
    if count >= 2:
        d1 = np.full(m.shape, np.inf, dtype=np.float32)
        d2 = np.full(m.shape, np.inf, dtype=np.float32)
        for k in range(1, count + 1):
            d = ndimage.distance_transform_edt(labels != k).astype(np.float32)
            d2 = np.minimum(d2, np.maximum(d1, d))
            d1 = np.minimum(d1, d)
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
        w += np.where(m, 0.0, border).astype(np.float32)
    return w
