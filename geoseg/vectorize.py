"""Stitched probability raster → roof polygons (a GeoDataFrame in the scene's CRS).

Works on the written raster strip by strip, so memory does not grow with the scene:
each strip is thresholded and traced with ``rasterio.features.shapes`` in pixel
coordinates; polygons that touch a strip's inner edge are held back and, at the end,
joined with their neighbours from the next strip (their pixel edges coincide exactly),
so a roof across strip edges is one polygon. Then pixel → map coordinates, clean-up
in map units (minimum area, simplification), and attributes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
from affine import Affine
from rasterio import features
from rasterio.windows import Window
from scipy import ndimage
from shapely import STRtree, affinity
from shapely.geometry import Polygon, shape
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from geoseg.errors import InputError
from geoseg.io import open_raster

PROB_SCALE = 255.0  # the probability raster stores round(p * 255) as uint8


@dataclass(frozen=True)
class VectorizeOptions:
    """threshold: probability at or above which a pixel is roof.
    min_area: drop polygons smaller than this, in m² (pixels² for an ungeoreferenced scene);
    None: 20 pixels' area. simplify: tolerance in metres (pixels); None: one pixel side;
    0: keep the pixel outline. strip_rows: rows per strip read at once."""

    threshold: float = 0.5
    min_area: float | None = None
    simplify: float | None = None
    strip_rows: int = 2048

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"--threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if (self.min_area or 0) < 0 or (self.simplify or 0) < 0:
            raise InputError("--min-area and --simplify must not be negative")


@dataclass
class _Part:
    geom: Polygon
    prob_sum: float
    pixels: int


def _strip_parts(prob: np.ndarray, row0: int, threshold: float) -> list[_Part]:
    """Polygons (pixel coordinates, x = column, y = row) of one strip, with probability sums."""
    mask = prob >= round(threshold * PROB_SCALE)
    labels, n = ndimage.label(mask)  # 4-connectivity, as features.shapes below
    if n == 0:
        return []
    flat = labels.ravel()
    sums = np.bincount(flat, weights=prob.ravel(), minlength=n + 1)[1:] / PROB_SCALE
    counts = np.bincount(flat, minlength=n + 1)[1:]
    parts = []
    for geom, value in features.shapes(labels.astype(np.int32), mask=mask, connectivity=4,
                                       transform=Affine.translation(0, row0)):
        k = int(value) - 1
        parts.append(_Part(shape(geom), float(sums[k]), int(counts[k])))
    return parts


def _join(parts: list[_Part]) -> list[_Part]:
    """Union parts that share edges; probability sums and pixel counts add up."""
    if not parts:
        return []
    merged = unary_union([p.geom for p in parts])
    geoms = list(getattr(merged, "geoms", [merged]))
    out = [_Part(g, 0.0, 0) for g in geoms]
    tree = STRtree(geoms)
    for p in parts:
        pt = p.geom.representative_point()
        for j in tree.query(pt, predicate="intersects"):
            out[int(j)].prob_sum += p.prob_sum
            out[int(j)].pixels += p.pixels
            break
    return out


def pixel_polygons(prob_path: str | os.PathLike, threshold: float = 0.5, strip_rows: int = 2048):
    """Roof polygons in pixel coordinates from a probability raster, read strip by strip.

    Returns ``(parts, src_info)`` where each part has ``geom``, ``prob_sum``, ``pixels``.
    """
    done: list[_Part] = []
    pending: list[_Part] = []
    with open_raster(prob_path) as src:
        h, w = src.height, src.width
        for r0 in range(0, h, strip_rows):
            r1 = min(r0 + strip_rows, h)
            prob = src.read(1, window=Window(0, r0, w, r1 - r0)).astype(np.float32)
            for part in _strip_parts(prob, r0, threshold):
                _, miny, _, maxy = part.geom.bounds
                crosses = (r0 > 0 and miny <= r0) or (r1 < h and maxy >= r1)
                (pending if crosses else done).append(part)
        crs, transform = src.crs, src.transform
    return done + _join(pending), crs, transform


def vectorize(prob_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
              scene_name: str | None = None) -> gpd.GeoDataFrame:
    """Roof polygons of a probability raster, in the raster's CRS (None: pixel coordinates).

    Columns: ``id`` (1…n), ``area_m2`` (``area_px`` when not georeferenced), ``score``
    (mean roof probability inside), ``scene``; one valid polygon per roof.
    """
    parts, crs, transform = pixel_polygons(prob_path, options.threshold, options.strip_rows)
    georef = crs is not None
    pixel_side = abs(transform.a) if georef else 1.0
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d) if georef else 1.0
    coeffs = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    geoms = [affinity.affine_transform(p.geom, coeffs) if georef else p.geom for p in parts]
    tol = pixel_side if options.simplify is None else options.simplify
    if tol > 0:
        geoms = [g.simplify(tol, preserve_topology=True) for g in geoms]
    gdf = gpd.GeoDataFrame(
        {"score": [round(p.prob_sum / max(p.pixels, 1), 4) for p in parts]},
        geometry=geoms, crs=crs,
    )
    gdf = gdf[gdf.is_valid & ~gdf.is_empty]
    area_col = "area_m2" if georef else "area_px"
    areas = _areas_m2(gdf) if georef else gdf.area
    min_area = 20 * pixel_area if options.min_area is None else options.min_area
    keep = areas >= min_area
    gdf, areas = gdf[keep].copy(), areas[keep]
    gdf.insert(0, area_col, areas.round(2).to_numpy())
    gdf.insert(0, "id", np.arange(1, len(gdf) + 1))
    gdf["scene"] = scene_name or ""
    gdf.geometry = [orient(g, 1.0) for g in gdf.geometry]  # exterior counter-clockwise
    return gdf.reset_index(drop=True)


def _areas_m2(gdf: gpd.GeoDataFrame):
    """Areas in square metres: in the CRS when it is projected in metres, else in a local UTM zone."""
    crs = gdf.crs
    if crs.is_projected and crs.axis_info and crs.axis_info[0].unit_name in ("metre", "meter"):
        return gdf.area
    if len(gdf) == 0:
        return gdf.area
    return gdf.to_crs(gdf.estimate_utm_crs()).area
