"""Areas of interest of a predict job: an ``--aoi`` file or a box, each scene cut to the window
that meets it, the polygons clipped to it, and each scene's footprint for merging."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio

from geoseg.errors import InputError
from geoseg.io.raster import (
    SceneInfo,
    open_raster,
    scene_info,
    shapely_affine,
)
from geoseg.io.windows import resampled_vrt
from geoseg.outputs.export import vector_format
from geoseg.vector.merge import Footprint

AREA_MARGIN = 64  # px of context read around an area of interest, so its edge is predicted as inside a scene


def read_area(path: str | os.PathLike | None = None,
              bbox: tuple[float, float, float, float] | None = None):
    """An area of interest: the union of a vector file's polygons (any CRS), or ``bbox``
    ``(minx, miny, maxx, maxy)`` in lon/lat; a GeoSeries of one geometry."""
    import geopandas as gpd
    import shapely
    from shapely.geometry import box

    from geoseg.io.vectors import read_polygons

    if (path is None) == (bbox is None):
        raise InputError("give `aoi` FILE or `bbox` minx,miny,maxx,maxy, not both")
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise InputError(f"`bbox` {','.join(f'{v:g}' for v in bbox)}: need -180 <= minx < maxx <= 180 and"
                             " -90 <= miny < maxy <= 90 (longitude, latitude)")
        return gpd.GeoSeries([box(x0, y0, x1, y1)], crs=4326)
    gdf = read_polygons(path)
    if not len(gdf):
        raise InputError(f"{path}: holds no polygons; give the area of interest as polygons")
    if gdf.crs is None:
        raise InputError(f"{path}: has no CRS; give the area of interest with one")
    area = shapely.union_all(gdf.geometry.values)
    if area.is_empty or area.area == 0:  # collapsed rings: it would clip every roof away, silently
        raise InputError(f"{path}: its polygons enclose no area; give the area of interest as polygons with an"
                         " inside")
    return gpd.GeoSeries([area], crs=gdf.crs)


def cut_to_area(scenes: list, area, tmpdir: Path) -> tuple[list, list[SceneInfo]]:
    """Each scene as a VRT of its window that meets ``area`` (with ``AREA_MARGIN`` px around);
    scenes it misses are left out (none met: an error)."""
    from rasterio.windows import Window, from_bounds

    cut, infos = [], []
    for k, path in enumerate(scenes):
        with open_raster(path) as src:
            if src.crs is None:
                raise InputError(f"{path}: has no georeference, so an area of interest cannot be placed on it")
            x0, y0, x1, y1 = area.to_crs(src.crs).total_bounds
            win = from_bounds(x0, y0, x1, y1, src.transform).round_offsets(op="floor").round_lengths(op="ceil")
            c0, r0 = max(int(win.col_off) - AREA_MARGIN, 0), max(int(win.row_off) - AREA_MARGIN, 0)
            c1 = min(int(win.col_off + win.width) + AREA_MARGIN, src.width)
            r1 = min(int(win.row_off + win.height) + AREA_MARGIN, src.height)
        if c1 <= c0 or r1 <= r0:
            continue
        vrt = resampled_vrt(path, tmpdir / f"area-{k}-{Path(path).stem}.vrt", window=Window(c0, r0, c1 - c0, r1 - r0))
        cut.append(str(vrt))
        with open_raster(vrt) as src:
            infos.append(scene_info(src))
    if not cut:
        raise InputError("the area of interest meets none of the scenes; check its place and CRS")
    return cut, infos


def clip_to_area(chunk, area):
    """Polygons clipped to the area of interest, as polygons, their areas measured again."""
    import geopandas as gpd

    from geoseg.vector.merge import measure

    if not len(chunk):
        return chunk
    inside = chunk.clip(area.to_crs(chunk.crs) if chunk.crs is not None else area)
    inside = inside[inside.geom_type.isin(["Polygon", "MultiPolygon"])].explode(index_parts=False)
    inside = gpd.GeoDataFrame(inside.reset_index(drop=True), crs=chunk.crs)
    if len(inside) and "area_m2" in inside:
        measure(inside)
    return inside


def checked_scene_info(path: str | os.PathLike, out: str | os.PathLike, several: bool) -> SceneInfo:
    """``io.scene_info`` of a scene, refusing what ``out`` cannot hold (pixel coordinates in GeoJSON, several
    scenes without a CRS)."""
    with open_raster(path) as src:
        info = scene_info(src)
    if vector_format(out) == "GeoJSON" and not info.georeferenced:
        raise InputError(
            f"{path}: has no georeference (CRS), so polygons would be in pixel coordinates;"
            " write a .gpkg instead of RFC 7946 GeoJSON"
        )
    if several and not info.georeferenced:
        raise InputError(f"{path}: has no georeference (CRS); several scenes can only be merged when"
                         " each has one, so predict it on its own")
    return info


def footprint(info: SceneInfo, crs) -> Footprint:
    """A scene's extent and pixel side in ``crs`` (edges densified, so reprojection bends them)."""
    import shapely
    from affine import Affine
    from shapely import affinity
    from shapely.geometry import box

    a, b, c, d, e, f = info.transform
    t = Affine(a, b, c, d, e, f)
    poly = affinity.affine_transform(box(0, 0, info.width, info.height), shapely_affine(t))
    pixel = float(np.hypot(t.a, t.d))
    own = rasterio.crs.CRS.from_wkt(info.crs_wkt)
    if own != crs:
        import geopandas as gpd

        dense = shapely.segmentize(poly, max(info.width, info.height) * pixel / 64)
        moved = gpd.GeoSeries([dense, box(c, f, c + pixel, f - pixel)], crs=own).to_crs(crs)
        poly, pixel = moved.iloc[0], float(np.sqrt(moved.iloc[1].area))
    return Footprint(poly, pixel)
