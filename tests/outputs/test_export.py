import json
import math

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from geoseg.config import VectorizeOptions
from geoseg.errors import InputError, OutputExistsError
from geoseg.outputs.export import write_vectors
from geoseg.vector.stream import vectorize
from tests.conftest import write_tif


def meridian_latitude(northing: float) -> float:
    """Latitude of a point on a UTM central meridian, from the GRS80 meridian arc (no pyproj)."""
    a, f = 6378137.0, 1 / 298.257222101
    e2 = f * (2 - f)
    e4, e6 = e2 * e2, e2**3

    def arc(p):
        return a * ((1 - e2 / 4 - 3 * e4 / 64 - 5 * e6 / 256) * p
                    - (3 * e2 / 8 + 3 * e4 / 32 + 45 * e6 / 1024) * math.sin(2 * p)
                    + (15 * e4 / 256 + 45 * e6 / 1024) * math.sin(4 * p) - 35 * e6 / 3072 * math.sin(6 * p))

    lo, hi = 0.0, 1.5
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if arc(mid) < northing / 0.9996 else (lo, mid)
    return math.degrees(lo)


def test_a_roof_from_a_projected_scene_lands_at_the_right_longitude_and_latitude(tmp_path):
    # A scene in UTM 32N whose roof is centred on the zone's central meridian (9° E) at
    # northing 5 646 000 m: longitude must be 9° exactly, latitude that of the meridian arc.
    t = Affine(0.5, 0, 499_990.0, 0, -0.5, 5_646_010.0)
    prob = np.zeros((40, 40), np.uint8)
    prob[10:30, 10:30] = 255  # 10 m × 10 m centred on (500 000, 5 646 000)
    path = write_tif(tmp_path / "prob.tif", prob, crs="EPSG:25832", transform=t)
    gdf = vectorize(path, VectorizeOptions(simplify=0))
    out = write_vectors(gdf, tmp_path / "roofs.geojson")
    doc = json.loads(out.read_text())
    assert "crs" not in doc and len(doc["features"]) == 1
    feature = doc["features"][0]
    ring = np.array(feature["geometry"]["coordinates"][0])
    lon, lat = ring[:-1].mean(axis=0)
    assert lon == pytest.approx(9.0, abs=1e-7)
    assert lat == pytest.approx(meridian_latitude(5_646_000.0), abs=2e-7)  # ~2 cm
    x, y = ring[:, 0], ring[:, 1]
    assert 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) > 0  # RFC 7946: exterior counter-clockwise
    assert all(len(str(v).split(".")[1]) <= 7 for v in ring.ravel())  # ~1 cm, not 15 digits
    assert feature["properties"]["area_m2"] == pytest.approx(100.0)


def test_geopackage_keeps_the_scene_crs(tmp_path):
    gdf = gpd.GeoDataFrame({"id": [1]}, geometry=[box(356_000, 5_646_000, 356_010, 5_646_010)], crs="EPSG:25832")
    back = gpd.read_file(write_vectors(gdf, tmp_path / "r.gpkg"), layer="roofs")
    assert back.crs.to_epsg() == 25832 and back.geometry.iloc[0].equals(gdf.geometry.iloc[0])
    import sqlite3

    with sqlite3.connect(tmp_path / "r.gpkg") as db:  # GeoPackage 1.2, which QGIS 3.22 reads without a warning
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10200


def test_pixel_polygons_refuse_geojson_and_unknown_formats_are_named(tmp_path):
    gdf = gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 5, 5)], crs=None)
    with pytest.raises(InputError, match="write a .gpkg"):
        write_vectors(gdf, tmp_path / "r.geojson")
    with pytest.raises(InputError, match=".geojson, .json, .gpkg"):
        write_vectors(gdf, tmp_path / "r.shp")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_without_overwrite(tmp_path):
    gdf = gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 5, 5)], crs="EPSG:25832")
    out = tmp_path / "r.geojson"
    out.write_text("mine")
    with pytest.raises(OutputExistsError):
        write_vectors(gdf, out)
    assert out.read_text() == "mine"
    write_vectors(gdf, out, overwrite=True)
    assert json.loads(out.read_text())["type"] == "FeatureCollection"


def test_geojson_coordinates_from_arrays_read_as_pythons_own_json():
    """The array-made coordinates text equals json.dumps of the rounded coordinates, holes,
    signs, whole numbers and short decimals included; other geometries are left to json."""
    import json

    import shapely
    from shapely.geometry import MultiPolygon, Polygon, mapping

    from geoseg.outputs.export import DECIMALS, polygon_coordinates_json

    rng = np.random.default_rng(3)
    geoms = []
    for _ in range(200):
        x, y = rng.uniform(-179, 179), rng.uniform(-89, 89)
        d = rng.choice([1e-3, 0.5, 1.0])  # whole numbers and short decimals as well as long ones
        shell = [(x, y), (x + d, y), (x + d, y + d), (x, y + d)]
        hole = [(x + d / 4, y + d / 4), (x + d / 2, y + d / 4), (x + d / 2, y + d / 2)]
        geoms.append(Polygon(shell, [hole] if rng.random() < 0.5 else []))
    geoms += [Polygon([(-12.0, 7.0), (-12.5, 7.0), (-12.5, 7.25)]), MultiPolygon([geoms[0], geoms[3]])]
    geoms = shapely.transform(np.array(geoms, dtype=object), lambda xy: xy.round(DECIMALS))
    texts = polygon_coordinates_json(geoms)
    assert texts[-1] is None
    for g, text in zip(geoms[:-1], texts[:-1]):
        assert text == json.dumps(mapping(g)["coordinates"], separators=(",", ":"))


def test_properties_are_written_as_json_writes_them():
    import json

    import pandas as pd

    from geoseg.outputs.export import _value, properties_json

    frame = pd.DataFrame({"id": [1, 2, 3], "area_m2": [12.5, 0.1 + 0.2, float("nan")], "score": [1.0, 1e-7, 3.25],
                          "flag": [True, False, True], "scene": ["a.tif", "ünï \"q\"", None],
                          "big": [2**40, -3, 0]})
    expected = [json.dumps({k: _value(v) for k, v in zip(frame.columns, row)}, separators=(",", ":"))
                for row in frame.itertuples(index=False)]
    assert properties_json(frame, list(frame.columns)) == expected
