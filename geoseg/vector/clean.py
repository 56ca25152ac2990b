"""From traced outlines to clean polygons: pixel to map coordinates, holes filled,
simplification, minimum area, and the table of polygons with their areas."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Polygon, box

from geoseg.config import FILL_HOLES_M2, FILL_HOLES_PX, MIN_AREA_PX, VectorizeOptions
from geoseg.io.raster import open_raster, shapely_affine
from geoseg.io.vectors import local_utm
from geoseg.vector.parts import Part
from geoseg.vector.rectilinear import regularize
from geoseg.vector.table import PolygonTable, reproject


@dataclass(frozen=True)
class Frame:
    """How pixel polygons become map polygons, and how they are measured."""

    crs: object
    coeffs: tuple[float, ...]
    pixel_side: float
    area_crs: object  # a CRS in metres for areas when the scene's is not (None: the scene's own)
    pixel_side_m2: float = 1.0  # a pixel's area in m² (for a geographic scene, near its centre)
    size: tuple[int, int] = (0, 0)  # the raster's width and height, pixels

    @property
    def pixel_area(self) -> float:
        """A pixel's area in the units polygons are measured in (m², or pixels² without a CRS)."""
        return self.pixel_side_m2 if self.area_crs is not None else self.pixel_side**2

    def min_area(self, options: VectorizeOptions) -> float:
        """``options.min_area``, or ``MIN_AREA_PX`` pixels' area."""
        return MIN_AREA_PX * self.pixel_area if options.min_area is None else options.min_area

    def hole_area(self, options: VectorizeOptions) -> float:
        """``options.fill_holes``, or ``FILL_HOLES_PX`` pixels' area, at most ``FILL_HOLES_M2``
        where the units are metres."""
        if options.fill_holes is not None:
            return options.fill_holes
        return FILL_HOLES_PX * self.pixel_area if self.crs is None else min(FILL_HOLES_PX * self.pixel_area,
                                                                            FILL_HOLES_M2)

    def at_edge(self, pixel_geoms: list[Polygon]) -> np.ndarray:
        """Which polygons (pixel coordinates) the raster's edge cuts."""
        if not pixel_geoms:
            return np.zeros(0, dtype=bool)
        x0, y0, x1, y1 = shapely.bounds(pixel_geoms).T
        return (x0 <= 0) | (y0 <= 0) | (x1 >= self.size[0]) | (y1 >= self.size[1])


def frame_of(prob_path) -> Frame:
    """The georeference of a probability raster that outlines are mapped with (``Frame``)."""
    with open_raster(prob_path) as src:
        crs, t, bounds, size = src.crs, src.transform, src.bounds, (src.width, src.height)
    if crs is None:
        return Frame(None, (), 1.0, None, size=size)
    area_crs = None
    if not (crs.is_projected and crs.linear_units in ("metre", "meter")):
        area_crs = local_utm(box(*bounds), crs)
        cx, cy = (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2
        px = gpd.GeoSeries([box(cx, cy, cx + abs(t.a), cy + abs(t.e))], crs=crs).to_crs(area_crs).area.iloc[0]
        return Frame(crs, tuple(shapely_affine(t)), abs(t.a), area_crs, float(px), size)
    return Frame(crs, tuple(shapely_affine(t)), abs(t.a), area_crs, size=size)


def to_table(parts: list[Part], frame: Frame, options: VectorizeOptions, first_id: int,
              scene_name: str) -> PolygonTable:
    """Pixel parts → cleaned, measured polygons in the scene's CRS, numbered from ``first_id``."""
    georef = frame.crs is not None
    geoms = np.array([p.geom for p in parts], dtype=object)
    if georef and len(geoms):  # all coordinates at once
        a, b, d, e, xoff, yoff = frame.coeffs
        matrix, offset = np.array([[a, d], [b, e]]), np.array([xoff, yoff])
        geoms = shapely.transform(geoms, lambda xy: xy @ matrix + offset)
    holes, holed = frame.hole_area(options), np.flatnonzero(shapely.get_num_interior_rings(geoms) > 0)
    if holes > 0 and len(holed):  # in the scene CRS's units² (m² → degree² when geographic)
        per_unit2 = 1.0 if frame.area_crs is None else frame.pixel_side_m2 / frame.pixel_side**2
        geoms = geoms.copy()
        geoms[holed] = [_fill_holes(g, holes / per_unit2) for g in geoms[holed]]
    geoms = np.array(_clean_outlines(list(geoms), frame.at_edge([p.geom for p in parts]).tolist(), frame, options),
                     dtype=object).reshape(-1)
    score = np.array([round(p.prob_sum / max(p.pixels, 1), 4) for p in parts], dtype=np.float64)
    # traced, simplified (``_simplify``) or holes filled, a polygon is valid already; regularised or
    # taken to and back from metres, it is checked
    keep = ~shapely.is_empty(geoms)
    if options.regularize or frame.area_crs is not None:
        keep &= shapely.is_valid(geoms)
    geoms, score = geoms[keep], score[keep]
    metric = reproject(geoms, frame.crs, frame.area_crs) if frame.area_crs is not None else geoms
    areas, perimeters = shapely.area(metric), shapely.length(metric)
    keep = areas >= frame.min_area(options)
    geoms, score, areas, perimeters = geoms[keep], score[keep], areas[keep], perimeters[keep]
    unit = "m" if georef else "px"
    columns = {"id": np.arange(first_id, first_id + len(geoms), dtype=np.int64), f"area_{unit}2": areas.round(2),
               f"perimeter_{unit}": perimeters.round(2), "score": score,
               "scene": np.full(len(geoms), scene_name, dtype=object)}
    return PolygonTable(shapely.orient_polygons(geoms), columns, frame.crs)  # exteriors counter-clockwise


def to_frame(parts: list[Part], frame: Frame, options: VectorizeOptions, first_id: int,
              scene_name: str) -> gpd.GeoDataFrame:
    """``to_table`` as a GeoDataFrame."""
    return to_table(parts, frame, options, first_id, scene_name).frame()


def _clean_outlines(geoms: list[Polygon], at_edge: list[bool], frame: Frame,
                    options: VectorizeOptions) -> list[Polygon]:
    """Simplify, or regularise, in metres: in the scene's CRS when it is projected (or in
    pixels without one), else in the local UTM zone, where right angles are right angles.
    Polygons cut by the scene's edge are only simplified: the straight cut is not the roof's
    own edge, and would be turned into a staircase."""
    if not geoms or (not options.regularize and options.simplify == 0):
        return geoms
    geographic = frame.area_crs is not None
    metric = list(reproject(np.array(geoms, dtype=object), frame.crs, frame.area_crs)) if geographic else geoms
    pixel = float(np.sqrt(frame.pixel_side_m2)) if geographic else frame.pixel_side
    tol = pixel if options.simplify is None else options.simplify
    if options.regularize:
        cleaned = [g.simplify(tol, preserve_topology=True) if cut else regularize(g, pixel, tol)
                   for g, cut in zip(metric, at_edge)]
    else:
        cleaned = list(_simplify(np.array(list(metric), dtype=object), tol))
    return list(reproject(np.array(cleaned, dtype=object), frame.area_crs, frame.crs)) if geographic else cleaned


def _simplify(geoms: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker, four times faster than the topology-preserving kind; the few outlines
    it collapses or makes invalid are simplified again keeping topology."""
    out = shapely.simplify(geoms, tol, preserve_topology=False)
    bad = ~shapely.is_valid(out) | shapely.is_empty(out) | (shapely.get_type_id(out) != 3)
    if bad.any():
        out[bad] = shapely.simplify(geoms[bad], tol, preserve_topology=True)
    return out


def _fill_holes(geom: Polygon, max_area: float) -> Polygon:
    keep = [r for r in geom.interiors if Polygon(r).area >= max_area]
    return geom if len(keep) == len(geom.interiors) else Polygon(geom.exterior, keep)


def least_box(frame: Frame, options: VectorizeOptions) -> float:
    """Pixels² of bounding box under which no component can pass ``options.min_area``: the
    minimum area in pixels, halved where a pixel's area is not exact (a geographic CRS,
    measured near the scene's centre) or a regularised outline may leave the pixels' own
    bounding box (a rectangle turned to the roof's direction)."""
    min_px = frame.min_area(options) / frame.pixel_area
    return min_px / 2 if frame.area_crs is not None or options.regularize else min_px
