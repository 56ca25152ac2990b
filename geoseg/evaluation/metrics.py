"""Scores: pixel confusion counts → IoU, F1, precision, recall; one-to-one polygon matching.

Object matching follows the SpaceNet building challenge: predictions, most confident
first, each take the unmatched true polygon of highest IoU; a pair with IoU ≥ 0.5 is a
true positive, an unmatched prediction a false positive, an unmatched truth a false negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from geoseg.vector.rectilinear import polygon_iou


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


@dataclass(frozen=True)
class Counts:
    """Confusion counts of a binary prediction (pixels or objects)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        return _ratio(self.tp, self.tp + self.fp + self.fn)


def pixel_counts(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> Counts:
    """Confusion counts of two boolean masks of one shape, over ``valid`` pixels."""
    p, t = pred.astype(bool), truth.astype(bool)
    if valid is not None:
        v = valid.astype(bool)
        p, t = p[v], t[v]
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return Counts(tp, fp, fn, int(p.size) - tp - fp - fn)


@dataclass(frozen=True)
class Match:
    """Object-level result: counts and, per true positive, (pred index, truth index, IoU)."""

    counts: Counts
    pairs: tuple[tuple[int, int, float], ...]


def match_objects(
    pred: Sequence[BaseGeometry],
    truth: Sequence[BaseGeometry],
    scores: Sequence[float] | None = None,
    threshold: float = 0.5,
    min_area: float = 0.0,
) -> Match:
    """One-to-one matching of predicted and true polygons at IoU ≥ ``threshold``.

    With ``min_area`` (SpaceNet uses 20 px²), true polygons smaller than it and
    predictions not larger than it are left out before matching. Indexes in ``pairs``
    refer to the sequences as given.
    """
    keep_t = [j for j, t in enumerate(truth) if t.area >= min_area and t.area > 0]
    keep_p = [i for i, p in enumerate(pred) if p.area > min_area or (min_area == 0 and not p.is_empty)]
    if len(keep_t) < len(truth) or len(keep_p) < len(pred):
        sub = match_objects([pred[i] for i in keep_p], [truth[j] for j in keep_t],
                            None if scores is None else [scores[i] for i in keep_p], threshold)
        pairs = tuple((keep_p[i], keep_t[j], iou) for i, j, iou in sub.pairs)
        return Match(sub.counts, pairs)
    order = range(len(pred)) if scores is None else np.argsort(-np.asarray(scores), kind="stable")
    tree = STRtree(list(truth)) if len(truth) else None
    taken: set[int] = set()
    pairs = []
    for i in order:
        p = pred[i]
        if tree is None or p.is_empty:
            continue
        best, best_iou = -1, 0.0
        for j in tree.query(p, predicate="intersects"):
            j = int(j)
            if j in taken:
                continue
            t = truth[j]
            iou = polygon_iou(p, t)
            if iou > best_iou:
                best, best_iou = j, iou
        if best >= 0 and best_iou >= threshold:
            taken.add(best)
            pairs.append((int(i), best, best_iou))
    tp = len(pairs)
    return Match(Counts(tp=tp, fp=len(pred) - tp, fn=len(truth) - tp), tuple(pairs))


@dataclass(frozen=True)
class Confusion:
    """Pixel confusion of K classes: ``matrix[true, predicted]`` counts (int64, K × K) over
    valid pixels. ``iou``/``f1``: the means over the classes besides background, so a
    multi-class run reports what a roof run does (``Counts``)."""

    matrix: np.ndarray

    @classmethod
    def of(cls, pred: np.ndarray, truth: np.ndarray, k: int, valid: np.ndarray | None = None) -> Confusion:
        """The confusion of class-id arrays ``pred`` and ``truth`` (any shape, ids < ``k``)."""
        p, t = np.asarray(pred).ravel().astype(np.int64), np.asarray(truth).ravel().astype(np.int64)
        if valid is not None:
            keep = np.asarray(valid).ravel().astype(bool)
            p, t = p[keep], t[keep]
        return cls(np.bincount(t * k + p, minlength=k * k).reshape(k, k))

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.matrix + other.matrix)

    def counts(self, c: int) -> Counts:
        """Class ``c`` against the rest, as ``Counts``."""
        m = self.matrix
        tp = int(m[c, c])
        fp, fn = int(m[:, c].sum()) - tp, int(m[c, :].sum()) - tp
        return Counts(tp, fp, fn, int(m.sum()) - tp - fp - fn)

    @property
    def iou(self) -> float:
        return float(np.mean([self.counts(c).iou for c in range(1, len(self.matrix))]))

    @property
    def f1(self) -> float:
        return float(np.mean([self.counts(c).f1 for c in range(1, len(self.matrix))]))
