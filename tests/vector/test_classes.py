"""Polygons of several classes: each pixel its most probable class, each class traced."""

import numpy as np

from geoseg.config import VectorizeOptions
from geoseg.evaluation.metrics import Confusion
from geoseg.vector.classes import ClassStreams, class_ids
from tests.conftest import write_tif


def test_each_pixel_takes_its_most_probable_class_background_included():
    bands = np.array([[[200, 60, 10]], [[30, 100, 20]]], np.uint8)  # classes 1, 2 over three pixels
    assert class_ids(bands).tolist() == [[1, 2, 0]]  # the last: background holds 225


def test_class_streams_trace_each_class_with_its_name(tmp_path):
    grid = write_tif(tmp_path / "grid.tif", np.zeros((1, 40, 60), np.uint8))
    bands = np.zeros((2, 40, 60), np.uint8)
    bands[0, 5:15, 5:20] = 220  # a roof
    bands[1, 20:35, 30:55] = 230  # a road
    bands[0, 22:30, 40:50] = 10  # inside the road, roof is less likely: road it stays
    streams = ClassStreams(grid, ("background", "roof", "road"), VectorizeOptions(min_area=0))
    table = streams.feed(0, bands)
    last = streams.close()
    names = [*table.columns["class"], *last.columns["class"]]
    assert sorted(names) == ["road", "roof"]
    assert list(last.columns)[:2] == ["id", "class"] or list(table.columns)[:2] == ["id", "class"]


def test_a_confusion_scores_each_class_and_their_mean():
    truth = np.array([0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 2, 2, 2, 0])
    c = Confusion.of(pred, truth, 3)
    assert c.matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]
    assert c.counts(1).iou == 0.5 and abs(c.counts(2).iou - 0.5) < 1e-12 and c.iou == 0.5
    assert (c + c).matrix.sum() == 12


def test_class_thresholds_pick_the_most_probable_class_that_reaches_its_own():
    from geoseg.vector.classes import class_cuts

    names = ("background", "roof", "road", "water")
    bands = np.array([[[120, 100, 40, 0]],   # roof
                      [[90, 80, 60, 0]],     # road
                      [[0, 30, 20, 0]]], np.uint8)  # water; background 45, 45, 135, 255
    assert class_ids(bands).tolist() == [[1, 1, 0, 0]]
    assert class_ids(bands, class_cuts(names, None)).tolist() == [[1, 1, 0, 0]]  # no thresholds: the argmax
    # none named: each class must beat background, the same as the argmax
    assert np.array_equal(class_ids(bands, np.full(3, -1, np.int16)), class_ids(bands))
    # roof must reach 0.45 (115): the first pixel stays roof, the second goes to road (which beats background)
    assert class_ids(bands, class_cuts(names, (("roof", 0.45),))).tolist() == [[1, 2, 0, 0]]
    # road at 0.2 (51): the third pixel is road, though background is more probable there
    assert class_ids(bands, class_cuts(names, (("road", 0.2),))).tolist() == [[1, 1, 2, 0]]
    # every class out of reach: background
    assert class_ids(bands, class_cuts(names, (("roof", 0.9), ("road", 0.9)))).tolist() == [[0, 0, 0, 0]]


def test_class_thresholds_name_classes_of_a_model_of_several():
    import pytest

    from geoseg.config import VectorizeOptions
    from geoseg.errors import InputError
    from geoseg.vector.classes import class_cuts

    with pytest.raises(InputError, match="choose of roof, road"):
        class_cuts(("background", "roof", "road"), (("rood", 0.3),))
    with pytest.raises(InputError, match="two-class model takes `threshold`"):
        class_cuts(("background", "roof"), (("roof", 0.3),))
    with pytest.raises(InputError, match="between 0 and 1"):
        VectorizeOptions(class_thresholds=(("road", 1.5),))
