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
import pandas as pd
from affine import Affine
from rasterio import features
from rasterio.windows import Window
from scipy import ndimage
from shapely import STRtree, affinity
from shapely.geometry import Polygon, box, shape
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from geoseg.errors import InputError
from geoseg.io import open_raster, strip_rows

PROB_SCALE = 255.0  # the probability raster stores round(p * 255) as uint8


@dataclass(frozen=True)
class VectorizeOptions:
    """threshold: probability at or above which a pixel is roof.
    min_area: drop polygons smaller than this, in m² (pixels² for an ungeoreferenced scene);
    None: 20 pixels' area. simplify: tolerance in metres (pixels); None: one pixel side;
    0: keep the pixel outline. strip_rows: rows per strip read at once; None: about
    4 M pixels' worth, so memory does not grow with the scene's width either."""

    threshold: float = 0.5
    min_area: float | None = None
    fill_holes: float = 0.0
    simplify: float | None = None
    strip_rows: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"--threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if (self.min_area or 0) < 0 or (self.simplify or 0) < 0 or self.fill_holes < 0:
            raise InputError("--min-area, --fill-holes and --simplify must not be negative")


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


def iter_pixel_parts(prob_path: str | os.PathLike, threshold: float = 0.5, rows: int | None = None):
    """Finished roof polygons in pixel coordinates, strip by strip, as lists of parts.

    Only the polygons that touch the current strip's lower edge are held back: they are
    joined with the parts of the next strip that touch its upper edge, and released as
    soon as they stop growing. Memory is one strip plus that one edge's polygons.
    """
    open_parts: list[_Part] = []
    with open_raster(prob_path) as src:
        h, w = src.height, src.width
        step = strip_rows(w, rows)
        for r0 in range(0, h, step):
            r1 = min(r0 + step, h)
            prob = src.read(1, window=Window(0, r0, w, r1 - r0)).astype(np.float32)
            fresh, touching = [], []
            for part in _strip_parts(prob, r0, threshold):
                (touching if part.geom.bounds[1] <= r0 else fresh).append(part)
            candidates = _join(open_parts + touching) if open_parts and touching else open_parts + touching
            done, open_parts = [], []
            for part in candidates + fresh:
                (open_parts if r1 < h and part.geom.bounds[3] >= r1 else done).append(part)
            yield done
    if open_parts:
        yield open_parts


@dataclass(frozen=True)
class _Frame:
    """How pixel polygons become map polygons, and how they are measured."""

    crs: object
    coeffs: tuple[float, ...]
    pixel_side: float
    area_crs: object  # a CRS in metres for areas when the scene's is not (None: the scene's own)
    pixel_side_m2: float = 1.0  # a pixel's area in m² (for a geographic scene, near its centre)


def _frame(prob_path) -> _Frame:
    with open_raster(prob_path) as src:
        crs, t, bounds = src.crs, src.transform, src.bounds
    if crs is None:
        return _Frame(None, (), 1.0, None)
    area_crs = None
    if not (crs.is_projected and crs.linear_units in ("metre", "meter")):
        from pyproj.aoi import AreaOfInterest
        from pyproj.database import query_utm_crs_info

        lon_lat = gpd.GeoSeries([box(*bounds)], crs=crs).to_crs(4326).total_bounds
        info = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(*lon_lat))
        area_crs = f"EPSG:{info[0].code}"
        cx, cy = (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2
        px = gpd.GeoSeries([box(cx, cy, cx + abs(t.a), cy + abs(t.e))], crs=crs).to_crs(area_crs).area.iloc[0]
        return _Frame(crs, (t.a, t.b, t.d, t.e, t.c, t.f), abs(t.a), area_crs, float(px))
    return _Frame(crs, (t.a, t.b, t.d, t.e, t.c, t.f), abs(t.a), area_crs)


def _to_frame(parts: list[_Part], frame: _Frame, options: VectorizeOptions, first_id: int,
              scene_name: str) -> gpd.GeoDataFrame:
    """Pixel parts → cleaned, measured polygons in the scene's CRS, numbered from ``first_id``."""
    georef = frame.crs is not None
    geoms = [affinity.affine_transform(p.geom, frame.coeffs) if georef else p.geom for p in parts]
    if options.fill_holes > 0:  # the threshold in the scene CRS's units² (m² → degree² when geographic)
        per_unit2 = 1.0 if frame.area_crs is None else frame.pixel_side_m2 / frame.pixel_side**2
        geoms = [_fill_holes(g, options.fill_holes / per_unit2) for g in geoms]
    tol = frame.pixel_side if options.simplify is None else options.simplify
    if tol > 0:
        geoms = [g.simplify(tol, preserve_topology=True) for g in geoms]
    gdf = gpd.GeoDataFrame({"score": [round(p.prob_sum / max(p.pixels, 1), 4) for p in parts]},
                           geometry=geoms, crs=frame.crs)
    gdf = gdf[gdf.is_valid & ~gdf.is_empty]
    metric = gdf.to_crs(frame.area_crs) if frame.area_crs is not None and len(gdf) else gdf
    areas, perimeters = metric.area, metric.length
    pixel_area = frame.pixel_side_m2 if frame.area_crs is not None else frame.pixel_side**2
    min_area = 20 * pixel_area if options.min_area is None else options.min_area
    keep = areas >= min_area
    gdf, areas, perimeters = gdf[keep].copy(), areas[keep], perimeters[keep]
    unit = "m" if georef else "px"
    gdf.insert(0, f"perimeter_{unit}", perimeters.round(2).to_numpy())
    gdf.insert(0, f"area_{unit}2", areas.round(2).to_numpy())
    gdf.insert(0, "id", np.arange(first_id, first_id + len(gdf)))
    gdf["scene"] = scene_name
    gdf.geometry = [orient(g, 1.0) for g in gdf.geometry]  # exterior counter-clockwise
    return gdf.reset_index(drop=True)


def _fill_holes(geom: Polygon, max_area: float) -> Polygon:
    keep = [r for r in geom.interiors if Polygon(r).area >= max_area]
    return geom if len(keep) == len(geom.interiors) else Polygon(geom.exterior, keep)


def iter_polygons(prob_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
                  scene_name: str | None = None):
    """Roof polygons of a probability raster as a stream of GeoDataFrames (one per strip).

    Each chunk is in the raster's CRS (None: pixel coordinates) with the columns of
    ``vectorize``; ids run on across chunks. Memory does not grow with the scene.
    """
    frame = _frame(prob_path)
    next_id = 1
    for parts in iter_pixel_parts(prob_path, options.threshold, options.strip_rows):
        chunk = _to_frame(parts, frame, options, next_id, scene_name or "")
        next_id += len(chunk)
        yield chunk


def vectorize(prob_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
              scene_name: str | None = None) -> gpd.GeoDataFrame:
    """Roof polygons of a probability raster, in the raster's CRS (None: pixel coordinates).

    Columns: ``id`` (1…n), ``area_m2`` and ``perimeter_m`` (``area_px2``, ``perimeter_px``
    when not georeferenced; measured in a local UTM zone when the CRS is geographic),
    ``score`` (mean roof probability inside),
    ``scene``; one valid polygon per roof, exterior counter-clockwise. Holds every
    polygon in memory: for large scenes, ``iter_polygons`` streams them.
    """
    chunks = list(iter_polygons(prob_path, options, scene_name))
    return gpd.GeoDataFrame(pd.concat(chunks, ignore_index=True), crs=chunks[0].crs)
