import contextlib

import numpy as np
import pytest
import rasterio
from PIL import Image

from geoseg.errors import GeosegWarning, OutputExistsError, RasterReadError
from geoseg.io.raster import open_raster, read_mask, scene_info
from geoseg.io.windows import RowBands, read_window
from geoseg.outputs.atomic import atomic_output
from tests.conftest import write_tif


def test_window_past_the_edge_is_padded_by_reflection(tmp_path):
    data = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    p = write_tif(tmp_path / "a.tif", data)
    with open_raster(p) as src:
        win, valid = read_window(src, -4, 25, 16, 16, [1, 2, 3], with_valid=True)
    assert win.shape == (3, 16, 16) and win.dtype == np.float32
    np.testing.assert_array_equal(win[:, 4:, :5], data[:, 0:12, 25:30])
    np.testing.assert_array_equal(win[:, 3, :5], data[:, 0, 25:30])  # mirrored row above the scene
    assert not valid[:4].any() and not valid[:, 5:].any() and valid[4:, :5].all()


def test_nodata_pixels_are_invalid(tmp_path):
    data = np.full((1, 8, 8), 7, np.uint8)
    data[0, 2, 3] = 0
    p = write_tif(tmp_path / "n.tif", data, nodata=0)
    with open_raster(p) as src:
        _, valid = read_window(src, 0, 0, 8, 8, [1], with_valid=True)
    assert not valid[2, 3] and valid.sum() == 63


@pytest.mark.parametrize("layout", [dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate"),
                                    dict(blockysize=3), dict(blockysize=5, nodata=7), dict(float_nan=True),
                                    dict(mask=True)])
def test_row_bands_give_what_read_window_gives(tmp_path, layout):
    """Windows going down a scene, overlapping and past its edges, read through ``RowBands``
    equal ``read_window``'s, pixel and valid mask; the arrays handed out are never changed."""
    rng = np.random.default_rng(1)
    layout = dict(layout)
    float_nan, mask = layout.pop("float_nan", False), layout.pop("mask", False)
    data = rng.integers(0, 9, (3, 61, 45)).astype(np.float32 if float_nan else np.uint8)
    if float_nan:
        data[1, 10:14, 3:9] = np.nan
    p = write_tif(tmp_path / "s.tif", data, **layout)
    if mask:
        with rasterio.open(p, "r+") as dst:
            dst.write_mask(np.where(rng.random((61, 45)) < 0.2, 0, 255).astype(np.uint8))
        with open_raster(p) as src:
            assert not src.dataset_mask().all()
    for size, stride, col_off, width in [(16, 12, -2, 30), (24, 8, 20, 40), (61, 61, 0, 45), (20, 17, -5, 60),
                                         (24, 8, -50, 150)]:
        for nodata in (None, 0):
            with open_raster(p) as src:
                bands = RowBands(src, col_off, width, [3, 1], True, nodata, "float32")
                given = []
                for row_off in range(-size // 4, 61, stride):
                    got = bands.window(row_off, size)
                    want = read_window(src, row_off, col_off, size, width, [3, 1], True, nodata, "float32")
                    np.testing.assert_array_equal(got[0], want[0])
                    np.testing.assert_array_equal(got[1], want[1])
                    given.append((got, [a.copy() for a in got]))
                    # known whole: every pixel of the scene in it valid; a file with no mask, nodata or NaN is
                    r0, c0 = max(row_off, 0) - row_off, max(col_off, 0) - col_off
                    inside = want[1][r0 : r0 + min(row_off + size, 61) - max(row_off, 0),
                                     c0 : c0 + min(col_off + width, 45) - max(col_off, 0)]
                    assert inside.size and (inside.all() or not bands.whole(row_off, size))
                    if nodata is None and not mask and not float_nan and "nodata" not in layout:
                        assert bands.whole(row_off, size)
                for handed, copied in given:
                    for a, b in zip(handed, copied):
                        np.testing.assert_array_equal(a, b)


def test_row_bands_know_windows_with_no_missing_pixel(tmp_path):
    """Rows read with no nodata value in their first band are known whole without a look at
    every band; those holding missing pixels are not. Known by read (here a block row of 16:
    a window with rows of a read that held a 0 in the first band is not known whole)."""
    data = np.full((3, 100, 40), 7, np.uint8)
    data[:, 60:70, 5:9] = 0  # missing: every band holds the nodata value
    data[0, 10:12] = 0  # the first band alone at 0: valid, and no longer known whole
    p = write_tif(tmp_path / "s.tif", data, tiled=True, blockxsize=16, blockysize=16)
    with open_raster(p) as src:
        bands = RowBands(src, -4, 48, [1, 2, 3], True, 0, "uint8")
        whole = {row_off: bands.whole(row_off, 20) for row_off in range(-4, 100, 16) if bands.window(row_off, 20)}
    assert whole == {-4: False, 12: False, 28: True, 44: False, 60: False, 76: False, 92: True}


def test_row_bands_decode_each_block_once(tmp_path):
    """Overlapping windows 512 rows tall and 480 apart over 256-row blocks: each read starts
    where the last one ended, on a block row's edge."""
    p = write_tif(tmp_path / "s.tif", np.zeros((1, 2000, 64), np.uint8), tiled=True, blockxsize=256,
                  blockysize=256)
    with open_raster(p) as src:
        reads = []
        real = src.read

        def read(*a, **k):
            reads.append((k["window"].row_off, k["window"].height))
            return real(*a, **k)

        src.read = read
        bands = RowBands(src, -16, 96, [1], False, None, "uint8")
        for row_off in range(-16, 2000, 480):
            bands.window(row_off, 512)
    assert reads[0] == (0, 512) and all(r0 == a + h for (a, h), (r0, _) in zip(reads, reads[1:]))
    assert sum(h for _, h in reads) == 2000 and all(r0 % 256 == 0 for r0, _ in reads)


def test_png_has_no_georeference(tmp_path):
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "x.png")
    with open_raster(tmp_path / "x.png") as src:
        info = scene_info(src)
    assert not info.georeferenced and (info.width, info.height, info.count) == (12, 10, 3)


@pytest.mark.parametrize("values,expected", [([0, 1], [0, 1]), ([0, 255], [0, 1]), ([0, 127, 128, 255], [0, 0, 1, 1])])
def test_masks_are_thresholded_at_half(tmp_path, values, expected):
    p = write_tif(tmp_path / "m.tif", np.array([values], np.uint8))
    grey = any(v not in (0, 1, 255) for v in values)
    with pytest.warns(GeosegWarning, match="thresholded at 128") if grey else contextlib.nullcontext():
        assert read_mask(p)[0].tolist() == expected


def test_unreadable_rasters_give_one_line_errors(tmp_path):
    with pytest.raises(RasterReadError, match="no such file"):
        with open_raster(tmp_path / "missing.tif"):
            pass
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(RasterReadError, match="not a readable raster"):
        with open_raster(bad):
            pass
    noise = np.random.default_rng(0).integers(0, 255, (1, 512, 512), dtype=np.uint8)
    good = write_tif(tmp_path / "g.tif", noise, compress="deflate")
    truncated = tmp_path / "t.tif"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(RasterReadError):
        with open_raster(truncated) as src:
            read_window(src, 0, 0, 512, 512, [1])


def test_atomic_output_leaves_nothing_on_failure_and_keeps_existing_files(tmp_path):
    out = tmp_path / "o.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    out.write_text("mine")
    with pytest.raises(OutputExistsError, match="`overwrite`"):
        with atomic_output(out):
            pass
    assert out.read_text() == "mine"
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_rows_are_written_in_whole_block_rows_and_come_out_as_given(tmp_path):
    # rows come in bands that do not match the raster's blocks (a stride of 448 rows, blocks
    # of 256): they are held until a block row is whole, so GDAL never holds a half-written
    # compressed block; the raster holds exactly the rows given
    from geoseg.io.windows import BlockRowWriter

    rng = np.random.default_rng(2)
    data = rng.integers(0, 255, (2, 1000, 300), dtype=np.uint8)
    windows = []
    with rasterio.open(tmp_path / "p.tif", "w", driver="GTiff", width=300, height=1000, count=2, dtype="uint8",
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate") as dst:
        write = dst.write

        def spy(rows, window):
            windows.append((window.row_off, window.height))
            write(rows, window=window)

        dst.write = spy
        writer = BlockRowWriter(dst)
        for r0 in range(0, 1000, 448):
            writer.write(r0, data[:, r0 : r0 + 448])
        with pytest.raises(ValueError, match="rows from 5 written after rows to 1000"):
            writer.write(5, data[:, :5])
        writer.close()
    assert windows == [(0, 256), (256, 512), (768, 232)]  # every window starts and ends on a block row
    with rasterio.open(tmp_path / "p.tif") as src:
        assert np.array_equal(src.read(), data)


def test_strips_of_a_tiled_raster_are_whole_block_rows(tmp_path):
    from geoseg.io.raster import raster_strips

    path = tmp_path / "t.tif"
    with rasterio.open(path, "w", driver="GTiff", width=5000, height=3000, count=1, dtype="uint8", tiled=True,
                       blockxsize=256, blockysize=256) as dst:
        dst.write(np.arange(3000, dtype=np.uint8)[None, :, None].repeat(5000, 2))
    with rasterio.open(path) as src:
        strips = list(raster_strips(src))
    assert all(w.row_off % 256 == 0 for w, _ in strips) and len(strips) > 1
    assert sum(w.height for w, _ in strips) == 3000
