"""Polygons as arrays (``geoseg.table``): what tracing hands the writer instead of a frame per strip."""

import geopandas as gpd
import numpy as np
import rasterio.crs
import shapely

from geoseg.outputs.export import VectorWriter
from geoseg.vector.table import PolygonTable, reproject

UTM = rasterio.crs.CRS.from_epsg(25832)


def table() -> PolygonTable:
    geoms = np.array([shapely.box(356_000, 5_646_000, 356_010, 5_646_020),
                      shapely.Polygon([(356_000, 5_646_000), (356_005, 5_646_000), (356_005, 5_646_005)])],
                     dtype=object)
    columns = {"id": np.array([1, 2]), "area_m2": np.array([200.0, 12.5]), "perimeter_m": np.array([60.0, 17.07]),
               "score": np.array([0.9, 0.75]), "scene": np.array(["a.tif", "a.tif"], dtype=object)}
    return PolygonTable(geoms, columns, UTM)


def test_reprojecting_gives_geopandas_coordinates_and_leaves_the_same_crs_alone():
    t = table()
    for dst in ("EPSG:4326", "EPSG:3857"):
        ours = reproject(t.geometry, UTM, dst)
        theirs = gpd.GeoSeries(list(t.geometry), crs=UTM).to_crs(dst).values
        assert all(a.equals_exact(b, 0) for a, b in zip(ours, theirs))
        assert not ours[0].equals_exact(t.geometry[0], 1.0)  # moved
    assert reproject(t.geometry, UTM, UTM) is t.geometry  # exactly the same CRS: not transformed
    same = reproject(t.geometry, UTM, "EPSG:25832")  # the same CRS in other words: no coordinate moves
    assert all(a.equals_exact(b, 1e-6) for a, b in zip(same, t.geometry))


def test_a_table_and_its_frame_round_trip_and_concatenate():
    t = table()
    f = t.frame()
    assert list(f.columns) == ["id", "area_m2", "perimeter_m", "score", "scene", "geometry"] and f.crs == UTM
    back = PolygonTable.of(f)
    assert list(back.columns) == list(t.columns) and all(a.equals(b) for a, b in zip(back.geometry, t.geometry))
    both = PolygonTable.concat([t, back])
    assert len(both) == 4 and both.number(7) == 11 and both.columns["id"].tolist() == [7, 8, 9, 10]


def test_the_writer_writes_a_table_as_it_writes_its_frame(tmp_path):
    for name, polygons in (("table", table()), ("frame", table().frame())):
        with VectorWriter(tmp_path / f"{name}.geojson", UTM) as w:
            w.write(polygons)
    assert (tmp_path / "table.geojson").read_bytes() == (tmp_path / "frame.geojson").read_bytes()
    assert len(gpd.read_file(tmp_path / "table.geojson")) == 2
