"""Polygons with their attributes as arrays, in one CRS: what tracing hands on to the writer.

A GeoDataFrame per strip cost a pandas frame, a pyproj CRS and index work for every few
hundred polygons, all under Python's lock, beside the model (a quarter of the lock's time
in ``bench/beside.py``'s run). A ``PolygonTable`` is the geometries and columns alone;
``frame()`` makes the GeoDataFrame where one is needed (clipping, merging scenes, the
Python API), and ``reproject`` moves geometries with one cached pyproj transformer per
pair of CRSs, as geopandas' ``to_crs`` does (the same coordinates).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import shapely


@dataclass
class PolygonTable:
    """``geometry`` (shapely polygons) and ``columns`` (name → array, one value per polygon,
    in the order they are written) in ``crs`` (rasterio or pyproj; None: pixel
    coordinates)."""

    geometry: np.ndarray
    columns: dict[str, np.ndarray]
    crs: object = None

    def __len__(self) -> int:
        return len(self.geometry)

    def frame(self):
        """The table as a GeoDataFrame (the columns, then ``geometry``)."""
        import geopandas as gpd

        return gpd.GeoDataFrame(dict(self.columns), geometry=list(self.geometry), crs=self.crs)

    def number(self, first: int) -> int:
        """Ids ``first``… in the ``id`` column; returns the next id."""
        self.columns["id"] = np.arange(first, first + len(self), dtype=np.int64)
        return first + len(self)

    @classmethod
    def of(cls, gdf) -> PolygonTable:
        """A GeoDataFrame as a table (its columns but the geometry, in order)."""
        name = gdf.geometry.name
        columns = {c: gdf[c].to_numpy() for c in gdf.columns if c != name}
        return cls(np.asarray(gdf.geometry.to_numpy(), dtype=object), columns, gdf.crs)

    @classmethod
    def concat(cls, tables: list[PolygonTable]) -> PolygonTable:
        """One table of ``tables`` (at least one; the same columns and CRS)."""
        if len(tables) == 1:
            return tables[0]
        columns = {name: np.concatenate([t.columns[name] for t in tables]) for name in tables[0].columns}
        return cls(np.concatenate([t.geometry for t in tables]), columns, tables[0].crs)


@functools.lru_cache(maxsize=16)
def _transformer(src: str, dst: str):
    """A transformer from ``src`` to ``dst`` (None when they are exactly the same CRS)."""
    from pyproj import CRS, Transformer

    a, b = CRS.from_user_input(src), CRS.from_user_input(dst)
    return None if a.is_exact_same(b) else Transformer.from_crs(a, b, always_xy=True)


def _key(crs) -> str:
    return crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)


def reproject(geoms: np.ndarray, src, dst) -> np.ndarray:
    """``geoms`` from CRS ``src`` to ``dst`` (rasterio or pyproj CRSs, or text such as
    ``"EPSG:4326"``); as they are when the two are exactly the same."""
    transformer = _transformer(_key(src), _key(dst)) if len(geoms) else None
    return geoms if transformer is None else shapely.transform(geoms, transformer.transform, interleaved=False)
