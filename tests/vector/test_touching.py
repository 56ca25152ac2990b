"""Touching roofs cut apart at the probability's valleys (``geoseg.split``, ``--split``)."""

import numpy as np
import pytest
import shapely

from geoseg.config import SPLIT_SEED, VectorizeOptions, split_for
from geoseg.errors import InputError
from geoseg.vector.stream import vectorize
from geoseg.vector.touching import SEED_PX, split_components
from tests.vector.test_stream import prob_raster


def terrace(houses: int = 3, valley: float = 0.7) -> np.ndarray:
    """A row of ``houses`` 20 × 16 px roofs sharing walls, the probability dipping to
    ``valley`` along each shared wall (two pixels wide, as a model taught contacts draws it)."""
    p = np.zeros((60, 40 + 16 * houses))
    p[20:40, 20 : 20 + 16 * houses] = 0.95
    for k in range(1, houses):
        p[20:40, 20 + 16 * k - 1 : 20 + 16 * k + 1] = valley
    return p


def test_a_terrace_comes_apart_into_its_houses_which_share_their_walls(tmp_path):
    path = prob_raster(tmp_path, terrace(3))
    whole = vectorize(path, VectorizeOptions(simplify=0))
    houses = vectorize(path, VectorizeOptions(simplify=0, split=0.85))
    assert len(whole) == 1 and len(houses) == 3
    geoms = list(houses.geometry)
    assert all(g.is_valid for g in geoms)
    assert sum(g.area for g in geoms) == pytest.approx(whole.geometry.iloc[0].area)  # no pixel lost or doubled
    assert shapely.union_all(geoms).equals(whole.geometry.iloc[0])
    assert geoms[0].intersection(geoms[1]).length == pytest.approx(10.0)  # the shared wall: 20 px of 0.5 m
    assert geoms[0].intersection(geoms[2]).is_empty
    # each house ends on its valley: the first 16 px wide (15 + half the 2-px valley), give or take a pixel
    widths = sorted(round((g.bounds[2] - g.bounds[0]) / 0.5) for g in geoms)
    assert widths[0] >= 15 and widths[-1] <= 17
    assert houses.score.between(0.85, 0.95).all()


def test_split_off_or_unset_leaves_the_terrace_whole(tmp_path):
    path = prob_raster(tmp_path, terrace(3))
    assert len(vectorize(path, VectorizeOptions(split=0))) == 1
    assert len(vectorize(path, VectorizeOptions())) == 1  # None: no model here says otherwise


def test_a_roof_with_one_core_or_a_speck_of_high_probability_is_not_cut():
    p = np.zeros((40, 60), np.uint8)
    p[10:30, 10:50] = 200  # under the seed cut: no seed at all
    p[12:28, 12:30] = 250  # one core
    p[20, 45] = p[21, 45] = 250  # a second "core" of 2 px: eroded away, and under SEED_PX anyway
    labels = (p >= 128).astype(np.int32)
    assert split_components(p, labels, 1, 220) is None
    p[12:28, 36:48] = 250  # a second true core
    split, pieces = split_components(p, labels, 1, 220)
    assert split.tolist() == [False, True] and sorted(np.unique(pieces).tolist()) == [0, 1, 2]
    assert np.array_equal(pieces > 0, labels > 0)  # every pixel of the cut component goes to a piece
    assert SEED_PX > 2


def test_pieces_grow_alike_over_a_flat_stretch():
    # two cores either end of a long flat stretch between the cuts: the cut falls in its middle
    p = np.zeros((12, 60), np.uint8)
    p[2:10, 2:58] = 180
    p[2:10, 2:10] = p[2:10, 50:58] = 250
    labels = (p >= 128).astype(np.int32)
    split, pieces = split_components(p, labels, 1, 220)
    left = np.flatnonzero(pieces[5] == pieces[5, 5])
    assert 28 <= left.max() <= 31


def test_the_split_is_decided_by_the_model_unless_given():
    assert split_for(VectorizeOptions(), contact_gap=2).split == SPLIT_SEED
    assert split_for(VectorizeOptions(), contact_gap=0).split == 0.0
    assert split_for(VectorizeOptions(split=0.9), contact_gap=0).split == 0.9
    assert split_for(VectorizeOptions(split=0), contact_gap=2).split == 0


@pytest.mark.parametrize("value", [0.4, 0.5, 1.0, -0.2])
def test_a_split_seed_not_above_the_threshold_is_refused(value):
    with pytest.raises(InputError, match="`split` must be 0 .off. or a probability above `threshold`"):
        VectorizeOptions(split=value)
