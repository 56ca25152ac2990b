"""The scene at the model's pixel size: the ratio of the two and the resampling VRT a scene of
another pixel size is read through."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import rasterio

from geoseg.errors import GeosegWarning
from geoseg.io.raster import open_raster
from geoseg.models.checkpoint import Checkpoint

GSD_TOLERANCE = 0.01  # a scene within 1 % of the model's pixel size is predicted as it is


GSD_FACTOR_WARN = 4.0  # beyond this factor either way the model was not made for the imagery


def grid_ratio(src: rasterio.io.DatasetReader, ckpt: Checkpoint,
               scene_gsd: float | None = None) -> tuple[float | None, float | None]:
    """``(scene pixels per model pixel, the scene's pixel size in m)`` of an open scene; the
    ratio is None when the scene is predicted as it is (the model or the scene has no pixel
    size, or they agree)."""
    from geoseg.io.raster import pixel_size_m

    if ckpt.gsd is None:
        return None, None
    own = scene_gsd or pixel_size_m(src)
    if own is None or abs(ckpt.gsd / own - 1.0) <= GSD_TOLERANCE:
        return None, own
    return ckpt.gsd / own, own


def model_grid(scene: str | os.PathLike, ckpt: Checkpoint, folder: str | os.PathLike,
               scene_gsd: float | None = None) -> str | os.PathLike:
    """The raster to predict ``scene`` on: itself, or (when the model records its training
    pixel size and the scene's differs) a VRT in ``folder`` that reads it resampled to the
    model's pixel size, over the same extent and CRS. ``scene_gsd``: the scene's pixel size
    in metres where it cannot say (PNG tiles), else measured (``io.pixel_size_m``)."""
    from geoseg.io.windows import resampled_vrt

    with open_raster(scene) as src:  # once: a remote scene's header is a request
        ratio, own = grid_ratio(src, ckpt, scene_gsd)
        width, height = src.width, src.height
    if ratio is None:
        return scene
    if not 1 / GSD_FACTOR_WARN <= ratio <= GSD_FACTOR_WARN:
        warnings.warn(f"{scene}: {own:.3g} m pixels, but the model was made for {ckpt.gsd:.3g} m; it is resampled,"
                      " but a model made for this imagery will do better", GeosegWarning, stacklevel=2)
    w, h = max(1, round(width / ratio)), max(1, round(height / ratio))
    return resampled_vrt(scene, Path(folder) / f"{Path(scene).stem}.at-{ckpt.gsd:g}m.vrt", w, h,
                         "average" if ratio > 1 else "bilinear")
