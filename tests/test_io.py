import contextlib

import numpy as np
import pytest
from PIL import Image

from geoseg.errors import GeosegWarning, OutputExistsError, RasterReadError
from geoseg.io import open_raster, read_mask, read_window, scene_info
from geoseg.outputs import atomic_output
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
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic_output(out):
            pass
    assert out.read_text() == "mine"
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new" and len(list(tmp_path.iterdir())) == 1
