"""Scores against the truth, with predictions that differ from it: the numbers are worked out by hand."""

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from geoseg.evaluation.scoring import area_iou, object_scores, pixel_scores
from tests.conftest import write_tif

T = Affine(1.0, 0, 1000.0, 0, -1.0, 2000.0)  # 1 m pixels in EPSG:25832


def test_pixel_scores_count_the_thresholded_raster_against_rasterised_polygons(tmp_path):
    prob = np.zeros((10, 10), np.uint8)
    prob[0:4, 0:4] = 200  # predicted roof: 16 pixels, p = 0.78
    prob[0:4, 4:6] = 100  # p = 0.39: roof only below a threshold of 0.39
    path = write_tif(tmp_path / "p.tif", prob, transform=T)
    truth = gpd.GeoDataFrame(geometry=[box(1002, 1992, 1008, 2000)], crs="EPSG:25832")  # rows 0–7, cols 2–7
    c = pixel_scores(path, truth, threshold=0.5, rows=3)  # strips of 3 rows: the same counts as one
    assert (c.tp, c.fp, c.fn, c.tn) == (8, 8, 40, 44)
    assert c.iou == pytest.approx(8 / 56)
    c = pixel_scores(path, truth.to_crs(4326), threshold=0.3)  # the truth in another CRS, a lower cut
    assert (c.tp, c.fp) == (16, 8)


def test_object_scores_match_one_to_one_across_crs():
    truth = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)],
                             crs="EPSG:25832")
    pred = gpd.GeoDataFrame({"score": [0.9, 0.8, 0.7]},
                            geometry=[box(0, 0, 10, 9),  # IoU 0.9: a match
                                      box(20, 0, 24, 10),  # IoU 0.4: not a match
                                      box(100, 0, 110, 10)],  # nothing there
                            crs="EPSG:25832").to_crs(4326)
    m = object_scores(pred, truth)
    assert (m.counts.tp, m.counts.fp, m.counts.fn) == (1, 2, 2)
    assert m.pairs[0][:2] == (0, 0) and m.pairs[0][2] == pytest.approx(0.9, abs=1e-6)
    assert object_scores(pred, truth, threshold=0.35).counts.tp == 2


def test_area_iou_is_the_iou_of_the_covered_areas():
    truth = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs="EPSG:25832")
    pred = gpd.GeoDataFrame(geometry=[box(5, 0, 15, 10), box(6, 0, 8, 10)], crs="EPSG:25832")  # overlapping parts
    assert area_iou(pred, truth) == pytest.approx(50 / 150)
    assert area_iou(pred.to_crs(4326), truth) == pytest.approx(50 / 150, rel=1e-6)
    assert area_iou(gpd.GeoDataFrame(geometry=[], crs="EPSG:25832"), truth) == 0.0
