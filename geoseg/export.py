"""GeoDataFrames → file: GeoJSON (RFC 7946) or GeoPackage, chosen by suffix, written atomically.

GeoJSON is RFC 7946: WGS 84 longitude/latitude, counter-clockwise exteriors and
clockwise holes, no ``crs`` member, coordinates to 7 decimals (about 1 cm). A GeoPackage
keeps the scene's CRS; one with no CRS holds pixel coordinates, and GeoJSON refuses such
polygons rather than mislabel them. ``VectorWriter`` takes polygons chunk by chunk, so a
scene's polygons never need to be in memory at once; the file appears under its name
only when the writer closes without error.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import mapping

from geoseg.errors import InputError
from geoseg.outputs import OutputSet, atomic_output

FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}
DECIMALS = 7  # RFC 7946 §11.2 suggests ~1 cm; 1e-7 degree is 1.1 cm at the equator


def vector_format(path: str | os.PathLike) -> str:
    """The OGR driver for ``path``'s suffix."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise InputError(
            f"{path}: unknown vector format {suffix or '(no suffix)'!r}; use one of {', '.join(FORMATS)}"
        ) from None


def _value(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


class VectorWriter:
    """Write polygon chunks to one GeoJSON or GeoPackage file; use as a context manager.

    ``crs`` is the chunks' CRS (None: pixel coordinates, GeoPackage only). ``style``: embed
    the roof style (``geoseg.style``) in a GeoPackage as the layer's default. ``outputs``:
    the run's ``OutputSet``, which then publishes the file with the run's other outputs;
    without it the file is published when the writer closes without error.
    """

    def __init__(self, path: str | os.PathLike, crs, overwrite: bool = False, layer: str = "roofs",
                 style: bool = True, outputs: OutputSet | None = None) -> None:
        self.path = Path(path)
        self.driver = vector_format(path)
        if self.driver == "GeoJSON" and crs is None:
            raise InputError(
                f"{path}: the scene has no georeference, so polygons are in pixel coordinates and"
                " cannot be written as RFC 7946 GeoJSON; write a .gpkg instead"
            )
        self.crs, self.overwrite, self.layer, self.style = crs, overwrite, layer, style
        self._outputs = outputs
        self.count = 0
        self._started = False  # something is in the file already
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> VectorWriter:
        if self._outputs is not None:
            self._tmp = self._outputs.add(self.path)
        else:
            self._tmp = self._stack.enter_context(atomic_output(self.path, self.overwrite))
        if self.driver == "GeoJSON":
            self._fh = self._stack.enter_context(open(self._tmp, "w", encoding="utf-8"))
            self._fh.write('{"type": "FeatureCollection", "features": [\n')
        return self

    def write(self, gdf: gpd.GeoDataFrame) -> None:
        if self.driver == "GeoJSON":
            self._write_geojson(gdf)
        elif len(gdf) or not self._started:
            self._write_gpkg(gdf)
        self.count += len(gdf)

    def _write_geojson(self, gdf: gpd.GeoDataFrame) -> None:
        if not len(gdf):
            return
        wgs84 = gdf.to_crs(4326)
        props = [c for c in wgs84.columns if c != wgs84.geometry.name]
        # exteriors counter-clockwise, holes clockwise; coordinates rounded, all in arrays
        geoms = shapely.transform(shapely.orient_polygons(wgs84.geometry.values), lambda xy: xy.round(DECIMALS))
        for row, geom in zip(wgs84[props].itertuples(index=False), geoms):
            feature = {"type": "Feature", "properties": {k: _value(v) for k, v in zip(props, row)},
                       "geometry": mapping(geom)}
            self._fh.write((",\n" if self._started else "") + json.dumps(feature, separators=(",", ":")))
            self._started = True

    def _write_gpkg(self, gdf: gpd.GeoDataFrame) -> None:
        import pyogrio

        with warnings.catch_warnings():
            # pixel-coordinate polygons have no CRS on purpose; pyogrio would warn about it
            warnings.filterwarnings("ignore", message="'crs' was not provided")
            # GeoPackage 1.2: QGIS 3.22 warns that 1.4 (GDAL's default now) "may only be partially supported"
            options = {} if self._started else {"dataset_options": {"VERSION": "1.2"}}
            pyogrio.write_dataframe(gdf, self._tmp, layer=self.layer, driver="GPKG", geometry_type="Polygon",
                                    append=self._started, **options)
        self._started = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self.driver == "GeoJSON":
                self._fh.write("\n]}\n")
            elif self.style:
                from geoseg.style import embed_in_geopackage

                embed_in_geopackage(self._tmp, self.layer)
        self._stack.__exit__(exc_type, exc, tb)


def write_vectors(gdf: gpd.GeoDataFrame, path: str | os.PathLike, overwrite: bool = False,
                  layer: str = "roofs") -> Path:
    """Write ``gdf`` to ``path`` (format from the suffix); the file appears whole or not at all."""
    with VectorWriter(path, gdf.crs, overwrite, layer) as writer:
        writer.write(gdf)
    return Path(path)
