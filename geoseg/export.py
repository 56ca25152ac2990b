"""GeoDataFrame → file: GeoJSON (RFC 7946) or GeoPackage, chosen by suffix, written atomically.

GeoJSON is RFC 7946: WGS 84 longitude/latitude, right-hand winding, no ``crs`` member,
coordinates to 7 decimals (about 1 cm). A GeoPackage keeps the scene's CRS; one with no
CRS holds pixel coordinates, and GeoJSON refuses such polygons rather than mislabel them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd

from geoseg.errors import InputError
from geoseg.io import atomic_output

FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def vector_format(path: str | os.PathLike) -> str:
    """The OGR driver for ``path``'s suffix."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise InputError(
            f"{path}: unknown vector format {suffix or '(no suffix)'!r}; use one of {', '.join(FORMATS)}"
        ) from None


def write_vectors(gdf: gpd.GeoDataFrame, path: str | os.PathLike, overwrite: bool = False,
                  layer: str = "roofs") -> Path:
    """Write ``gdf`` to ``path`` (format from the suffix); the file appears whole or not at all."""
    driver = vector_format(path)
    if driver == "GeoJSON":
        if gdf.crs is None:
            raise InputError(
                f"{path}: the scene has no georeference, so polygons are in pixel coordinates and"
                " cannot be written as RFC 7946 GeoJSON; write a .gpkg instead"
            )
        gdf = gdf.to_crs(4326)
        options = {"RFC7946": "YES", "COORDINATE_PRECISION": 7, "WRITE_NAME": "NO"}
    else:
        options = {"layer": layer}
    with atomic_output(path, overwrite) as tmp, warnings.catch_warnings():
        # pixel-coordinate polygons have no CRS on purpose; pyogrio would warn about it
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        gdf.to_file(tmp, driver=driver, engine="pyogrio", **options)
    return Path(path)
