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
