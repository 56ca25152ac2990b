"""The command line as a user meets it: help, the main jobs, and every bad input."""

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from PIL import Image

from geoseg.cli import main
from tests.conftest import write_tif


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_help_does_not_import_torch():
    code = "import sys; from geoseg.cli import main; sys.argv=['geoseg','--help']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_predict_writes_geojson_gpkg_probability_and_preview(tiny_model, synth_task, tmp_path):
    scene = synth_task["scene"]
    r = run("predict", scene, "--model", tiny_model, "--out", tmp_path / "roofs.geojson",
            "--prob-out", tmp_path / "prob.tif", "--quiet", "--threshold", "0.3")
    assert r.exit_code == 0, r.output
    assert "roof polygons" in r.output and "EPSG:4326" in r.output
    doc = json.loads((tmp_path / "roofs.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert (tmp_path / "roofs.preview.png").stat().st_size > 0
    with Image.open(tmp_path / "roofs.preview.png") as im:
        assert im.size == (384, 384)
    r = run("predict", scene, "--model", tiny_model, "--out", tmp_path / "roofs.gpkg", "--quiet",
            "--no-preview", "--tile-size", "96", "--overlap", "8", "--batch-size", "3", "--precision", "fp32")
    assert r.exit_code == 0, r.output
    assert gpd.read_file(tmp_path / "roofs.gpkg", layer="roofs").crs.to_epsg() == 25832
    assert (tmp_path / "roofs.qml").exists()  # beside the GeoJSON; the GeoPackage carries its own
    r = run("predict", scene, "--model", tiny_model, "--out", tmp_path / "ahead.gpkg", "--quiet", "--no-preview",
            "--tile-size", "96", "--overlap", "8", "--batch-size", "3", "--precision", "fp32", "--prefetch",
            "--decode-threads", "2")
    assert r.exit_code == 0, r.output
    a, b = (gpd.read_file(tmp_path / n, layer="roofs") for n in ("roofs.gpkg", "ahead.gpkg"))
    assert len(a) == len(b) and a.geometry.geom_equals(b.geometry).all()

    with rasterio.open(tmp_path / "prob.tif") as p, rasterio.open(scene) as s:
        assert p.crs == s.crs and p.transform == s.transform and p.shape == s.shape


def test_png_scene_gives_pixel_coordinates(tiny_model, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    r = run("predict", tmp_path / "s.png", "--model", tiny_model, "--out", tmp_path / "r.gpkg", "--quiet")
    assert r.exit_code == 0, r.output
    assert "pixel coordinates" in r.output
    assert gpd.read_file(tmp_path / "r.gpkg", layer="roofs").crs is None


def test_train_writes_a_run_folder_and_refuses_to_reuse_it(labelled, tmp_path):
    out = tmp_path / "run"
    args = ["train", labelled, "--out", out, "--epochs", "2", "--tile-size", "32", "--encoder", "unet", "--depth", "3",
            "--width", "4", "--batch-size", "2", "--samples-per-epoch", "4", "--quiet", "--loss", "pixel-softmax"]
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert {"model.pt", "last.pt", "metrics.csv", "config.json"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())  # its TrainConfig fields rebuild the run
    assert config["norm"] == "batch" and config["loss"] == "pixel-softmax" and len(config["band_stats"]["mean"]) == 3
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 3
    state = torch.load(out / "model.pt", weights_only=True)
    assert state["model_config"]["depth"] == 3 and len(state["norm"]["mean"]) == 3 and state["tile_size"] == 32
    before = (out / "metrics.csv").read_text()
    assert_one_line_error(run(*args), "run folder exists", "--overwrite")
    assert (out / "metrics.csv").read_text() == before
    assert run(*args, "--overwrite").exit_code == 0


def bad_pairs(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_tif(tmp_path / "images" / "a.tif", np.zeros((3, 32, 32), np.uint8))
    write_tif(tmp_path / "masks" / "a.tif", np.zeros((1, 32, 30), np.uint8))
    return tmp_path


G = "o.geojson"


@pytest.mark.parametrize("make_args,fragments", [
    (lambda t, m, s: ["train", t / "nope", "--out", t / "r"], ["no such folder"]),
    (lambda t, m, s: ["train", t, "--out", t / "r"], ["expected sub-folders images/ + masks/"]),
    (lambda t, m, s: ["train", bad_pairs(t), "--out", t / "r", "--val-fraction", "0"], ["a.tif", "masks must match"]),
    (lambda t, m, s: ["train", bad_pairs(t), "--out", t / "r"], ["one labelled pair cannot be split"]),
    (lambda t, m, s: ["train", bad_pairs(t), "--out", t / "r", "--loss", "focal"], ["unknown loss", "dice"]),
    (lambda t, m, s: ["train", bad_pairs(t), "--out", t / "r", "--tile-size", "100"], ["multiple of 32"]),
    (lambda t, m, s: ["train", bad_pairs(t), "--out", t / "r", "--loader-workers", "-1"], ["workers must be 0"]),
    (lambda t, m, s: ["predict", t / "missing.tif", "--model", m, "--out", t / G], ["missing.tif", "no such file"]),
    (lambda t, m, s: ["predict", s, "--model", t / "none.pt", "--out", t / G], ["none.pt", "no such checkpoint"]),
    (lambda t, m, s: ["predict", s, "--model", s, "--out", t / G], ["not a geoseg checkpoint"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / "o.shp"], ["unknown vector format"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / G, "--bands", "1,2,9"], ["band 9 out of range"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / G, "--bands", "1,2"], ["trained on 3"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / G, "--bands", "a"], ["--bands"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / G, "--overlap", "300"], ["overlap"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / G, "--blend", "x"], ["--blend", "hann", "linear"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / "no" / "o.geojson"], ["does not exist"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / G, "--trace-threads", "-1"], ["threads must be 0"]),
    (lambda t, m, s: ["predict", s, "--model", m, "--out", t / G, "--split", "0.3"], ["--split must be 0", "above"]),
    (lambda t, m, s: ["predict", s, "--out", t / G, "--split", "0.3"], ["--split must be 0", "above"]),  # no --model
])
def test_bad_inputs_give_one_line_errors_and_no_output(make_args, fragments, tiny_model, synth_task, tmp_path):
    args = make_args(tmp_path, tiny_model, synth_task["scene"])
    before = set(tmp_path.rglob("*"))
    assert_one_line_error(run(*args), *fragments)
    assert set(tmp_path.rglob("*")) == before  # nothing written


def test_unreadable_scene_and_png_to_geojson(tiny_model, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    assert_one_line_error(run("predict", bad, "--model", tiny_model, "--out", tmp_path / "o.geojson"),
                          "bad.tif", "not a readable raster")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "s.png")
    assert_one_line_error(run("predict", tmp_path / "s.png", "--model", tiny_model, "--out", tmp_path / "o.geojson"),
                          "no georeference", ".gpkg")
    assert not (tmp_path / "o.geojson").exists()


def test_a_model_taught_contacts_cuts_touching_roofs_apart_and_says_so(tiny_model, synth_task, tmp_path):
    state = torch.load(tiny_model, map_location="cpu", weights_only=False)
    state["train_config"]["contact_gap"] = 2
    taught = tmp_path / "taught.pt"
    torch.save(state, taught)
    args = ("predict", synth_task["scene"], "--out")
    said = run(*args, tmp_path / "a.gpkg", "--model", taught, "--no-preview")
    assert said.exit_code == 0 and "touching roofs cut apart" in said.output and "--split 0.86" in said.output
    assert "taught with --contact-gap 2" in run("info", taught).output
    for model, extra in ((tiny_model, ()), (taught, ("--split", "0"))):
        quiet = run(*args, tmp_path / f"{len(extra)}.gpkg", "--model", model, "--no-preview", *extra)
        assert quiet.exit_code == 0 and "touching roofs" not in quiet.output


def test_existing_output_is_not_overwritten(tiny_model, synth_task, tmp_path):
    out = tmp_path / "roofs.geojson"
    out.write_text("mine")
    assert_one_line_error(run("predict", synth_task["scene"], "--model", tiny_model, "--out", out), "--overwrite")
    assert out.read_text() == "mine" and not (tmp_path / "roofs.preview.png").exists()


def test_synth_command(tmp_path):
    r = run("synth", tmp_path / "s", "--train-size", "128", "--tile-size", "64", "--scene-size", "96")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "s" / "train" / "images").iterdir())) == 4
    assert_one_line_error(run("synth", tmp_path / "s"), "--overwrite")


def test_evaluate_polygons_and_model(tiny_model, synth_task, tmp_path):
    truth = synth_task["truth"]
    r = run("evaluate", "--pred", truth, "--truth", truth, "--csv", tmp_path / "s.csv")
    assert r.exit_code == 0, r.output
    header, values = r.output.splitlines()[:2]
    row = dict(zip(header.split(), values.split()))
    assert row["fp"] == row["fn"] == "0" and row["f1"] == "1.0000" and row["area_iou"] == "1.0000"
    assert (tmp_path / "s.csv").read_text().startswith("predicted,true,tp")
    r = run("evaluate", synth_task["train"], "--model", tiny_model)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].split()[:3] == ["image", "iou", "f1"] and "ALL" in r.output
    assert_one_line_error(run("evaluate", "--pred", truth), "either DATA_DIR with --model")
    assert_one_line_error(run("evaluate", "--pred", tmp_path / "x.gpkg", "--truth", truth), "x.gpkg", "no such file")
    assert_one_line_error(run("evaluate", "--pred", truth, "--truth", truth, "--tta"), "--tta", "--model")


def test_evaluate_with_tta_scores_the_tta_prediction(tiny_model, synth_task, tmp_path):
    from geoseg.config import TileOptions
    from geoseg.datasets.tiles import find_pairs
    from geoseg.evaluation.metrics import pixel_counts
    from geoseg.io.raster import read_mask
    from geoseg.models import checkpoint
    from geoseg.predict.engine import predict_probability

    pair = find_pairs(synth_task["train"])[0]
    truth = read_mask(pair.mask).astype(bool)
    prob = {}
    for tta in (False, True):
        predict_probability(pair.image, checkpoint.load(tiny_model), tmp_path / f"p{tta}.tif", TileOptions(tta=tta))
        with rasterio.open(tmp_path / f"p{tta}.tif") as src:
            prob[tta] = src.read(1)
    cut = int(np.median(prob[False]))  # a cut inside the tiny model's narrow range of probabilities
    want = {tta: pixel_counts(p >= cut, truth) for tta, p in prob.items()}
    assert want[False] != want[True]  # the tiny model is not symmetric: TTA changes its mask
    for tta in (False, True):
        r = run("evaluate", synth_task["train"], "--model", tiny_model, "--threshold", cut / 255,
                *(["--tta"] if tta else []))
        assert r.exit_code == 0, r.output
        header, first = r.output.splitlines()[:2]
        row = dict(zip(header.split(), first.split()))
        assert row["image"] == pair.image.name and (int(row["tp"]), int(row["fp"])) == (want[tta].tp, want[tta].fp)


def test_train_defaults_to_the_best_recipe_measured_and_the_original_one_is_a_preset(labelled, tmp_path):
    from geoseg.config import CONTACT_GAP, TrainConfig

    base = TrainConfig(data_dir="d", out_dir="o")
    assert (base.lr_max, base.lr_min, base.average) == (1e-3, 1e-4, 5)
    assert base.resolved_loss() == "dice"
    assert TrainConfig(data_dir="d", out_dir="o", time_limit=2).resolved_loss() == "softmax"  # it led at 1.8 min
    assert TrainConfig(data_dir="d", out_dir="o", time_limit=7).resolved_loss() == "dice"
    assert TrainConfig(data_dir="d", out_dir="o", loss="pixel-softmax", time_limit=2).resolved_loss() == "pixel-softmax"
    # the gap between touching footprints is taught by the weighted loss; dice left it roof
    gap = dict(data_dir="s.tif", out_dir="o", labels="f.gpkg", contact_gap=2)
    assert TrainConfig(**gap).resolved_loss() == "pixel-softmax"
    assert TrainConfig(**gap, loss="dice").resolved_loss() == "dice"
    # footprints hold touching roofs apart: the gap is on by default for them, and off for tiles' masks
    footprints = TrainConfig(data_dir="s.tif", out_dir="o", labels="f.gpkg")
    assert footprints.gap() == CONTACT_GAP > 0 and footprints.resolved_loss() == "pixel-softmax"
    assert TrainConfig(data_dir="s.tif", out_dir="o", labels="f.gpkg", contact_gap=0).resolved_loss() == "dice"
    assert base.gap() == 0 and base.resolved_loss() == "dice"
    out = tmp_path / "run"
    r = run("train", labelled, "--out", out, "--preset", "original", "--encoder", "unet", "--depth", "3", "--width",
            "4", "--epochs", "1",
            "--tile-size", "32", "--batch-size", "2", "--samples-per-epoch", "2")
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    # the preset's settings where none was given; the options given win
    assert (config["loss"], config["lr_max"], config["norm"], config["average"]) == ("softmax", 1e-4, "instance", 0)
    assert (config["depth"], config["width"]) == (3, 4)
    r = run("train", labelled, "--out", tmp_path / "auto", "--encoder", "unet", "--depth", "3", "--width", "4",
            "--epochs", "1",
            "--tile-size", "32", "--batch-size", "2", "--samples-per-epoch", "2", "--time-limit", "1")
    assert r.exit_code == 0 and "loss: softmax (the best measured for this --time-limit" in r.output
