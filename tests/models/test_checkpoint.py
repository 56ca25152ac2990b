"""Models out of the box: the starter model, its card, prediction at the model's pixel size, fine-tuning."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geoseg.cli import main
from geoseg.config import TileOptions
from geoseg.evaluation.scoring import area_iou
from geoseg.jobs.predict import Outputs, run_predict
from geoseg.models import checkpoint
from tests.conftest import write_tif


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def model_03(tiny_model, tmp_path):
    """The tiny model, recorded as made for 0.3 m pixels (the synthetic towns' size)."""
    raw = torch.load(tiny_model, weights_only=True)
    torch.save({**raw, "gsd": 0.3}, tmp_path / "m03.pt")
    return tmp_path / "m03.pt"


def resampled_copy(scene, out, pixel):
    with rasterio.open(scene) as src:
        t, w, h = calculate_default_transform(src.crs, src.crs, src.width, src.height, *src.bounds, resolution=pixel)
        with rasterio.open(out, "w", **{**src.profile, "transform": t, "width": w, "height": h}) as dst:
            for b in range(1, src.count + 1):
                reproject(rasterio.band(src, b), rasterio.band(dst, b), resampling=Resampling.bilinear)
    return out


def test_a_finer_scene_is_predicted_at_the_model_pixel_size_and_comes_back_on_its_own_grid(model_03, synth_task,
                                                                                            tmp_path):
    fine = resampled_copy(synth_task["scene"], tmp_path / "fine.tif", 0.15)
    opts = TileOptions(tile_size=64, precision="fp32")
    native = run_predict(synth_task["scene"], model_03, Outputs(tmp_path / "n.gpkg", preview=False), opts)
    resampled = run_predict(fine, model_03, Outputs(tmp_path / "f.gpkg", prob=tmp_path / "fp.tif", preview=False),
                            opts)
    a, b = (gpd.read_file(r.out, layer="roofs") for r in (native, resampled))
    assert len(a) > 0 and area_iou(b, a) > 0.85  # the same roofs, in the same place
    with rasterio.open(tmp_path / "fp.tif") as p, rasterio.open(fine) as s:
        assert p.shape == s.shape and p.transform == s.transform and p.crs == s.crs


def test_a_scene_far_from_the_model_pixel_size_is_warned_about(model_03, synth_task, tmp_path):
    coarse = resampled_copy(synth_task["scene"], tmp_path / "coarse.tif", 1.5)
    with pytest.warns(UserWarning, match="1.5 m pixels, but the model was made for 0.3 m"):
        run_predict(coarse, model_03, Outputs(tmp_path / "c.gpkg", preview=False), TileOptions(tile_size=64))


def test_png_tiles_take_their_pixel_size_from_gsd(model_03, tmp_path):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    r = run("predict", tmp_path / "t.png", "--model", model_03, "--out", tmp_path / "r.gpkg", "--quiet",
            "--no-preview", "--gsd", "0.15", "--prob-out", tmp_path / "p.tif")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "p.tif") as p:
        assert p.shape == (96, 96)


def test_info_prints_a_models_card(tiny_model):
    r = run("info", tiny_model)
    assert r.exit_code == 0, r.output
    assert "3 band(s)" in r.output and "U-Net depth 3, width 4" in r.output and "validation" in r.output


@pytest.mark.skipif(not checkpoint.STARTER.is_file(), reason="no starter model made (scripts/make_starter.py)")
def test_predict_without_a_model_uses_the_starter_and_says_so(synth_task, tmp_path):
    r = CliRunner().invoke(main, ["predict", str(synth_task["scene"]), "--out", str(tmp_path / "roofs.geojson"),
                                  "--quiet", "--no-preview"])
    assert r.exit_code == 0, r.output
    assert "the starter model shipped with geoseg" in r.output and "roof polygons" in r.output
    card = run("info")
    assert "pixel size   0.3 m/px" in card.output and "held out reference tiles" in card.output


@pytest.mark.slow
def test_fine_tuning_starts_from_a_model_and_refuses_another_band_count(tiny_model, labelled, tmp_path):
    from geoseg.config import TrainConfig
    from geoseg.train.loop import fit

    start = checkpoint.load(tiny_model)
    run_dir = fit(TrainConfig(str(labelled), str(tmp_path / "ft"), epochs=1, tile_size=32, batch_size=2,
                              samples_per_epoch=2, init=str(tiny_model), lr_max=1e-12, lr_min=1e-12), progress=False)
    tuned = checkpoint.load(run_dir / "last.pt")
    assert tuned.model == start.model and tuned.norm == start.norm  # its network and normalisation carried over
    moved = max(float((tuned.state_dict[k].float() - v.float()).abs().max()) for k, v in start.state_dict.items()
                if "running" not in k and "num_batches" not in k)
    assert moved < 1e-6  # a learning rate of 1e-12: the weights are the start's
    four = tmp_path / "four"
    for sub in ("images", "masks"):
        (four / sub).mkdir(parents=True)
    for i in range(3):
        write_tif(four / "images" / f"{i}.tif", np.random.default_rng(i).integers(0, 255, (4, 32, 32), np.uint8))
        mask = np.zeros((32, 32), np.uint8)
        mask[4:12, 4:12] = 1
        write_tif(four / "masks" / f"{i}.tif", mask)
    r = run("train", four, "--out", tmp_path / "ft4", "--init", tiny_model, "--epochs", "1", "--tile-size", "32")
    assert r.exit_code != 0 and "a model of 3 band(s), but these images have 4" in r.output
