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
import functools
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import mapping

from geoseg.errors import InputError
from geoseg.outputs.atomic import OutputSet, atomic_output
from geoseg.vector.table import PolygonTable, reproject

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


@functools.lru_cache(maxsize=1024)
def _json_text(v) -> str:
    return json.dumps(v)


def _json_once(v) -> str:
    """``v`` as JSON; text and missing values (a scene's name on every row) made once."""
    return _json_text(v) if isinstance(v, (str, type(None))) else json.dumps(_value(v))


def properties_json(frame, names: list[str]) -> list[str]:
    """Each row's ``properties`` object (``frame``: a DataFrame, or a mapping of names to
    arrays) as ``json.dumps`` writes it (compact separators),
    made column by column: integers, floats (their ``repr``, as json writes finite ones)
    and booleans straight from the column's values, other values (text, missing) through
    json, each distinct value once."""
    columns = []
    for name in names:
        values = frame[name].tolist()
        key = json.dumps(name) + ":"
        kind = frame[name].dtype.kind
        if kind in "iu":
            texts = [key + str(v) for v in values]
        elif kind == "f":
            texts = [key + (repr(v) if math.isfinite(v) else json.dumps(v)) for v in values]
        elif kind == "b":
            texts = [key + ("true" if v else "false") for v in values]
        else:
            texts = [key + _json_once(v) for v in values]
        columns.append(texts)
    return ["{" + ",".join(row) + "}" for row in zip(*columns)] if columns else ["{}"] * len(frame)


class VectorWriter:
    """Write polygon chunks to one GeoJSON or GeoPackage file; use as a context manager.

    ``crs`` is the chunks' CRS (None: pixel coordinates, GeoPackage only). ``style``: embed
    the roof style (``outputs.style``), or this QGIS style text (or the text a function gives
    for each layer), in a GeoPackage as the layer's default. ``layer_by``: a GeoPackage layer
    per value of this column (the column left out), instead of ``layer``. ``outputs``:
    the run's ``OutputSet``, which then publishes the file with the run's other outputs;
    without it the file is published when the writer closes without error.
    """

    def __init__(self, path: str | os.PathLike, crs, overwrite: bool = False, layer: str = "roofs",
                 style: bool | str | Callable[[str], str] = True, outputs: OutputSet | None = None,
                 layer_by: str | None = None) -> None:
        self.path = Path(path)
        self.driver = vector_format(path)
        if self.driver == "GeoJSON" and crs is None:
            raise InputError(
                f"{path}: the scene has no georeference, so polygons are in pixel coordinates and"
                " cannot be written as RFC 7946 GeoJSON; write a .gpkg instead"
            )
        if layer_by is not None and self.driver != "GPKG":
            raise InputError(f"{path}: one layer per class needs a GeoPackage; give a .gpkg")
        self.crs, self.overwrite, self.layer, self.style = crs, overwrite, layer, style
        self.layer_by, self.layers = layer_by, []  # a layer per value of ``layer_by``, in the order they come
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

    def write(self, polygons: gpd.GeoDataFrame | PolygonTable) -> None:
        """Append ``polygons`` (a GeoDataFrame or a ``PolygonTable``, in the writer's CRS)."""
        if self.driver == "GeoJSON":
            self._write_geojson(polygons if isinstance(polygons, PolygonTable) else PolygonTable.of(polygons))
        elif len(polygons) or not self._started:
            self._write_gpkg(polygons.frame() if isinstance(polygons, PolygonTable) else polygons)
        self.count += len(polygons)

    def _write_geojson(self, table: PolygonTable) -> None:
        if not len(table):
            return
        # WGS 84; exteriors counter-clockwise, holes clockwise; coordinates rounded, all in arrays
        wgs84 = shapely.orient_polygons(reproject(table.geometry, table.crs, "EPSG:4326"))
        geoms = shapely.transform(wgs84, lambda xy: xy.round(DECIMALS))
        texts = polygon_coordinates_json(geoms)
        lines = []
        for properties, geom, text in zip(properties_json(table.columns, list(table.columns)), geoms, texts):
            if text is None:  # not a polygon (a multi-scene merge may join parts): the general way
                geometry = json.dumps(mapping(geom), separators=(",", ":"))
            else:
                geometry = '{"type":"Polygon","coordinates":' + text + "}"
            lines.append('{"type":"Feature","properties":' + properties + ',"geometry":' + geometry + "}")
        self._fh.write((",\n" if self._started else "") + ",\n".join(lines))
        self._started = True

    def _write_gpkg(self, gdf: gpd.GeoDataFrame) -> None:
        if self.layer_by is None:
            return self._write_layer(gdf, self.layer)
        for value, part in gdf.groupby(self.layer_by, sort=False):
            self._write_layer(part.drop(columns=self.layer_by), str(value))

    def _write_layer(self, gdf: gpd.GeoDataFrame, layer: str, empty: bool = False) -> None:
        import pyogrio

        if not len(gdf) and self.layer_by is not None and not empty:
            return
        with warnings.catch_warnings():
            # pixel-coordinate polygons have no CRS on purpose; pyogrio would warn about it
            warnings.filterwarnings("ignore", message="'crs' was not provided")
            # GeoPackage 1.2: QGIS 3.22 warns that 1.4 (GDAL's default now) "may only be partially supported"
            options = {} if self._started else {"dataset_options": {"VERSION": "1.2"}}
            pyogrio.write_dataframe(gdf, self._tmp, layer=layer, driver="GPKG", geometry_type="Polygon",
                                    append=layer in self.layers or (self._started and self.layer_by is None),
                                    **options)
        self._started = True
        if layer not in self.layers:
            self.layers.append(layer)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self.driver == "GeoJSON":
                self._fh.write("\n]}\n")
            else:
                if not self._started:  # nothing written: an empty layer, so the file is a GeoPackage
                    import geopandas as gpd

                    self._write_layer(gpd.GeoDataFrame(geometry=[], crs=self.crs), self.layer, empty=True)
                if self.style:
                    from geoseg.outputs.style import embed_in_geopackage

                    for layer in self.layers:
                        qml = self.style(layer) if callable(self.style) else self.style
                        embed_in_geopackage(self._tmp, layer, **({"qml": qml} if isinstance(qml, str) else {}))
        self._stack.__exit__(exc_type, exc, tb)


def _digit_table(width: int) -> tuple[np.ndarray, np.ndarray]:
    """ASCII digits ``(10**width, width)`` of 0…10**width − 1 with leading zeros, and the
    place of each number's last non-zero digit (−1 for 0)."""
    k = np.arange(10**width)
    digits = (k[:, None] // 10 ** np.arange(width - 1, -1, -1)) % 10
    nonzero = digits != 0
    last = np.where(nonzero.any(axis=1), width - 1 - np.argmax(nonzero[:, ::-1], axis=1), -1)
    return (digits + ord("0")).astype(np.uint8), last


_DIGITS3, _LAST3 = _digit_table(3)


_DIGITS4, _LAST4 = _digit_table(4)


def _number_chars(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Characters ``(n, 12)`` and which of them to keep, of numbers given as integers of
    1e-7 (|value| < 1000): as Python writes the rounded float (``-12.5``, ``7.0``,
    ``0.1234567``), sign, integer digits without leading zeros, at least one decimal.
    Digits come from tables (a gather per group of 3 or 4 digits, no division per digit)."""
    n = len(v)
    neg, a = v < 0, np.abs(v)
    whole = (a // 10**DECIMALS).astype(np.intp)
    frac = a - whole * 10**DECIMALS
    hi = (frac // 10**4).astype(np.intp)  # decimals 1-3
    lo = (frac - hi * 10**4).astype(np.intp)  # decimals 4-7
    chars = np.empty((n, 12), np.uint8)
    chars[:, 0], chars[:, 4] = ord("-"), ord(".")
    chars[:, 1:4], chars[:, 5:8], chars[:, 8:12] = _DIGITS3[whole], _DIGITS3[hi], _DIGITS4[lo]
    last = np.where(lo > 0, 3 + _LAST4[lo], np.maximum(_LAST3[hi], 0))  # the last decimal written
    keep = np.empty((n, 12), bool)
    keep[:, 0], keep[:, 1], keep[:, 2], keep[:, 3], keep[:, 4] = neg, whole >= 100, whole >= 10, True, True
    keep[:, 5:] = np.arange(DECIMALS)[None, :] <= last[:, None]
    return chars, keep


def polygon_coordinates_json(geoms: np.ndarray) -> list[str | None]:
    """The GeoJSON ``coordinates`` text of each polygon (``[[[x,y],…],[hole…]]``, numbers
    rounded to ``DECIMALS``, written as Python writes the rounded floats), made from
    coordinate arrays with no Python object per coordinate; None for a geometry that is not
    a polygon. Coordinates must be lon/lat (|value| < 1000)."""
    geoms = np.asarray(geoms, dtype=object)
    out: list[str | None] = [None] * len(geoms)
    is_poly = shapely.get_type_id(geoms) == 3
    if not is_poly.any():
        return out
    _, coords, (ring_end, poly_end) = shapely.to_ragged_array(geoms[is_poly])
    n = len(coords)
    v = np.rint(coords * 10**DECIMALS).astype(np.int64).ravel()
    num, keep = _number_chars(v)
    num, keep = num.reshape(n, -1), keep.reshape(n, -1)
    first_of_ring = np.zeros(n, bool)
    first_of_ring[ring_end[:-1]] = True
    first_of_poly = np.zeros(n, bool)
    first_of_poly[ring_end[poly_end[:-1]]] = True
    last_of_ring = np.zeros(n, bool)
    last_of_ring[ring_end[1:] - 1] = True
    last_of_poly = np.zeros(n, bool)
    last_of_poly[ring_end[poly_end[1:]] - 1] = True
    w = num.shape[1] // 2

    def col(ch: str, on=None):
        return np.full((n, 1), ord(ch), np.uint8), (np.ones((n, 1), bool) if on is None else on[:, None])

    parts = [col("[", first_of_poly), col("[", first_of_ring), col("["), (num[:, :w], keep[:, :w]), col(","),
             (num[:, w:], keep[:, w:]), col("]"), col("]", last_of_ring), col("]", last_of_poly),
             col(",", ~last_of_poly)]
    chars = np.concatenate([c for c, _ in parts], axis=1)
    kept = np.concatenate([k for _, k in parts], axis=1)
    text = chars[kept].tobytes().decode("ascii")
    ends = np.cumsum(kept.sum(axis=1))
    starts = np.concatenate([[0], ends[:-1]])
    coord_start, coord_end = ring_end[poly_end[:-1]], ring_end[poly_end[1:]]
    for i, a, b in zip(np.flatnonzero(is_poly), starts[coord_start], ends[coord_end - 1]):
        out[i] = text[a:b]
    return out


def write_vectors(gdf: gpd.GeoDataFrame, path: str | os.PathLike, overwrite: bool = False,
                  layer: str = "roofs") -> Path:
    """Write ``gdf`` to ``path`` (format from the suffix); the file appears whole or not at all."""
    with VectorWriter(path, gdf.crs, overwrite, layer) as writer:
        writer.write(gdf)
    return Path(path)
