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
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geoseg.errors import InputError
from geoseg.io import open_raster
from geoseg.metrics import Counts, Match, match_objects, pixel_counts
from geoseg.vectorize import PROB_SCALE


def pixel_scores(prob_path: str | os.PathLike, truth: gpd.GeoDataFrame, threshold: float = 0.5,
                 strip_rows: int = 2048) -> Counts:
    """Confusion counts of the thresholded probability raster against ``truth`` polygons."""
    counts = Counts()
    with open_raster(prob_path) as src:
        if (truth.crs is None) != (src.crs is None):
            raise InputError(f"{prob_path}: truth and prediction must both be georeferenced, or neither")
        geoms = list(truth.to_crs(src.crs).geometry) if src.crs is not None else list(truth.geometry)
        cut = round(threshold * PROB_SCALE)
        for r0 in range(0, src.height, strip_rows):
            win = Window(0, r0, src.width, min(strip_rows, src.height - r0))
            pred = src.read(1, window=win) >= cut
            t = features.rasterize(
                ((g, 1) for g in geoms), out_shape=pred.shape, fill=0, dtype="uint8",
                transform=window_transform(win, src.transform),
            ) if geoms else np.zeros(pred.shape, np.uint8)
            counts = counts + pixel_counts(pred, t)
    return counts


def object_scores(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, threshold: float = 0.5) -> Match:
    """One-to-one matching at IoU ≥ ``threshold``, most confident predictions first."""
    if pred.crs is not None and truth.crs is not None:
        pred = pred.to_crs(truth.crs)
    scores = pred["score"].to_numpy() if "score" in pred else None
    return match_objects(list(pred.geometry), list(truth.geometry), scores, threshold)
