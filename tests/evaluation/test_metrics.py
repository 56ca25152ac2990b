import numpy as np
import pytest
from shapely.geometry import box

from geoseg.evaluation.metrics import Counts, match_objects, pixel_counts


def test_pixel_scores():
    pred = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    c = pixel_counts(pred, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 1)
    assert c.iou == pytest.approx(1 / 3) and c.f1 == pytest.approx(0.5)
    assert Counts().iou == 0.0 and Counts().f1 == 0.0
    assert pixel_counts(pred, truth, valid=np.array([[1, 0, 0, 1]], bool)).tp == 1


def test_matching_is_one_to_one_at_iou_half():
    truth = [box(0, 0, 10, 10), box(20, 0, 30, 10)]
    pred = [box(0, 0, 10, 9), box(0, 0, 10, 8), box(20, 0, 24, 10), box(50, 50, 60, 60)]
    m = match_objects(pred, truth, scores=[0.5, 0.9, 0.7, 0.6])
    # the more confident of two overlapping predictions takes the roof; the other is a false positive
    assert (m.counts.tp, m.counts.fp, m.counts.fn) == (1, 3, 1)
    assert m.pairs[0][:2] == (1, 0)
    assert match_objects([], truth).counts.fn == 2 and match_objects(pred, []).counts.fp == 4
