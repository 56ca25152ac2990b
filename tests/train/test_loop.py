"""Training as a tool: resume, determinism, Ctrl-C, pictures, cross-validation, odd data."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.config import TrainConfig
from geoseg.datasets.sources import kfold
from geoseg.errors import CheckpointError, InputError
from geoseg.train.loop import fit
from tests.conftest import write_tif

# every test here trains models (seconds each): the slow tier
pytestmark = pytest.mark.slow

TINY = dict(tile_size=32, encoder="unet", depth=3, width=4, batch_size=2, samples_per_epoch=4, lr_max=1e-3,
            lr_min=1e-5, seed=3,
            loss="softmax", average=0)


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_seeded_runs_are_identical_and_resume_continues_exactly(labelled, tmp_path):
    straight = fit(TrainConfig(str(labelled), str(tmp_path / "a"), epochs=4, **TINY), progress=False)
    again = fit(TrainConfig(str(labelled), str(tmp_path / "b"), epochs=4, **TINY), progress=False)
    assert same(weights(straight / "last.pt"), weights(again / "last.pt"))
    fit(TrainConfig(str(labelled), str(tmp_path / "c"), epochs=2, **TINY), progress=False)
    resumed = fit(TrainConfig(str(labelled), str(tmp_path / "c"), epochs=4, resume=True, **TINY), progress=False)
    assert same(weights(straight / "last.pt"), weights(resumed / "last.pt"))
    rows = (resumed / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert (resumed / "curves.png").stat().st_size > 0 and (resumed / "preview.png").stat().st_size > 0
    with pytest.raises(InputError, match="already trained 4 epochs"):  # not a silent no-op
        fit(TrainConfig(str(labelled), str(tmp_path / "c"), epochs=3, resume=True, **TINY), progress=False)


def test_tiles_prepared_in_loader_workers_train_alike_and_seeded_runs_stay_identical(labelled, tmp_path):
    """--loader-workers (on by itself on CUDA): the tiles come from worker processes, seeded from the
    run's own random stream, so two runs with one seed still give the same weights."""
    runs = [fit(TrainConfig(str(labelled), str(tmp_path / k), epochs=2, loader_workers=2, **TINY), progress=False)
            for k in ("a", "b")]
    assert same(weights(runs[0] / "last.pt"), weights(runs[1] / "last.pt"))
    plain = fit(TrainConfig(str(labelled), str(tmp_path / "c"), epochs=2, **TINY), progress=False)
    assert not same(weights(runs[0] / "last.pt"), weights(plain / "last.pt"))  # other tiles, same recipe


def test_average_is_the_mean_of_the_cycle_ends_with_its_batchnorm_measured_again(labelled, tmp_path):
    # 9 epochs: the learning rate is lowest at the ends of epochs 4 and 8
    run = fit(TrainConfig(str(labelled), str(tmp_path / "a"), epochs=9, **{**TINY, "average": 2}), progress=False)
    snaps = torch.load(run / "last.pt", weights_only=True)["snapshots"]
    assert len(snaps) == 2 and not same(snaps[0], snaps[1])
    state = torch.load(run / "model.pt", weights_only=True)
    assert state["metrics"]["averaged_cycles"] == 2 and "val_iou" in state["metrics"]
    avg = state["state_dict"]
    for k, v in avg.items():
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        assert torch.allclose(v, (snaps[0][k] + snaps[1][k]) / 2, atol=1e-6), k
    # the statistics were measured again with the mean weights: neither snapshot's, and plausible
    mean = avg["inc.1.running_mean"]
    assert not torch.allclose(mean, snaps[1]["inc.1.running_mean"])
    assert torch.isfinite(mean).all() and (avg["inc.1.running_var"] > 0).all()
    import rasterio

    from geoseg.models import checkpoint

    norm = checkpoint.load(run / "model.pt").norm
    images = []
    for p in sorted((labelled / "images").iterdir()):
        with rasterio.open(p) as src:
            images.append(src.read().astype(np.float32))
    x = (torch.from_numpy(np.stack(images)) / norm.scale - torch.tensor(norm.mean)[:, None, None]) \
        / torch.tensor(norm.std)[:, None, None]
    y = torch.nn.functional.conv2d(x, avg["inc.0.weight"], padding=1)  # what the first BatchNorm sees
    assert torch.allclose(mean, y.mean((0, 2, 3)), atol=0.1 * float(y.std()))
    # resuming keeps the snapshots: the same averaged model as the uninterrupted run
    fit(TrainConfig(str(labelled), str(tmp_path / "b"), epochs=6, **{**TINY, "average": 2}), progress=False)
    resumed = fit(TrainConfig(str(labelled), str(tmp_path / "b"), epochs=9, resume=True, **{**TINY, "average": 2}),
                  progress=False)
    assert same(avg, weights(resumed / "model.pt"))
    with pytest.raises(InputError, match="`average`"):
        TrainConfig(str(labelled), str(tmp_path / "c"), average=-1).check()


def test_resume_refuses_another_architecture_or_nothing_to_resume(labelled, tmp_path):
    fit(TrainConfig(str(labelled), str(tmp_path / "r"), epochs=1, **TINY), progress=False)
    other = {**TINY, "width": 8}
    with pytest.raises(CheckpointError, match="another architecture"):
        fit(TrainConfig(str(labelled), str(tmp_path / "r"), epochs=2, resume=True, **other), progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        fit(TrainConfig(str(labelled), str(tmp_path / "new"), epochs=2, resume=True, **TINY), progress=False)


def test_ctrl_c_saves_last_and_exits_130(synth_task, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}  # stacks on SIGABRT
    proc = subprocess.Popen(
        [sys.executable, "-m", "geoseg.cli", "train", str(synth_task["train"]), "--out", str(out), "--epochs", "1000",
         "--tile-size", "64", "--encoder", "unet", "--depth", "3", "--width", "4", "--samples-per-epoch", "8",
         "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # Ctrl-C as a terminal delivers it: a test run started in the background by a shell without job
        # control (``nohup … &``) ignores SIGINT, the child would inherit that, and Python then keeps it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (out / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hangs: every thread's stack (faulthandler), then stop it
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"no exit within 60 s of Ctrl-C; its threads:\n{err[-6000:]}")
    assert proc.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("Interrupted:") and "--resume" in lines[-1] and "Traceback" not in err
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] >= 1
    assert not list(out.glob(".*.part"))


def test_cross_validation_compares_losses_on_the_same_folds(labelled, tmp_path):
    r = CliRunner().invoke(main, [
        "cv", str(labelled), "--out", str(tmp_path / "cv"), "--folds", "2", "--loss", "dice,softmax",
        "--epochs", "1", "--tile-size", "32", "--encoder", "unet", "--depth", "3", "--width", "4",
        "--samples-per-epoch", "4"])
    assert r.exit_code == 0, r.output
    table = r.output.strip().splitlines()[-2:]
    assert table[0].split()[0] == "dice" and table[1].split()[0] == "softmax"
    assert len(table[0].split()) == 7  # loss, mean, std, mean F1, 2 folds, minutes
    assert (tmp_path / "cv" / "softmax" / "fold-1" / "model.pt").exists()


def test_cross_validation_with_tta_scores_the_held_out_images_with_it(labelled, tmp_path):
    import re

    from geoseg.config import TileOptions, TrainConfig
    from geoseg.datasets.sources import split_pairs
    from geoseg.evaluation.metrics import Counts
    from geoseg.evaluation.scoring import evaluate_model

    r = CliRunner().invoke(main, [
        "cv", str(labelled), "--out", str(tmp_path / "cv"), "--folds", "2", "--epochs", "8", "--tile-size", "32",
        "--encoder", "unet", "--depth", "3", "--width", "4", "--samples-per-epoch", "32", "--lr-max", "1e-2", "--tta",
        "--loss", "softmax", "--average", "0", "--lr-min", "1e-5"])
    assert r.exit_code == 0, r.output
    said = [float(v) for v in re.findall(r"held-out IoU (\S+)", r.output)]
    config = TrainConfig(data_dir=str(labelled), out_dir="", folds=2, fold=1, seed=0)
    held = split_pairs(config)[1]
    model = tmp_path / "cv" / "softmax" / "fold-1" / "model.pt"
    with_tta = sum((c for _, c in evaluate_model(model, held, tiles=TileOptions(tta=True))), Counts())
    plain = sum((c for _, c in evaluate_model(model, held)), Counts())
    assert round(plain.iou, 4) != round(with_tta.iou, 4)  # so the score says which one was made
    assert len(said) == 2 and said[1] == round(with_tta.iou, 4)


def test_folds_cover_every_pair_once():
    held = sorted(i for k in range(5) for i in kfold(23, 5, k, seed=1)[1])
    assert held == list(range(23))
    with pytest.raises(InputError, match="cannot make 5 folds"):
        kfold(4, 5, 0, 0)


def test_empty_masks_train_and_grey_masks_are_said_once(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_tif(tmp_path / "images" / f"{i}.tif", rng.integers(0, 255, (3, 32, 32), dtype=np.uint8))
        mask = np.zeros((32, 32), np.uint8)
        if i:
            mask[4:20, 4:20] = 200
            mask[4, 4:20] = 100  # anti-aliased edge
        write_tif(tmp_path / "masks" / f"{i}.tif", mask)
    r = CliRunner().invoke(main, ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--epochs", "1",
                                  "--tile-size", "32", "--encoder", "unet", "--depth", "3", "--width", "4",
                                  "--batch-size", "16", "--quiet"])
    assert r.exit_code == 0, r.output
    assert r.output.count("thresholded at 128") == 1
    import warnings

    from geoseg.errors import GeosegWarning
    from geoseg.evaluation.scoring import evaluate_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_model(tmp_path / "run" / "model.pt", tmp_path)  # two grey masks, one warning
    said = [str(w.message) for w in caught if issubclass(w.category, GeosegWarning)]
    assert len(said) == 1 and "thresholded at 128" in said[0]


def test_vector_labels_are_rasterised_onto_each_image_in_its_crs(synth_task, tmp_path):
    import geopandas as gpd

    from geoseg.datasets.tiles import find_vector_pairs, load_samples, rasterize_labels
    from geoseg.io.raster import read_mask

    images = synth_task["train"] / "images"
    truth = gpd.read_file(synth_task["truth"])  # EPSG:25832 polygons of the scene, not of the tiles
    # polygons handed over in WGS 84 land on the same pixels as in the scene's own CRS
    scene_mask = rasterize_labels(truth.to_crs(4326), synth_task["scene"])
    assert np.mean(scene_mask == rasterize_labels(truth, synth_task["scene"])) > 0.999
    # the training tiles' own truth, as polygons, reproduces their raster masks
    from rasterio import features

    from geoseg.io.raster import open_raster

    polys = []
    for p in sorted((synth_task["train"] / "masks").iterdir()):
        with open_raster(p) as src:
            m = src.read(1)
            polys += [shapely_shape(g) for g, v in features.shapes(m, mask=m > 0, transform=src.transform)]
    labels = gpd.GeoDataFrame(geometry=polys, crs="EPSG:25832").to_crs(4326)
    labels.to_file(tmp_path / "roofs.gpkg")
    pairs = find_vector_pairs(images, tmp_path / "roofs.gpkg")
    samples, _ = load_samples(pairs)
    for pair, sample in zip(pairs, samples):
        expected = read_mask(synth_task["train"] / "masks" / pair.image.name)
        assert np.mean(sample.mask == expected) > 0.995
    r = CliRunner().invoke(main, ["train", "--images", str(images), "--labels", str(tmp_path / "roofs.gpkg"),
                                  "--out", str(tmp_path / "run"), "--epochs", "1", "--tile-size", "64", "--encoder",
                                      "unet", "--depth", "3",
                                  "--width", "4", "--samples-per-epoch", "4", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", "--images", str(images), "--out", str(tmp_path / "r2")])
    assert r.exit_code != 0 and "--labels" in r.output


def shapely_shape(g):
    from shapely.geometry import shape

    return shape(g)
