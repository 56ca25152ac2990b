import numpy as np
import pytest

from geoseg.errors import InputError
from geoseg.samplers.grid import TileGrid


@pytest.mark.parametrize("h,w,size,overlap", [(1000, 777, 256, 32), (100, 50, 256, 32), (256, 256, 256, 0),
                                               (513, 512, 128, 16), (1, 1, 64, 8)])
def test_every_pixel_lies_in_exactly_one_core_and_far_from_an_edge(h, w, size, overlap):
    grid = TileGrid(h, w, size, overlap)
    cores = np.zeros((h, w), int)
    for r in range(grid.rows):
        for t in grid.row_tiles(r):
            r0, c0 = t.row_off + overlap, t.col_off + overlap
            cores[max(r0, 0) : r0 + grid.stride, max(c0, 0) : c0 + grid.stride] += 1
            # the core is `overlap` px inside the tile on every side
            assert r0 - t.row_off == overlap and t.row_off + size - (r0 + grid.stride) == overlap
    assert (cores == 1).all()


def test_first_tile_starts_one_margin_before_the_scene():
    grid = TileGrid(1000, 777, 256, 32)
    t = grid.tile(0, 0)
    assert (t.row_off, t.col_off) == (-32, -32)
    assert grid.cols == -(-777 // 192) and len(grid) == grid.rows * grid.cols
    assert grid.cost == pytest.approx((256 / 192) ** 2)


@pytest.mark.parametrize("h,w,size,overlap", [(0, 10, 64, 8), (10, 10, 64, 32), (10, 10, 64, -1)])
def test_bad_grids_are_refused(h, w, size, overlap):
    with pytest.raises(InputError):
        TileGrid(h, w, size, overlap)
