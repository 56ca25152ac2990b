"""k-fold cross-validation: honest held-out scores, and losses compared on the same folds.

For each loss and each fold, a model is trained on the other folds (with the fold itself
as its validation set only for the curves: ``model.pt`` is the *last* epoch, not the best
on that fold, so the fold's score is not used to choose the model) and scored on the
held-out images by the same tiled path as ``geoseg predict``. A fold's score is the
pixel IoU over all its held-out pixels.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from geoseg.config import TrainConfig
from geoseg.datasets.sources import split_pairs
from geoseg.errors import InputError
from geoseg.evaluation.metrics import Counts
from geoseg.models import checkpoint
from geoseg.train.loop import fit
from geoseg.train.losses import get_loss


@dataclass(frozen=True)
class LossResult:
    """One loss's cross-validated held-out scores, fold by fold."""

    loss: str
    fold_iou: tuple[float, ...]
    fold_f1: tuple[float, ...]
    seconds: float

    @property
    def mean_iou(self) -> float:
        return statistics.fmean(self.fold_iou)

    @property
    def std_iou(self) -> float:
        return statistics.pstdev(self.fold_iou)


def cross_validate(base: TrainConfig, folds: int, losses: list[str], progress: bool = False,
                   report=print, tta: bool = False) -> list[LossResult]:
    """Run ``folds``-fold cross-validation for each loss; run folders go under ``base.out_dir``.
    ``tta``: the held-out images are predicted with test-time augmentation. With scenes and
    footprints (``base.labels``) the folds are spatial: blocks of the labelled area, each
    fold's held out with a tile-wide gap (``samplers.blocks.spatial_split``), scored on its
    validation windows (up to 64) by the run itself."""
    if base.labels and tta:
        raise InputError("`tta` scores held-out tiles; with `images` and `labels` the folds are scored on their"
                         " held-out blocks without it")
    import time

    from geoseg.evaluation.scoring import evaluate_model

    for name in losses:
        get_loss(replace(base, loss=name).resolved_loss())
    results = []
    for name in losses:
        ious, f1s = [], []
        t0 = time.perf_counter()
        for k in range(folds):
            config = replace(base, loss=name, folds=folds, fold=k, select_best=False, val_dir=None,
                             out_dir=str(Path(base.out_dir) / name.replace("+", "-") / f"fold-{k}"))
            run = fit(config, progress=progress)
            if base.labels:  # scenes: the fold's held-out blocks, scored by the run on its validation windows
                metrics = checkpoint.load(run / "model.pt").metrics
                iou, f1, what = float(metrics["val_iou"]), float(metrics["val_f1"]), "held-out blocks"
            else:
                _, held = split_pairs(config)
                counts = sum((c for _, c in evaluate_model(run / "model.pt", held,
                                                            tiles=_tiles(base, tta))), Counts())
                iou, f1, what = counts.iou, counts.f1, f"{len(held)} images"
            ious.append(iou)
            f1s.append(f1)
            report(f"{name:14s} fold {k + 1}/{folds}: held-out IoU {iou:.4f}  F1 {f1:.4f}  ({what})")
        results.append(LossResult(name, tuple(ious), tuple(f1s), time.perf_counter() - t0))
    return results


def _tiles(base: TrainConfig, tta: bool):
    from geoseg.config import TileOptions

    return TileOptions(device=base.device, precision=base.precision, tta=tta)
