"""Polygons of one block of rows of a scene (a Dask task's share) and the join of the roofs
that cross block edges, the same polygon for polygon as one process gives."""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import shapely
from shapely import STRtree, affinity
from shapely.geometry import Polygon

from geoseg.config import VectorizeOptions
from geoseg.io.raster import open_raster
from geoseg.vector.clean import frame_of, to_frame
from geoseg.vector.parts import Part, join_parts, meeting_groups
from geoseg.vector.stream import iter_pixel_parts
from geoseg.vector.strips import StripTracer


def band_polygons(prob_path: str | os.PathLike, scene_path: str | os.PathLike, row0: int, first: bool, last: bool,
                  options: VectorizeOptions = VectorizeOptions(), scene_name: str = ""):
    """Polygons of one block of rows of a scene (``prob_path``: the block's probability, its
    first row being scene row ``row0``). Returns the polygons of the components that do not
    touch the block's inner edges, cleaned and measured (a GeoDataFrame, ids from 1), and
    the components that do, whole and raw, as ``(wkb in scene pixel coordinates, probability
    sum, pixels, pixels of their own)``, for ``join_band_edges`` once every block is done.
    With ``options.split`` their own pixels, ``(column, scene row, probability)`` of their
    bounding box with every other pixel 0, go along, for the client to cut each roof across
    a block edge as one process cuts it (otherwise None: a union joins them exactly). (No
    opening here: it would need the neighbours' rows.)"""
    frame = frame_of(scene_path)
    with open_raster(prob_path) as src:
        h = src.height
    seed = options.split or None

    def on_edge(p: Part) -> bool:
        return (p.geom.bounds[1] <= 0 and not first) or (p.geom.bounds[3] >= h and not last)

    # whole components (not cut) first: those on an inner edge go to the client
    whole = [p for chunk in iter_pixel_parts(prob_path, options.threshold, options.strip_rows) for p in chunk]
    edge = [p for p in whole if on_edge(p)]
    if seed is None:
        done = [p for p in whole if not on_edge(p)]
    else:  # the pieces of the components inside the block; the edge components are cut on the client
        cut = [p for chunk in iter_pixel_parts(prob_path, options.threshold, options.strip_rows, split_seed=seed)
               for p in chunk]
        done = _outside(cut, [p.geom for p in edge])
    done = [Part(affinity.translate(p.geom, 0, row0), p.prob_sum, p.pixels) for p in done]
    own = _own_pixels(prob_path, edge, row0) if seed is not None else [None] * len(edge)
    return to_frame(done, frame, options, 1, scene_name), [
        (affinity.translate(p.geom, 0, row0).wkb, p.prob_sum, p.pixels, o) for p, o in zip(edge, own)]


def _outside(parts: list[Part], geoms: list[Polygon]) -> list[Part]:
    """The parts that lie in none of ``geoms`` (pieces of other components: a point of each
    piece inside it tells)."""
    if not parts or not geoms:
        return list(parts)
    points = shapely.point_on_surface(np.array([p.geom for p in parts], dtype=object))
    inside = np.unique(STRtree(np.array(geoms, dtype=object)).query(points, predicate="intersects")[0])
    keep = np.ones(len(parts), dtype=bool)
    keep[inside] = False
    return [p for p, k in zip(parts, keep) if k]


def _own_pixels(prob_path: str | os.PathLike, parts: list[Part], row0: int) -> list[tuple[int, int, np.ndarray]]:
    """Each whole component's probability over its bounding box, 0 outside it: ``(first column,
    first scene row, uint8 rows)`` (its pixel-edge outline says which pixels are its own)."""
    from affine import Affine
    from rasterio.features import rasterize
    from rasterio.windows import Window

    out = []
    with open_raster(prob_path) as src:
        for p in parts:
            x0, y0, x1, y1 = (int(round(v)) for v in p.geom.bounds)
            prob = src.read(1, window=Window(x0, y0, x1 - x0, y1 - y0))
            mine = rasterize([(p.geom, 1)], out_shape=prob.shape, transform=Affine.translation(x0, y0), dtype="uint8")
            out.append((x0, y0 + row0, np.where(mine > 0, prob, 0).astype(np.uint8)))
    return out


def join_band_edges(edge_parts: list, scene_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
                    scene_name: str = "") -> gpd.GeoDataFrame:
    """The components that touched blocks' inner edges (``band_polygons``), joined with their
    continuations, cleaned and measured. With their own pixels (``options.split``), each
    group of parts that meet is traced again whole from them, and cut as one process cuts
    it; without, the parts are unioned."""
    parts = [Part(shapely.from_wkb(w), s, n) for w, s, n, _ in edge_parts]
    if not options.split or not parts:
        return to_frame(join_parts(parts), frame_of(scene_path), options, 1, scene_name)
    own = [o for *_, o in edge_parts]
    out: list[Part] = []
    for members in meeting_groups(np.array([p.geom for p in parts], dtype=object)):
        x0, y0 = min(own[i][0] for i in members), min(own[i][1] for i in members)
        x1 = max(own[i][0] + own[i][2].shape[1] for i in members)
        y1 = max(own[i][1] + own[i][2].shape[0] for i in members)
        canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        for i in members:
            cx, cy, pixels = own[i]
            at = canvas[cy - y0 : cy - y0 + pixels.shape[0], cx - x0 : cx - x0 + pixels.shape[1]]
            np.maximum(at, pixels, out=at)
        tracer = StripTracer(y1 - y0, x1 - x0, options.threshold, split_seed=options.split)
        out += [Part(affinity.translate(p.geom, x0, y0), p.prob_sum, p.pixels)
                for p in tracer.feed(0, canvas) + tracer.close()]
    return to_frame(out, frame_of(scene_path), options, 1, scene_name)
