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

from geoseg.errors import InputError

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def dice_loss(logits, target, valid, weight):  # noqa: ARG001 - weight unused by design
    """1 − soft Dice over the batch, of the roof class, or the mean over the classes besides
    background (empty masks are fine)."""
    prob = logits.float().softmax(dim=1)
    losses = []
    for c in range(1, prob.shape[1]):
        t = (target == c).float()
        inter = (prob[:, c] * t * valid).sum()
        denom = (prob[:, c] * valid).sum() + (t * valid).sum()
        losses.append(1.0 - (2.0 * inter + 1.0) / (denom + 1.0))
    return torch.stack(losses).mean()


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


def class_weighted(loss: Loss, weights: torch.Tensor) -> Loss:
    """``loss`` with each pixel counted by its true class's weight (``weights`` ``(K,)``, on the
    logits' device): the weight enters as part of ``valid``, the pixels' share of the loss."""
    def weighted(logits, target, valid, weight):
        return loss(logits, target, valid * weights[target], weight)
    return weighted


def frequency_weights(pixels: np.ndarray) -> np.ndarray:
    """Class weights from pixel counts ``(K,)``: the inverse square root of each class's share,
    their mean over the classes present 1; a class without pixels gets 1."""
    share = pixels / max(float(pixels.sum()), 1.0)
    w = np.where(share > 0, 1.0 / np.sqrt(np.maximum(share, 1e-12)), 0.0)
    present = share > 0
    w = w / w[present].mean() if present.any() else np.ones_like(w)
    return np.where(present, w, 1.0).astype(np.float32)


# Losses that need the weight map computed from each mask (once, before augmentation).
NEEDS_WEIGHT_MAP = {"pixel-softmax"}


def get_loss(name: str) -> Loss:
    """The loss named ``name`` in ``LOSSES``; an unknown name lists the known ones."""
    try:
        return LOSSES[name]
    except KeyError:
        raise InputError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None
