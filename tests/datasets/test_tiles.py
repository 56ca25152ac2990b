import numpy as np
import pytest
from PIL import Image

from geoseg.datasets.tiles import TileDataset, band_statistics, find_pairs, load_samples
from geoseg.errors import InputError
from tests.conftest import write_tif


def png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_both_layouts_and_mixed_formats(tmp_path, labelled):
    assert [p.image.stem for p in find_pairs(labelled)] == ["t0", "t1", "t2", "t3"]
    png(tmp_path / "p" / "train_X" / "a.png", np.zeros((8, 8, 3), np.uint8))
    png(tmp_path / "p" / "train_Y" / "a.png", np.zeros((8, 8), np.uint8))
    write_tif(tmp_path / "p" / "train_X" / "b.tif", np.zeros((3, 8, 8), np.uint8))
    png(tmp_path / "p" / "train_Y" / "b.png", np.full((8, 8), 255, np.uint8))
    pairs = find_pairs(tmp_path / "p")
    assert [(p.image.name, p.mask.name) for p in pairs] == [("a.png", "a.png"), ("b.tif", "b.png")]


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "expected sub-folders"),
    (lambda d: ((d / "images").mkdir(), (d / "masks").mkdir()), "no images"),
    (lambda d: (png(d / "images" / "a.png", np.zeros((8, 8, 3), np.uint8)), (d / "masks").mkdir()),
     "a.png: has no mask"),
    (lambda d: (png(d / "images" / "a.png", np.zeros((8, 8, 3), np.uint8)),
                png(d / "masks" / "a.png", np.zeros((8, 8), np.uint8)),
                png(d / "masks" / "z.png", np.zeros((8, 8), np.uint8))), "z.png: mask with no image"),
])
def test_bad_folders_are_named_in_the_error(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(InputError, match=message):
        find_pairs(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        find_pairs(tmp_path / "nope")


def test_mask_of_another_size_is_refused(tmp_path):
    png(tmp_path / "images" / "a.png", np.zeros((8, 8, 3), np.uint8))
    png(tmp_path / "masks" / "a.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(InputError, match="masks must match their images"):
        load_samples(find_pairs(tmp_path))


def test_training_items_are_tiles_and_validation_items_whole_images(labelled):
    samples, scale = load_samples(find_pairs(labelled), weight_maps=True)
    assert scale == 255.0 and samples[0].mask.max() == 1 and samples[0].weight is not None
    norm = band_statistics(samples, scale)
    pixels = np.concatenate([s.image.reshape(3, -1) for s in samples], axis=1)  # the statistics, measured
    assert np.allclose(norm.mean, pixels.mean(axis=1), atol=1e-6) and np.allclose(norm.std, pixels.std(axis=1),
                                                                                  atol=1e-6)
    train = TileDataset(samples, norm, tile_size=32, multiple=4, transform=lambda x: x, length=10)
    item = train[7]
    assert len(train) == 10 and item["image"].shape == (3, 32, 32) and item["target"].shape == (32, 32)
    val = TileDataset(samples[:1], norm, tile_size=32, multiple=24)
    item = val[0]
    assert item["image"].shape == (3, 72, 72)  # 64 padded up to a multiple of 24
    assert item["valid"][:64, :64].all() and not item["valid"][64:].any()
    assert abs(float(item["image"][:, :64, :64].mean())) < 1.0  # normalised


def test_a_band_of_one_value_gets_a_std_of_one_not_a_division_by_zero(labelled):
    samples, scale = load_samples(find_pairs(labelled))
    for s in samples:
        s.image[1] = 0.25
    norm = band_statistics(samples, scale)
    assert norm.std[1] == 1.0 and norm.mean[1] == pytest.approx(0.25) and norm.std[0] != 1.0


def test_nodata_pixels_are_invalid_in_load_samples(labelled):
    import rasterio

    for p in sorted((labelled / "images").iterdir()):
        with rasterio.open(p) as src:
            data = src.read()
        data[:, :10, :] = 7  # a fill value in every band
        data[0, 10, :] = 7  # in one band only: still imagery
        write_tif(p, data)
    samples, _ = load_samples(find_pairs(labelled), nodata=7)
    for s in samples:
        assert not s.valid[:10].any() and s.valid[10:].all()
    assert all(s.valid is None for s in load_samples(find_pairs(labelled))[0])  # none asked, none found
