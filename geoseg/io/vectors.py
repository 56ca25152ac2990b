"""Vector labels and areas: polygons from any OGR format (invalid rings repaired; points and
lines refused), and the local UTM zone of a geometry."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from geoseg.errors import GeosegWarning, InputError, first_line


def local_utm(geometry, crs):
    """The UTM zone (WGS 84) at the centre of ``geometry`` (in ``crs``): where areas are in
    square metres and right angles are right angles, for a geographic scene."""
    import geopandas as gpd

    return gpd.GeoSeries([geometry], crs=crs).estimate_utm_crs()


def read_polygons(path: str | os.PathLike, repair: bool = True, layer: str | None = None, where: str | None = None,
                  line_width: float | None = None):
    """Read a vector file of polygons (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, anything
    OGR reads) as a GeoDataFrame, empty and missing geometries dropped. ``layer``: the layer
    of a multi-layer file; ``where``: an OGR SQL filter (``"building IS NOT NULL"``).
    ``repair``: invalid polygons (self-intersecting rings, bow-ties) are made valid
    (``shapely.make_valid``, keeping their polygonal parts), and how many were is said once
    in a ``GeosegWarning``. ``line_width``: lines (roads, rivers) become areas this many
    metres wide (buffered in a local UTM zone when the file is in lon/lat)."""
    import geopandas as gpd
    import shapely

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; give a .geojson or .gpkg of polygons")
    try:
        with warnings.catch_warnings():  # a GeoPackage with QGIS styles holds a `layer_styles` table too
            warnings.filterwarnings("ignore", message="More than one layer found")
            gdf = gpd.read_file(p, layer=layer, where=where)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        what = f"with layer {layer!r} and filter {where!r} " if (layer or where) else ""
        raise InputError(f"{p}: not a readable vector file {what}({first_line(exc, 100)})") from None
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].reset_index(drop=True)
    if line_width is not None:
        gdf = _lines_as_areas(gdf, line_width)
    gdf = _polygons_only(gdf, p)
    if gdf.crs is not None and gdf.crs.is_geographic and len(gdf):
        x0, y0, x1, y1 = gdf.total_bounds
        if not (-180 <= x0 and x1 <= 360 and -90 <= y0 and y1 <= 90):
            raise InputError(f"{p}: coordinates up to {max(abs(x0), abs(x1), abs(y0), abs(y1)):.6g} under a"
                             f" longitude/latitude CRS ({gdf.crs.to_string()}): its CRS tag is wrong (metres"
                             " tagged as degrees?); set the file's true CRS")
    if repair and len(gdf):
        bad = ~shapely.is_valid(gdf.geometry.values)
        if bad.any():
            fixed = shapely.make_valid(gdf.geometry.values[bad])
            # keep the polygonal part of what make_valid returns (a collection may hold lines)
            polygonal = ("Polygon", "MultiPolygon")
            fixed = [g if g.geom_type in polygonal else
                     shapely.union_all([x for x in getattr(g, "geoms", [g]) if x.geom_type in polygonal])
                     for g in fixed]
            geoms = gdf.geometry.values.copy()
            geoms[bad] = fixed
            gdf = gdf.set_geometry(gpd.GeoSeries(geoms, crs=gdf.crs, index=gdf.index))
            warnings.warn(f"{p}: {int(bad.sum())} invalid polygon(s) (self-intersecting rings) repaired",
                          GeosegWarning, stacklevel=2)
            gdf = gdf[~gdf.geometry.is_empty].reset_index(drop=True)
    return gdf


def _lines_as_areas(gdf, width: float):
    """``gdf`` with its lines buffered into areas ``width`` metres wide (flat ends)."""
    lines = gdf.geometry.geom_type.isin(["LineString", "MultiLineString"]).to_numpy()
    if not lines.any():
        return gdf
    part = gdf.geometry[lines]
    metric = part.to_crs(local_utm(part.union_all(), gdf.crs)) if gdf.crs is not None and gdf.crs.is_geographic \
        else part
    areas = metric.buffer(width / 2, cap_style="flat")
    areas = areas.to_crs(gdf.crs) if metric is not part else areas
    geoms = gdf.geometry.copy()
    geoms[lines] = areas.values
    return gdf.set_geometry(geoms)


def _polygons_only(gdf, p: Path):
    """The polygons of a vector file; points and lines are not areas: a file of nothing else is
    an ``InputError`` that says so (not a CRS problem), and a few among polygons are dropped
    with a warning."""
    kinds = gdf.geometry.geom_type
    polygonal = kinds.isin(["Polygon", "MultiPolygon"])
    if polygonal.all():
        return gdf
    others = ", ".join(sorted(set(kinds[~polygonal])))
    if not polygonal.any():
        raise InputError(f"{p}: holds {others} geometries, not polygons; give polygons (buffer points and lines"
                         " into areas first, e.g. with QGIS's Buffer)")
    warnings.warn(f"{p}: {int((~polygonal).sum())} {others} geometries left out (not polygons)", GeosegWarning,
                  stacklevel=3)
    return gdf[polygonal].reset_index(drop=True)
