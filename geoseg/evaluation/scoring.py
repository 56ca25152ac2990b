"""Scores of predicted roofs against true roof polygons: pixel IoU and object-level F1.

Pixel scores rasterise the truth onto the probability raster's grid strip by strip, so
they too run in flat memory; object scores match polygons one to one (``metrics``),
after bringing the predictions into the truth's CRS.
"""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
from rasterio import features
from rasterio.windows import transform as window_transform

from geoseg.errors import InputError, warnings_said_once
from geoseg.evaluation.metrics import Confusion, Counts, Match, match_objects, pixel_counts
from geoseg.io.raster import open_raster, probability_cut, raster_strips
from geoseg.vector.rectilinear import polygon_iou


def pixel_scores(prob_path: str | os.PathLike, truth: gpd.GeoDataFrame, threshold: float = 0.5,
                 rows: int | None = None) -> Counts:
    """Confusion counts of the thresholded probability raster against ``truth`` polygons."""
    counts = Counts()
    with open_raster(prob_path) as src:
        if (truth.crs is None) != (src.crs is None):
            raise InputError(f"{prob_path}: truth and prediction must both be georeferenced, or neither")
        geoms = list(truth.to_crs(src.crs).geometry) if src.crs is not None else list(truth.geometry)
        cut = probability_cut(threshold)
        for win, strip in raster_strips(src, rows):
            pred = strip >= cut
            t = features.rasterize(
                ((g, 1) for g in geoms), out_shape=pred.shape, fill=0, dtype="uint8",
                transform=window_transform(win, src.transform),
            ) if geoms else np.zeros(pred.shape, np.uint8)
            counts = counts + pixel_counts(pred, t)
    return counts


def object_scores(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, threshold: float = 0.5,
                  min_area: float = 0.0) -> Match:
    """One-to-one matching at IoU ≥ ``threshold``, most confident (``score``) predictions first.

    Predictions are brought into the truth's CRS; ``min_area`` is in the truth CRS's units².
    """
    if (pred.crs is None) != (truth.crs is None):
        raise InputError("predictions and truth must both have a CRS, or neither (pixel coordinates)")
    if pred.crs is not None:
        pred = pred.to_crs(truth.crs)
    scores = pred["score"].to_numpy() if "score" in pred else None
    return match_objects(list(pred.geometry), list(truth.geometry), scores, threshold, min_area)


def area_iou(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> float:
    """IoU of the areas covered by the two polygon sets: pixel IoU at infinite resolution.

    Computed from the geometries in the truth's CRS, so no raster grid has to be chosen.
    """
    import shapely

    if pred.crs is not None and truth.crs is not None:
        pred = pred.to_crs(truth.crs)
    return polygon_iou(shapely.union_all(pred.geometry.values), shapely.union_all(truth.geometry.values))


def evaluate_model(model_path: str | os.PathLike, data, threshold: float = 0.5, tiles=None,
                   class_thresholds: tuple[tuple[str, float], ...] | None = None,
                   ) -> list[tuple[str, Counts | Confusion]]:
    """Pixel scores per labelled image, predicted as ``geoseg predict`` would.

    ``data`` is a labelled folder or a list of ``datasets.tiles.Pair``. Each image goes through the
    tiled, blended prediction path; masks are read as in training (with the model's
    classes). Returns ``(image name, counts)`` per image, in the pairs' order: roof
    ``Counts`` for a two-class model, a ``Confusion`` of every class for more (each pixel
    its most probable class, or with ``class_thresholds`` as ``geoseg predict`` takes them:
    ``vector.classes.class_ids``). A warning raised by many masks is said once.
    """
    import tempfile
    from pathlib import Path

    from geoseg.config import TileOptions
    from geoseg.datasets.classes import ClassSpec
    from geoseg.datasets.tiles import find_pairs, read_label
    from geoseg.models import checkpoint
    from geoseg.predict.engine import predict_probability
    from geoseg.vector.classes import class_cuts, class_ids

    ckpt = checkpoint.load(model_path)
    k = ckpt.model.classes
    cuts = class_cuts(ckpt.classes, class_thresholds)
    t = ckpt.train_config or {}
    spec = ClassSpec(ckpt.classes, t.get("class_column"), t.get("ignore_index")) if k > 2 else ClassSpec()
    rows, polygons = [], {}
    with warnings_said_once(), tempfile.TemporaryDirectory(prefix="geoseg-eval-") as tmp:
        for pair in data if isinstance(data, list) else find_pairs(data):
            prob_path = Path(tmp) / "prob.tif"
            predict_probability(pair.image, ckpt, prob_path, tiles or TileOptions())
            with open_raster(prob_path) as src:
                pred = class_ids(src.read(), cuts) if k > 2 else src.read(1) >= probability_cut(threshold)
            truth, valid = read_label(pair, polygons, spec)
            if truth.shape != pred.shape:
                raise InputError(f"{pair.mask}: mask size differs from its image; masks must match their images")
            counts = Confusion.of(pred, truth, k, valid) if k > 2 else pixel_counts(pred, truth.astype(bool), valid)
            rows.append((pair.image.name, counts))
    return rows


def class_table(confusion: Confusion, names: tuple[str, ...]) -> tuple[list[str], list[list]]:
    """Per-class pixel scores of a ``Confusion`` as a table (header, rows), the mean over the
    classes besides background last."""
    header = ["class", "iou", "f1", "precision", "recall", "tp", "fp", "fn"]
    rows = []
    for c, name in enumerate(names):
        n = confusion.counts(c)
        rows.append([name, f"{n.iou:.4f}", f"{n.f1:.4f}", f"{n.precision:.4f}", f"{n.recall:.4f}", n.tp, n.fp, n.fn])
    rows.append(["mean (not background)", f"{confusion.iou:.4f}", f"{confusion.f1:.4f}", "", "", "", "", ""])
    return header, rows


def confusion_rows(confusion: Confusion, names: tuple[str, ...]) -> list[list]:
    """The confusion matrix as CSV rows: true class down, predicted class across."""
    return [["true \\\\ predicted", *names], *([name, *map(int, row)] for name, row in zip(names, confusion.matrix))]


def object_table(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, threshold: float = 0.5,
                 class_column: str | None = None) -> tuple[list[str], list[list]]:
    """Object scores of ``pred`` against ``truth`` as a table (header, rows): one row, or with
    ``class_column`` (a column of both) a row per class found in either, and one for all."""
    header = ["predicted", "true", "tp", "fp", "fn", "precision", "recall", "f1", "area_iou"]

    def row(p, t) -> list:
        c = object_scores(p, t, threshold).counts
        return [len(p), len(t), c.tp, c.fp, c.fn, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}",
                f"{area_iou(p, t):.4f}" if len(p) and len(t) else "0.0000"]

    if class_column is None:
        return header, [row(pred, truth)]
    for frame, what in ((pred, "the predicted polygons"), (truth, "the true polygons")):
        if class_column not in frame.columns:
            raise InputError(f"{what} have no column {class_column!r}; give `class_column` a column of both")
    values = sorted({str(v) for v in pred[class_column]} | {str(v) for v in truth[class_column]})
    rows = [[v, *row(pred[pred[class_column].astype(str) == v], truth[truth[class_column].astype(str) == v])]
            for v in values]
    return ["class", *header], [*rows, ["all", *row(pred, truth)]]
