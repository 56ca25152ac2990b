"""Fixtures: tiny real GeoTIFFs with a real CRS, labelled folders, a tiny trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ROOFS = SHARED / "data" / "roofs"
SPACENET = SHARED / "data" / "spacenet-eval"

UTM32 = "EPSG:25832"


def write_tif(path, data, crs=UTM32, transform=None, nodata=None, **extra):
    """Write ``data`` ``(bands, rows, cols)`` or ``(rows, cols)`` as a GeoTIFF."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    transform = transform or Affine(0.3, 0, 356_000.0, 0, -0.3, 5_646_000.0)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform,
                       nodata=nodata, **extra) as dst:
        dst.write(data)
    return Path(path)


@pytest.fixture(scope="session")
def synth_task(tmp_path_factory):
    """A small synthetic task: 9 labelled 128 px tiles, a 384 px scene, its truth."""
    from geoseg.datasets.synth import write_dataset

    out = tmp_path_factory.mktemp("synth")
    return write_dataset(out, seed=5, tile_size=128, train_size=384, scene_size=384)


@pytest.fixture(scope="session")
def tiny_model(synth_task, tmp_path_factory):
    """A tiny U-Net trained for two short epochs: weights are real, quality is not the point."""
    from geoseg.config import TrainConfig
    from geoseg.train.loop import fit

    out = tmp_path_factory.mktemp("run") / "run"
    fit(TrainConfig(data_dir=str(synth_task["train"]), out_dir=str(out), epochs=2, batch_size=4, loss="softmax",
                    average=0, lr_min=1e-5,
                    tile_size=64, encoder="unet", depth=3, width=4, samples_per_epoch=8, lr_max=1e-3, seed=0),
                        progress=False)
    return out / "model.pt"


@pytest.fixture(scope="session")
def class_model(tmp_path_factory):
    """A tiny model of the five-class synthetic town and its scene: ``(model.pt, scene.tif)``."""
    from click.testing import CliRunner

    from geoseg.cli import main

    root = tmp_path_factory.mktemp("classes")
    data = root / "data"
    tiny = ["--encoder", "unet", "--depth", "3", "--width", "8", "--tile-size", "64", "--epochs", "3",
            "--time-limit", "0", "--samples-per-epoch", "8", "--quiet"]
    for args in (["synth", str(data), "--classes", "--train-size", "256", "--scene-size", "256", "--tile-size", "128"],
                 ["train", str(data / "train"), "--out", str(root / "run"), *tiny]):
        assert CliRunner().invoke(main, args).exit_code == 0
    return root / "run" / "model.pt", data / "scene.tif"


@pytest.fixture
def labelled(tmp_path):
    """A labelled folder of 4 pairs (images/ + masks/) as 64 px GeoTIFFs."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for i in range(4):
        mask = np.zeros((64, 64), np.uint8)
        mask[10:30, 12 + i : 40 + i] = 255
        img = rng.integers(0, 255, (3, 64, 64), dtype=np.uint8)
        img[:, mask > 0] = 200
        write_tif(tmp_path / "images" / f"t{i}.tif", img)
        write_tif(tmp_path / "masks" / f"t{i}.tif", mask)
    return tmp_path
