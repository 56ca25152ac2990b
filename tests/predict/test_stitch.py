import numpy as np
import pytest
import torch

from geoseg.errors import InputError
from geoseg.predict.stitch import BLEND_WINDOWS, Stitcher, blend_window
from geoseg.samplers.grid import TileGrid


def stitch(field, size, overlap, window, per_tile=None):
    h, w = field.shape
    grid = TileGrid(h, w, size, overlap)
    out = np.full((h, w), np.nan, np.float32)
    rows_seen = []

    def sink(r0, rows):
        rows_seen.append((r0, rows.shape[0]))
        assert np.isnan(out[r0 : r0 + rows.shape[0]]).all(), "a row was emitted twice"
        out[r0 : r0 + rows.shape[0]] = rows

    padded = np.pad(field, size, mode="symmetric")
    st = Stitcher(grid, sink, window)
    for r in range(grid.rows):
        for t in grid.row_tiles(r):
            tile = padded[t.row_off + size : t.row_off + 2 * size, t.col_off + size : t.col_off + 2 * size]
            st.add(t, per_tile(t, tile) if per_tile else tile)
        st.end_row()
    return out, rows_seen


@pytest.mark.parametrize("window", sorted(BLEND_WINDOWS))
@pytest.mark.parametrize("h,w", [(1000, 777), (50, 40), (300, 300)])
def test_consistent_tiles_reconstruct_the_field_exactly(window, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    field = (np.sin(yy / 37.0) * np.cos(xx / 23.0)).astype(np.float32)
    out, rows = stitch(field, 128, 16, window)
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out, field, atol=1e-5)
    assert sum(n for _, n in rows) == h


def test_blending_favours_the_tile_centre():
    # each tile claims a constant equal to its column index; a pixel in the core of
    # tile c must come out closest to c.
    field = np.zeros((64, 400), np.float32)
    out, _ = stitch(field, 128, 32, "hann", per_tile=lambda t, tile: np.full_like(tile, t.col))
    stride = 64
    for col in range(400):
        owner = col // stride
        assert abs(out[10, col] - owner) < 0.5


def test_window_shapes_and_unknown_name():
    w = blend_window("hann", 64)
    assert w.shape == (64, 64) and (w > 0).all() and w[32, 32] == w.max()
    with pytest.raises(InputError, match="hann"):
        blend_window("gauss", 64)


@pytest.mark.parametrize("overlap", [0, 16, 40, 63])
def test_stitched_rows_are_the_weighted_means_to_the_last_bit(overlap):
    # the sums of weights, known in advance, are the floats that adding each tile's weights as
    # it comes gives: the same rows bit for bit as a whole-scene accumulation, however many
    # grid rows reach into one
    import torch

    rng = np.random.default_rng(3)
    h, w, size = 300, 170, 128
    grid = TileGrid(h, w, size, overlap)
    width = grid.cols * grid.stride + 2 * overlap
    acc = torch.zeros((grid.rows * grid.stride + 2 * overlap + size, width))
    wsum = torch.zeros_like(acc)
    weights = torch.from_numpy(blend_window("hann", size))
    tiles = {t: torch.from_numpy(rng.random((size, size), dtype=np.float32)) for r in range(grid.rows)
             for t in grid.row_tiles(r)}
    for t, p in tiles.items():
        y, x = t.row_off + overlap, t.col_off + overlap
        acc[y : y + size, x : x + size].addcmul_(p, weights)
    profile = torch.zeros((size, width))  # a grid row's weights, added up across
    for c in range(grid.cols):
        profile[:, c * grid.stride : c * grid.stride + size] += weights
    for r in range(grid.rows):
        wsum[r * grid.stride : r * grid.stride + size] += profile
    want = (acc / wsum)[overlap : overlap + h, overlap : overlap + w].numpy()
    out = np.zeros((h, w), np.float32)
    st = Stitcher(grid, lambda r0, rows: out.__setitem__(slice(r0, r0 + len(rows)), rows), "hann")
    for r in range(grid.rows):
        for t in grid.row_tiles(r):
            st.add(t, tiles[t])
        st.end_row()
    assert np.array_equal(out, want)


@pytest.mark.parametrize("width", [170, 9000])
def test_quantised_rows_are_the_float_rows_made_bytes(width):
    # the rows handed on as bytes (made a tile's final block at a time) are the float rows
    # clipped, scaled and rounded, byte for byte, and each emission is a new array
    rng = np.random.default_rng(5)
    h, size = 300, 128
    field = rng.random((h, width), dtype=np.float32) * 1.2 - 0.1  # beyond [0, 1] too: clipped
    floats, _ = stitch(field, size, 16, "hann")
    grid = TileGrid(h, width, size, 16)
    got, arrays = np.zeros((h, width), np.uint8), []

    def sink(r0, rows):
        assert rows.dtype == np.uint8
        arrays.append(rows)
        got[r0 : r0 + len(rows)] = rows

    padded = np.pad(field, size, mode="symmetric")
    st = Stitcher(grid, sink, "hann", quantise=255.0)
    for r in range(grid.rows):
        for t in grid.row_tiles(r):
            st.add(t, padded[t.row_off + size : t.row_off + 2 * size, t.col_off + size : t.col_off + 2 * size])
        st.end_row()
    want = (np.clip(floats, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    assert np.array_equal(got, want)
    assert len({id(a) for a in arrays}) == len(arrays) == grid.rows


def test_rows_made_bytes_on_a_device_are_the_bytes_made_on_the_host():
    # a GPU blends where the model ran and makes the rows bytes there (torch's cast, a band at
    # once): the same bytes as the host's chunks and numpy's cast (the device's steps run here on
    # the CPU; tests/predict/test_engine.py compares a real GPU's run where there is one)
    rng = np.random.default_rng(8)
    h, w, size = 200, 150, 64
    field = rng.random((h, w), dtype=np.float32) * 1.2 - 0.1
    grid = TileGrid(h, w, size, 8)
    padded = np.pad(field, size, mode="symmetric")
    outs = []
    for on_host in (True, False):
        out = np.zeros((h, w), np.uint8)
        st = Stitcher(grid, lambda r0, rows, o=out: o.__setitem__(slice(r0, r0 + len(rows)), rows), quantise=255.0)
        st.on_host = on_host
        for r in range(grid.rows):
            for t in grid.row_tiles(r):
                st.add(t, padded[t.row_off + size : t.row_off + 2 * size, t.col_off + size : t.col_off + 2 * size])
            st.end_row()
        outs.append(out)
    assert np.array_equal(*outs) and outs[0].any()


def test_rows_from_a_device_come_a_grid_row_late_and_all_by_the_flush():
    # from a device the rows are copied back while the next grid row's tiles are worked on, and
    # handed on a grid row late; a block of grid rows that ends before the scene's end gets its
    # last rows with ``flush`` (the device's steps run here on the CPU)
    h, w, size = 300, 90, 64
    grid = TileGrid(h, w, size, 8)
    field = np.random.default_rng(9).random((h, w), dtype=np.float32)
    padded = np.pad(field, size, mode="symmetric")
    got = []
    st = Stitcher(grid, lambda r0, rows: got.append((r0, rows.copy())), quantise=255.0)
    st.on_host = False
    handed = []
    for r in range(3):  # a block: the first three grid rows of six
        for t in grid.row_tiles(r):
            st.add(t, padded[t.row_off + size : t.row_off + 2 * size, t.col_off + size : t.col_off + 2 * size])
        st.end_row()
        handed.append(len(got))
    assert handed == [0, 1, 2]
    st.flush()
    assert [r0 for r0, _ in got] == [0, 40, 88] and sum(len(rows) for _, rows in got) == 3 * grid.stride - 8
    whole, _ = stitch(field, size, 8, "hann")
    want = (np.clip(whole, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    assert np.array_equal(np.concatenate([rows for _, rows in got]), want[: 3 * grid.stride - 8])


def test_tiles_come_left_to_right_and_a_grid_row_ends_whole():
    grid = TileGrid(300, 300, 128, 16)
    st = Stitcher(grid, lambda r0, rows: None)
    tile = np.zeros((128, 128), np.float32)
    with pytest.raises(ValueError, match="column 1 given where column 0"):
        st.add(grid.tile(0, 1), tile)
    st.add(grid.tile(0, 0), tile)
    with pytest.raises(ValueError, match="ended after 1 of its 4 tiles"):
        st.end_row()


def test_the_floats_across_the_scene_are_its_margin_rows_not_a_tile_height_of_them():
    # a wide scene's accumulation across its width is the rows a grid row carries down (two
    # margins), not a tile's height of them and its sums of weights: per class and column,
    # 64 floats rather than 512 and three times 512 shared
    def held(width):
        grid = TileGrid(1500, width, 512, 32)
        classes = []
        for _ in range(4):
            classes.append(Stitcher(grid, lambda r0, rows: None, quantise=255.0, like=classes[0] if classes else None))
        probs = np.random.default_rng(1).random((512, 512), dtype=np.float32)
        for r in range(grid.rows):
            for t in grid.row_tiles(r):
                for st in classes:
                    st.add(t, probs)
            for st in classes:
                st.end_row()
        assert classes[0].below.shape == (64, grid.cols * grid.stride + 64)
        tensors = {id(v): v for st in classes for v in [*vars(st).values(), *classes[0].wsums.values()]
                   if isinstance(v, torch.Tensor)}
        return sum(v.numel() * v.element_size() for v in tensors.values())

    per_column = (held(12000) - held(3000)) / 9000
    assert per_column <= 4 * 64 * 4 * 1.01  # four classes' margin rows of float32
