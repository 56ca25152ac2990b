import numpy as np
import pytest
from affine import Affine

from geoseg.errors import InputError
from geoseg.vectorize import VectorizeOptions, vectorize
from tests.conftest import write_tif

T = Affine(0.5, 0, 356_000.0, 0, -0.5, 5_646_000.0)  # 0.5 m pixels


def prob_raster(tmp_path, prob, crs="EPSG:25832"):
    return write_tif(tmp_path / "prob.tif", (np.asarray(prob) * 255).round().astype(np.uint8), crs=crs, transform=T)


def test_a_square_roof_becomes_one_polygon_of_the_right_area_and_place(tmp_path):
    p = np.zeros((100, 120))
    p[20:40, 30:70] = 0.9  # 20 × 40 px = 10 m × 20 m
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0))
    assert len(gdf) == 1 and gdf.crs.to_epsg() == 25832
    row = gdf.iloc[0]
    assert row.area_m2 == pytest.approx(200.0) and row.score == pytest.approx(0.9, abs=0.005)
    assert row.geometry.bounds == pytest.approx((356_015.0, 5_645_980.0, 356_035.0, 5_645_990.0))
    assert row.geometry.exterior.is_ccw and row.geometry.is_valid


def test_a_roof_across_strip_edges_is_one_polygon_with_the_right_area(tmp_path):
    p = np.zeros((100, 60))
    p[5:95, 10:20] = 1.0   # crosses every strip edge at rows 16, 32, 48, 64, 80
    p[30:50, 15:50] = 1.0  # a wing, so the roof is not a rectangle
    p[60:62, 40:43] = 1.0  # a speck, dropped by min area
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0, strip_rows=16))
    expected_px = 90 * 10 + 20 * 30
    assert len(gdf) == 1
    assert gdf.iloc[0].area_m2 == pytest.approx(expected_px * 0.25)
    whole = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0, strip_rows=1000))
    assert whole.iloc[0].geometry.equals(gdf.iloc[0].geometry)


def test_threshold_min_area_and_holes(tmp_path):
    p = np.zeros((60, 60))
    p[10:50, 10:50] = 0.8
    p[25:30, 25:30] = 0.0  # a hole
    p[2:4, 2:4] = 0.9      # 4 px: below the default 20 px
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0))
    assert len(gdf) == 1 and len(gdf.iloc[0].geometry.interiors) == 1
    assert not gdf.iloc[0].geometry.interiors[0].is_ccw
    assert len(vectorize(prob_raster(tmp_path, p), VectorizeOptions(threshold=0.85))) == 0
    assert len(vectorize(prob_raster(tmp_path, p), VectorizeOptions(min_area=0.5, simplify=0))) == 2


def test_no_crs_gives_pixel_polygons(tmp_path):
    p = np.zeros((30, 30))
    p[5:15, 5:25] = 1
    path = write_tif(tmp_path / "px.tif", (p * 255).astype(np.uint8), crs=None, transform=Affine.identity())
    gdf = vectorize(path, VectorizeOptions(simplify=0))
    assert gdf.crs is None and gdf.iloc[0].area_px2 == 200 and gdf.iloc[0].perimeter_px == 60
    assert gdf.iloc[0].geometry.bounds == (5, 5, 25, 15)


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": 1.2}, {"min_area": -1}])
def test_bad_options(kwargs):
    with pytest.raises(InputError):
        VectorizeOptions(**kwargs)


def test_perimeter_fill_holes_and_a_geographic_scene_measured_in_metres(tmp_path):
    p = np.zeros((60, 60))
    p[10:50, 10:50] = 0.8  # 20 m × 20 m at 0.5 m pixels
    p[25:27, 25:27] = 0.0  # a 1 m² hole
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0, fill_holes=2.0))
    row = gdf.iloc[0]
    assert len(row.geometry.interiors) == 0 and row.area_m2 == pytest.approx(400.0)
    assert row.perimeter_m == pytest.approx(80.0)
    # the same roof in a scene in WGS 84: areas and perimeters still in metres (local UTM)
    deg = Affine(5e-6, 0, 6.96, 0, -5e-6, 50.95)  # ~0.35 m × 0.56 m pixels near Cologne
    geo = write_tif(tmp_path / "geo.tif", (p * 255).astype(np.uint8), crs="EPSG:4326", transform=deg)
    g = vectorize(geo, VectorizeOptions(simplify=0)).iloc[0]
    assert g.area_m2 == pytest.approx(1596 * 5e-6 * 111_320 * 5e-6 * 111_320 * np.cos(np.radians(50.95)), rel=0.01)
    assert len(g.geometry.interiors) == 1
