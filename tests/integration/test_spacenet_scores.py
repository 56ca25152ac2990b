"""The SpaceNet 2 building challenge's own scores, reproduced exactly from its CSVs."""

import csv
from collections import defaultdict

import pytest
import shapely.wkt

from geoseg.evaluation.metrics import Counts, match_objects
from tests.conftest import SPACENET

pytestmark = pytest.mark.skipif(
    not SPACENET.is_dir(),
    reason=f"{SPACENET} absent: the SpaceNet golden cases come beside a developer's checkout only",
)


def polygons(name):
    by_image = defaultdict(list)
    for row in csv.DictReader(open(SPACENET / name)):
        geom = shapely.wkt.loads(row["PolygonWKT_Pix"])
        by_image[row["ImageId"]]  # an image with "POLYGON EMPTY" has no buildings, but exists
        if not geom.is_empty:
            by_image[row["ImageId"]].append((geom, float(row.get("Confidence") or 0)))
    return by_image


@pytest.fixture(scope="module")
def per_image():
    truth, preds = polygons("SN2_sample_truth.csv"), polygons("SN2_sample_preds.csv")
    scores = {}
    for image in set(truth) | set(preds):
        p, t = preds.get(image, []), truth.get(image, [])
        scores[image] = match_objects([g for g, _ in p], [g for g, _ in t], [c for _, c in p],
                                      threshold=0.5, min_area=20).counts
    return scores


def test_per_image_scores(per_image):
    rows = list(csv.DictReader(open(SPACENET / "SN2_test_results_full.csv")))
    assert rows
    for row in rows:
        c = per_image[row["imageID"]]
        assert (c.tp, c.fp, c.fn) == (int(row["TruePos"]), int(row["FalsePos"]), int(row["FalseNeg"])), row["imageID"]
        assert c.f1 == pytest.approx(float(row["F1Score"]), abs=1e-12)
        assert c.precision == pytest.approx(float(row["Precision"]), abs=1e-12)
        assert c.recall == pytest.approx(float(row["Recall"]), abs=1e-12)
    empty = per_image["AOI_5_Khartoum_img463"]
    assert (empty.tp, empty.fp, empty.fn, empty.f1) == (0, 0, 0, 0.0)


def test_per_area_totals(per_image):
    totals = defaultdict(Counts)
    for image, c in per_image.items():
        totals[image.rsplit("_img", 1)[0]] += c
    expected = list(csv.DictReader(open(SPACENET / "SN2_test_results.csv")))
    for aoi, row in zip(["AOI_2_Vegas", "AOI_5_Khartoum"], expected):
        c = totals[aoi]
        assert (c.tp, c.fp, c.fn) == (int(row["TruePos"]), int(row["FalsePos"]), int(row["FalseNeg"])), aoi
        assert c.f1 == pytest.approx(float(row["F1Score"]), abs=1e-12)
    assert round(totals["AOI_2_Vegas"].f1, 5) == 0.88608 and round(totals["AOI_5_Khartoum"].f1, 5) == 0.44444


def test_best_iou_per_true_building():
    rows = list(csv.DictReader(open(SPACENET / "SN2_sample_iou_by_building.csv")))
    preds = polygons("SN2_sample_preds.csv")
    checked = 0
    for row in rows:
        t = shapely.wkt.loads(row["PolygonWKT_Pix"])
        best = max((t.intersection(p).area / t.union(p).area for p, _ in preds[row["ImageId"]]), default=0.0)
        if float(row["iou_score"]) > 0:
            checked += 1
            assert best == pytest.approx(float(row["iou_score"]), abs=1e-9)
    assert checked > 50
