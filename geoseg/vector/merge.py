"""Roof polygons of several overlapping scenes → one layer, without duplicates.

Where scenes overlap, a roof is traced once per scene, and a roof that crosses a scene's
edge is traced there only in part. ``SceneMerger`` passes on at once every polygon that
lies away from the other scenes' footprints, and holds the rest. At the end, held
polygons of different scenes that overlap form groups; each group keeps the polygons of
the one scene that saw it furthest from its own edge (a roof cut by an edge loses to a
whole one, and of two whole ones, the one further from an edge wins, as in the tiles'
blending). When every scene saw the group cut by its edge, the pieces are joined into
one polygon: so also a roof across the shared edge of two adjacent scenes that do not
overlap. Memory holds only the polygons near other scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely import STRtree
from shapely.geometry import Polygon, box
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from geoseg.io.vectors import local_utm


@dataclass(frozen=True)
class Footprint:
    """A scene's extent and pixel side, both in the merged layer's CRS."""

    polygon: Polygon
    pixel: float


class SceneMerger:
    """Use: ``add`` each scene's polygon chunks (in ``crs``) with the scene's index, writing
    what it returns; then write what ``finish`` returns. Ids run 1…n over everything."""

    def __init__(self, footprints: list[Footprint], crs) -> None:
        self.footprints, self.crs = footprints, crs
        self._held: list[gpd.GeoDataFrame] = []
        self._next_id = 1
        self._eps = 0.01 * min(f.pixel for f in footprints)  # a hundredth of a pixel

    def add(self, chunk: gpd.GeoDataFrame, scene: int) -> gpd.GeoDataFrame:
        """Polygons of ``chunk`` (from scene index ``scene``) that no other scene can duplicate."""
        others = [f.polygon for k, f in enumerate(self.footprints) if k != scene]
        if not len(chunk) or not others:
            return self._number(chunk)
        near = np.zeros(len(chunk), bool)
        for other in others:
            near |= chunk.intersects(other).to_numpy()
        if near.any():
            held = chunk[near].copy()
            held["_scene"] = scene
            held["_depth"] = [self._depth(g, scene) for g in held.geometry]
            self._held.append(held)
        return self._number(chunk[~near])

    def finish(self) -> gpd.GeoDataFrame:
        """The held polygons, one per roof."""
        if not self._held:
            return self._number(gpd.GeoDataFrame(geometry=[], crs=self.crs))
        held = gpd.GeoDataFrame(pd.concat(self._held, ignore_index=True), crs=self.crs)
        geoms = held.geometry.values
        scenes, cut = held["_scene"].to_numpy(), held["_depth"].to_numpy() < 1.0
        tree = STRtree(geoms)
        a, b = tree.query(geoms, predicate="dwithin", distance=self._eps)
        # the same roof: pieces of two scenes that overlap, or two pieces cut by the edges of
        # adjacent scenes that meet along them (intersections of the candidate pairs, in arrays)
        other = scenes[a] != scenes[b]
        a, b = a[other], b[other]
        overlap = shapely.area(shapely.intersection(geoms[a], geoms[b])) > 0
        both_cut = cut[a] & cut[b] & ~overlap
        if both_cut.any():
            grown = shapely.buffer(geoms[a[both_cut]], self._eps)
            overlap[both_cut] = shapely.area(shapely.intersection(grown, geoms[b[both_cut]])) > 0
        cross = overlap
        n = len(geoms)
        graph = coo_matrix((np.ones(int(cross.sum())), (a[cross], b[cross])), shape=(n, n))
        _, group = connected_components(graph, directed=False)
        rows = []
        for g in np.unique(group):
            members = held[group == g]
            rows.append(self._resolve(members))
        out = gpd.GeoDataFrame(pd.concat(rows, ignore_index=True), crs=self.crs)
        return self._number(out.drop(columns=["_scene", "_depth"]))

    def _depth(self, geom, scene: int) -> float:
        """How far inside its own scene a polygon lies, in pixels (0: cut by the edge)."""
        f = self.footprints[scene]
        return float(f.polygon.exterior.distance(geom)) / f.pixel

    def _resolve(self, members: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        if members["_scene"].nunique() == 1:
            return members
        best = members.loc[members["_depth"].idxmax()]
        if best["_depth"] >= 1.0:  # a whole roof: keep what that scene saw
            return members[members["_scene"] == best["_scene"]]
        # every scene saw it cut by an edge: join the pieces
        # (grown and shrunk by a hair, so that pieces of adjacent scenes meet without a gap)
        joined = unary_union([g.buffer(self._eps, join_style="mitre") for g in members.geometry]).buffer(
            -self._eps, join_style="mitre")
        parts = [g for g in getattr(joined, "geoms", [joined]) if isinstance(g, Polygon) and g.area > 0]
        areas = members.geometry.area.to_numpy()
        score = float(np.average(members["score"], weights=areas if areas.sum() > 0 else None))
        row = members.iloc[[0]].copy()
        rows = gpd.GeoDataFrame(pd.concat([row] * len(parts), ignore_index=True), crs=self.crs)
        rows.geometry = [orient(p, 1.0) for p in parts]
        rows["score"] = round(score, 4)
        rows["scene"] = ";".join(sorted(set(members["scene"])))
        measure(rows)
        return rows

    def _number(self, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        gdf = gdf.reset_index(drop=True)
        if "id" in gdf:
            gdf["id"] = np.arange(self._next_id, self._next_id + len(gdf))
        self._next_id += len(gdf)
        return gdf


def measure(gdf: gpd.GeoDataFrame) -> None:
    """Recompute ``area_m2`` and ``perimeter_m`` in place (in a local UTM zone when geographic)."""
    metric = gdf if gdf.crs.is_projected else gdf.to_crs(local_utm(box(*gdf.total_bounds), gdf.crs))
    gdf["area_m2"] = metric.area.round(2).to_numpy()
    gdf["perimeter_m"] = metric.length.round(2).to_numpy()
