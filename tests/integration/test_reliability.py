"""Nothing lost, nothing silently wrong: inputs never overwritten, outputs all or nothing,
dead runs' leftovers cleared, SIGTERM as Ctrl-C, NaN as nodata, training that cannot
learn refused, interrupted training resumed exactly. One table a class of fault."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner
from shapely.geometry import Polygon, box

from geoseg.cli import main
from geoseg.errors import InputError, Interrupted, OutputExistsError
from geoseg.outputs.atomic import OutputSet, owner_tag, remove_leftovers
from tests.conftest import write_tif


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# --- an input is never an output --------------------------------------------------------


@pytest.fixture
def inputs(tiny_model, synth_task, tmp_path):
    """Copies of a scene and a model the run may not replace, in a folder of their own."""
    import shutil

    scene, model = tmp_path / "scene.tif", tmp_path / "model.pt"
    shutil.copy(synth_task["scene"], scene)
    shutil.copy(tiny_model, model)
    os.symlink(scene, tmp_path / "link-to-scene.tif")
    (tmp_path / "sub").mkdir()
    return {"scene": scene, "model": model, "dir": tmp_path}


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("option, target, fragment", [
    ("--prob-out", "scene", "is a scene"),
    ("--mask-out", "scene", "is a scene"),
    ("--prob-out", "model", "is the model"),
    ("--mask-out", "model", "is the model"),
    ("--prob-out", "link-to-scene.tif", "is a scene"),  # a symbolic link to the scene
    ("--mask-out", "sub/../scene.tif", "is a scene"),  # a detour through another folder
    ("--mask-out", "prob.tif", "both name"),  # the same file as --prob-out
])
def test_an_output_that_is_an_input_is_refused_with_or_without_overwrite(inputs, option, target, fragment,
                                                                         overwrite):
    d = inputs["dir"]
    path = inputs.get(target, d / target)
    before = {k: digest(inputs[k]) for k in ("scene", "model")}
    args = ["predict", inputs["scene"], "--model", inputs["model"], "--out", d / "roofs.gpkg", "--quiet",
            "--prob-out", d / "prob.tif", option, path] if option != "--prob-out" else \
           ["predict", inputs["scene"], "--model", inputs["model"], "--out", d / "roofs.gpkg", "--quiet", option, path]
    one_line_error(run(*args, *(["--overwrite"] if overwrite else [])), fragment)
    assert {k: digest(inputs[k]) for k in ("scene", "model")} == before
    assert not (d / "roofs.gpkg").exists() and not (d / "prob.tif").exists()


def test_evaluate_and_export_refuse_to_write_over_their_inputs(inputs, synth_task, tmp_path):
    truth = tmp_path / "truth.gpkg"
    gpd.read_file(synth_task["truth"]).to_file(truth)
    before = digest(truth)
    one_line_error(run("evaluate", "--pred", truth, "--truth", truth, "--csv", truth, "--overwrite"), "is --pred")
    assert digest(truth) == before
    onnx_model = tmp_path / "model.onnx"
    onnx_model.write_bytes(inputs["model"].read_bytes())
    one_line_error(run("export-onnx", onnx_model, "--out", onnx_model, "--overwrite"), "is the model")


@pytest.mark.parametrize("where", ["data", "parent"])
def test_a_run_folder_that_holds_the_training_data_is_never_emptied(labelled, where):
    out = labelled if where == "data" else labelled.parent
    before = sorted(p.name for p in (labelled / "images").iterdir())
    one_line_error(run("train", labelled, "--out", out, "--overwrite", "--epochs", "1"), "holds the training data")
    assert sorted(p.name for p in (labelled / "images").iterdir()) == before


# --- outputs all or nothing, never replacing what appeared ---------------------------------


def test_a_file_that_appears_during_the_run_is_not_replaced_and_nothing_is_left(tiny_model, synth_task, tmp_path,
                                                                                 monkeypatch):
    import geoseg.jobs.predict as predict

    out = tmp_path / "roofs.geojson"
    real = predict.write_qml

    def another_run_publishes_first(path, *style):  # called while this run's outputs are still temporary
        out.write_text("the other run's roofs")
        real(path, *style)

    monkeypatch.setattr(predict, "write_qml", another_run_publishes_first)
    with pytest.raises(OutputExistsError, match="appeared while this run was writing it"):
        predict.run_predict(synth_task["scene"], tiny_model, predict.Outputs(out, prob=tmp_path / "prob.tif"))
    assert out.read_text() == "the other run's roofs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roofs.geojson"]  # no preview, prob, style or temp


def test_publishing_a_set_rolls_back_what_it_published_when_a_later_output_cannot_be(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with pytest.raises(OutputExistsError), OutputSet() as outs:
        for final in (a, b):
            outs.add(final).write_text("new")
        b.write_text("someone else's")
        outs.publish()
    assert not a.exists() and b.read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]
    with OutputSet(overwrite=True) as outs:  # asked: replaced
        outs.add(b).write_text("new")
        outs.publish()
    assert b.read_text() == "new"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_runs_are_removed_by_the_next_run_and_only_those(tiny_model, synth_task, tmp_path):
    host = owner_tag().split("~")[1]
    dead, live = _dead_pid(), os.getpid()
    names = {
        f".roofs.geoseg~{host}~{dead}~abc.part.geojson": False,  # removed
        f".geoseg~{host}~{dead}~xyz": True,
        f".roofs.geoseg~{host}~{live}~abc.part.geojson": False,  # kept: its run is alive
        f".roofs.geoseg~elsewhere~{dead}~abc.part.geojson": False,  # kept: another host's (shared disk)
        "geoseg~notes.txt": False,  # kept: not hidden, not ours
    }
    for name, folder in names.items():
        if folder:
            (tmp_path / name).mkdir()
            (tmp_path / name / "prob.tif").write_bytes(b"x")
        else:
            (tmp_path / name).write_bytes(b"x")
    r = run("predict", synth_task["scene"], "--model", tiny_model, "--out", tmp_path / "roofs.geojson", "--quiet")
    assert r.exit_code == 0, r.output
    left = {p.name for p in tmp_path.iterdir()}
    assert f".roofs.geoseg~{host}~{dead}~abc.part.geojson" not in left and f".geoseg~{host}~{dead}~xyz" not in left
    assert {f".roofs.geoseg~{host}~{live}~abc.part.geojson", f".roofs.geoseg~elsewhere~{dead}~abc.part.geojson",
            "geoseg~notes.txt", "roofs.geojson", "roofs.qml", "roofs.preview.png"} == left
    assert remove_leftovers(tmp_path) == []


@pytest.mark.slow
def test_sigterm_is_handled_as_ctrl_c_and_leaves_nothing(tiny_model, tmp_path):
    scene = write_tif(tmp_path / "big.tif", np.random.default_rng(0).integers(0, 255, (3, 4096, 4096), np.uint8))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "geoseg.cli", "predict", str(scene), "--model", str(tiny_model),
                             "--out", str(out_dir / "roofs.geojson"), "--prob-out", str(out_dir / "prob.tif"),
                             "--quiet", "--tile-size", "128"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not any(out_dir.iterdir()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be terminated; make the scene larger"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "Terminated; no output was written." and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


# --- NaN is missing data ------------------------------------------------------------------


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_pixels_are_nodata_in_predict(tiny_model, tmp_path, fill):
    from geoseg.jobs.predict import Outputs, run_predict

    data = np.full((3, 200, 200), fill, np.float32)
    scene = write_tif(tmp_path / "s.tif", data)  # no nodata declared
    with pytest.warns(UserWarning, match="float32 imagery"):
        result = run_predict(scene, tiny_model, Outputs(tmp_path / "r.gpkg", prob=tmp_path / "p.tif", preview=False))
    assert result.count == 0
    import rasterio

    with rasterio.open(tmp_path / "p.tif") as src:
        assert src.read(1).max() == 0


def test_nan_pixels_are_left_out_of_training_and_its_statistics(labelled):
    from geoseg.datasets.tiles import band_statistics, find_pairs, load_samples

    images = sorted((labelled / "images").iterdir())
    import rasterio

    for p in images:
        with rasterio.open(p) as src:
            data = src.read().astype(np.float32)
        data[:, :, :32] = np.nan
        write_tif(p, data)
    samples, scale = load_samples(find_pairs(labelled))
    assert all(np.isfinite(s.image).all() and not s.valid[:, :32].any() and s.valid[:, 32:].all() for s in samples)
    norm = band_statistics(samples, scale)
    assert all(np.isfinite(norm.mean)) and all(np.isfinite(norm.std))
    right = np.concatenate([s.image[:, :, 32:].reshape(3, -1) for s in samples], axis=1)
    assert np.allclose(norm.mean, right.mean(axis=1), rtol=1e-5)


# --- training that cannot learn is refused -------------------------------------------------


def _masks(folder, fill):
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        write_tif(folder / "images" / f"{i}.tif", rng.integers(0, 255, (3, 32, 32), dtype=np.uint8))
        write_tif(folder / "masks" / f"{i}.tif", np.full((32, 32), fill, np.uint8))
    return folder


def _labels(tmp_path, synth_task, what):
    images = synth_task["train"] / "images"
    path = tmp_path / "labels.gpkg"
    if what == "empty file":
        gpd.GeoDataFrame(geometry=[], crs="EPSG:25832").to_file(path)
    elif what == "far away":
        gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs="EPSG:25832").to_file(path)
    elif what == "wrong CRS tag":  # the scene's own coordinates, labelled as lon/lat
        truth = gpd.read_file(synth_task["truth"])
        truth.set_crs(3857, allow_override=True).to_file(path)
    return ["--images", images, "--labels", path]


@pytest.mark.parametrize("case, fragment", [
    ("every mask empty", "every mask is empty"),
    ("every mask full", "every mask is roof everywhere"),
    ("empty file", "holds no polygons"),
    ("far away", "cover none of the training images"),
    ("wrong CRS tag", "cover none of the training images"),
])
def test_training_that_cannot_learn_is_refused(case, fragment, tmp_path, synth_task):
    if case.startswith("every mask"):
        source = [_masks(tmp_path / "d", 0 if "empty" in case else 255)]
    else:
        source = _labels(tmp_path, synth_task, case)
    r = run("train", *source, "--out", tmp_path / "run", "--epochs", "1", "--tile-size", "32", "--encoder", "unet",
            "--depth", "3",
            "--width", "4", "--quiet")
    one_line_error(r, fragment)
    assert not (tmp_path / "run" / "model.pt").exists()


def test_invalid_label_polygons_are_repaired_and_counted_once(tmp_path):
    from geoseg.io.vectors import read_polygons

    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    gpd.GeoDataFrame(geometry=[bowtie, bowtie, box(20, 20, 30, 30)], crs="EPSG:25832").to_file(tmp_path / "l.gpkg")
    with pytest.warns(UserWarning, match="2 invalid polygon") as caught:
        gdf = read_polygons(tmp_path / "l.gpkg")
    assert len(caught) == 1
    assert gdf.geometry.is_valid.all() and len(gdf) == 3
    assert gdf.geometry.iloc[0].area == pytest.approx(50.0)  # the two triangles of the bow-tie


# --- interrupted training resumes exactly -------------------------------------------------


@pytest.mark.slow
def test_interrupted_mid_epoch_then_resumed_gives_the_uninterrupted_weights(labelled, tmp_path, monkeypatch):
    import torch

    import geoseg.train.loop as train
    from tests.train.test_loop import TINY

    straight = train.fit(train.TrainConfig(str(labelled), str(tmp_path / "a"), epochs=3, **TINY), progress=False)
    real, calls = train.get_loss, {"n": 0}

    def interrupting(name):
        fn = real(name)

        def loss(*args):
            calls["n"] += 1
            if calls["n"] == 5:  # epoch 1: 2 steps and a validation; epoch 2: after its first step
                raise KeyboardInterrupt
            return fn(*args)

        return loss

    monkeypatch.setattr(train, "get_loss", interrupting)
    config = train.TrainConfig(str(labelled), str(tmp_path / "b"), epochs=3, **TINY)
    with pytest.raises(Interrupted, match="holds epoch 1"):
        train.fit(config, progress=False)
    monkeypatch.setattr(train, "get_loss", real)
    resumed = train.fit(train.TrainConfig(str(labelled), str(tmp_path / "b"), epochs=3, resume=True, **TINY),
                        progress=False)
    a, b = (torch.load(p / "last.pt", weights_only=True)["state_dict"] for p in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_before_any_epoch_says_there_is_nothing_to_resume(labelled, tmp_path, monkeypatch):
    import geoseg.train.loop as train
    from tests.train.test_loop import TINY

    def interrupting(name):
        def loss(*args):
            raise KeyboardInterrupt

        return loss

    monkeypatch.setattr(train, "get_loss", interrupting)
    with pytest.raises(Interrupted, match="nothing to resume"):
        train.fit(train.TrainConfig(str(labelled), str(tmp_path / "b"), epochs=3, **TINY), progress=False)


def test_hostname_is_part_of_the_owner_tag():
    assert owner_tag().startswith("geoseg~") and owner_tag().endswith(f"~{os.getpid()}~")
    assert socket.gethostname().replace("~", "-")[:3] in owner_tag() or owner_tag().split("~")[1] == "host"


def test_input_error_is_raised_for_inputs_as_outputs_in_python_too(tmp_path):
    from geoseg.outputs.atomic import refuse_inputs_as_outputs

    (tmp_path / "a.tif").write_bytes(b"x")
    with pytest.raises(InputError, match="is the scene"):
        refuse_inputs_as_outputs([("--prob-out", tmp_path / "a.tif")], [("the scene", tmp_path / "a.tif")])
    refuse_inputs_as_outputs([("--prob-out", tmp_path / "b.tif")], [("the scene", tmp_path / "a.tif")])


# --- one line, not a traceback ---------------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    (["--tile-size", "0"], "--tile-size must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--tile-size", "100000"], "largest tile geoseg runs (4096 px"),
    (["--overlap", "-5"], "--overlap must be 0 or more"),
    (["--out", "FILE/roofs.gpkg"], "is a file, not a folder"),
    (["--out", "DIR/roofs.txt"], "unknown vector format"),
    (["--out", "NEW/roofs.gpkg"], "output folder does not exist"),
])
def test_bad_prediction_settings_are_one_line(tiny_model, synth_task, tmp_path, args, fragment):
    (tmp_path / "FILE").write_text("a file")
    (tmp_path / "DIR").mkdir()
    args = [a.replace("FILE", str(tmp_path / "FILE")).replace("DIR", str(tmp_path / "DIR"))
            .replace("NEW", str(tmp_path / "NEW")) for a in args]
    out = [] if "--out" in args else ["--out", tmp_path / "r.gpkg"]
    one_line_error(run("predict", synth_task["scene"], "--model", tiny_model, *out, "--quiet", *args), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR", "FILE"]


def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_model, synth_task, tmp_path, monkeypatch):
    import errno

    import geoseg.outputs.preview as preview

    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(preview.Preview, "save", full)
    (tmp_path / "roofs.geojson").write_text("yesterday's roofs")
    r = CliRunner().invoke(main, ["predict", str(synth_task["scene"]), "--model", str(tiny_model), "--out",
                                  str(tmp_path / "roofs.geojson"), "--quiet", "--overwrite"])
    one_line_error(r, "no space left on the device", "no output was written")
    assert (tmp_path / "roofs.geojson").read_text() == "yesterday's roofs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roofs.geojson"]


def test_an_unexpected_error_is_one_line_with_a_log_of_its_traceback(tiny_model, synth_task, tmp_path, monkeypatch):
    import re

    import geoseg.outputs.preview as preview

    def bug(self, path):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(preview.Preview, "save", bug)
    r = CliRunner().invoke(main, ["predict", str(synth_task["scene"]), "--model", str(tiny_model), "--out",
                                  str(tmp_path / "roofs.geojson"), "--quiet"])
    one_line_error(r, "internal error (ZeroDivisionError: a bug); please report it with the log")
    log = re.search(r"the log (\S+)", r.output)[1]
    assert "Traceback" in open(log).read() and "ZeroDivisionError" in open(log).read()
    os.unlink(log)


# --- crafted or damaged checkpoints ---------------------------------------------------------


def _crafted(raw, change):
    state = {**raw, "norm": dict(raw["norm"])}
    change(state)
    return state


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s.pop("model_config"), "'model_config' is not a model configuration"),
    (lambda s: s.update(model_config={**s["model_config"], "depth": "four"}), "model config does not fit"),
    (lambda s: s.update(model_config={**s["model_config"], "colour": 1}), "model config does not fit"),
    (lambda s: s.pop("norm"), "'norm' is not a normalisation"),
    (lambda s: s["norm"].update(scale=0), "'norm' is not a normalisation with a positive scale"),
    (lambda s: s["norm"].update(std=[1.0, 0.0, 1.0]), "'norm.std' is not positive"),
    (lambda s: s["norm"].update(mean=[0.5, 0.5]), "'norm.mean' is not 3 finite numbers"),
    (lambda s: s["norm"].update(mean=["a", "b", "c"]), "'norm.mean' is not 3 finite numbers"),
    (lambda s: s.update(tile_size="64"), "'tile_size' is not a positive multiple"),
    (lambda s: s.update(tile_size=33), "'tile_size' is not a positive multiple"),
    (lambda s: s.update(nodata="zero"), "'nodata' is not a number"),
    (lambda s: s.update(state_dict={}), "'state_dict' is not a set of weight tensors"),
    (lambda s: s.update(state_dict={"a": 1}), "'state_dict' is not a set of weight tensors"),
    (lambda s: s.update(epoch="1"), "'epoch' is not a whole number"),
    (lambda s: s.update(version="1"), "'version' is not a whole number"),
    (lambda s: s.update(version=99), "written by a newer geoseg"),
    (lambda s: s.update(format="other"), "not a geoseg checkpoint"),
    # architecture fields checked before anything is built from them: no terabyte allocation
    (lambda s: s.update(model_config={**s["model_config"], "width": 10**9}), "width 1000000000 out of range"),
    (lambda s: s.update(model_config={**s["model_config"], "in_channels": 10**6}), "in_channels 1000000 out of"),
    (lambda s: s.update(model_config={**s["model_config"], "classes": 10**7}), "classes 10000000 out of range"),
    (lambda s: s.update(model_config={**s["model_config"], "width": 4.5}), "width 4.5 out of range"),
    (lambda s: s.update(model_config={**s["model_config"], "depth": True}), "depth True out of range"),
    # weights that cannot give a meaningful answer
    (lambda s: s.update(state_dict={k: v.clone().fill_(float("nan")) if v.is_floating_point() else v
                                    for k, v in s["state_dict"].items()}), "finite (it holds NaN"),
    (lambda s: s.update(state_dict={**s["state_dict"], "head.bias": s["state_dict"]["head.bias"] + float("inf")}),
     "'state_dict.head.bias' is not finite"),
])
def test_a_crafted_or_damaged_checkpoint_is_one_line(tiny_model, synth_task, tmp_path, change, fragment):
    import torch

    raw = torch.load(tiny_model, weights_only=True)
    torch.save(_crafted(raw, change), tmp_path / "bad.pt")
    r = run("predict", synth_task["scene"], "--model", tmp_path / "bad.pt", "--out", tmp_path / "r.gpkg", "--quiet")
    one_line_error(r, fragment)
    assert not (tmp_path / "r.gpkg").exists()


def test_weights_that_do_not_fit_their_config_are_one_line(tiny_model, synth_task, tmp_path):
    import torch

    raw = torch.load(tiny_model, weights_only=True)
    raw["model_config"] = {**raw["model_config"], "width": 8}
    torch.save(raw, tmp_path / "bad.pt")
    one_line_error(run("predict", synth_task["scene"], "--model", tmp_path / "bad.pt", "--out", tmp_path / "r.gpkg",
                       "--quiet"), "weights do not fit its model config")


# --- resuming another run's settings ------------------------------------------------------


@pytest.mark.slow
def test_resume_with_other_data_or_sampling_is_refused_with_the_differences_listed(labelled, tmp_path):
    import json
    import shutil

    from tests.train.test_loop import TINY

    run_dir = tmp_path / "run"
    base = ["train", labelled, "--out", run_dir, "--quiet", "--tile-size", "32", "--encoder", "unet", "--depth", "3",
            "--width", "4",
            "--batch-size", "2", "--samples-per-epoch", "4", "--lr-max", "1e-3", "--seed", "3"]
    assert run(*base, "--epochs", "1").exit_code == 0
    before = (run_dir / "config.json").read_text()
    other = tmp_path / "other"
    shutil.copytree(labelled, other)
    (other / "images" / "t3.tif").rename(other / "images" / "t9.tif")
    (other / "masks" / "t3.tif").rename(other / "masks" / "t9.tif")
    resumed = [a if a != labelled else other for a in base]
    r = run(*resumed, "--epochs", "2", "--resume", "--seed", "4")
    one_line_error(r, "--resume with settings that differ from the run's", "data_dir", "seed 3 → 4",
                   "train_images", "--accept-changes")
    assert (run_dir / "config.json").read_text() == before  # not rewritten
    r = run(*base, "--epochs", "2", "--resume")  # the same settings, more epochs: goes on
    assert r.exit_code == 0, r.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 1 and config["resumes"] == [{"from_epoch": 2, "epochs": 2}]
    r = run(*resumed, "--epochs", "3", "--resume", "--accept-changes")
    assert r.exit_code == 0, r.output
    last = json.loads((run_dir / "config.json").read_text())["resumes"][-1]
    assert last["from_epoch"] == 3 and last["data_dir"] == str(other) and last["accept_changes"] is True
    assert TINY["seed"] == 3


@pytest.mark.parametrize("args,fragment", [
    (["--encoder", "resnet18", "--depth", "3"], "add --encoder unet"),
    (["--encoder", "resnet34", "--tile-size", "48"], "not a multiple of 32"),
    (["--encoder", "resnet18", "--norm", "instance", "--tile-size", "32"], "instance norm cannot"),
])
def test_a_network_that_cannot_be_built_is_refused_before_training(labelled, tmp_path, args, fragment):
    r = run("train", labelled, "--out", tmp_path / "run", "--epochs", "1", *args)
    one_line_error(r, fragment)
    assert not (tmp_path / "run").exists()


# --- files reached through another input are inputs too -----------------------------------


def _vrt_of(scene, vrt):
    """A VRT of ``scene`` (its source: the scene file)."""
    from rasterio.shutil import copy

    copy(scene, vrt, driver="VRT")
    return vrt


def _item_of(scene, folder):
    """A STAC Item whose red, green and blue assets are one-band copies of ``scene``."""
    import json

    import rasterio

    with rasterio.open(scene) as src:
        for b, name in enumerate(("red", "green", "blue"), start=1):
            with rasterio.open(folder / f"{name}.tif", "w", **{**src.profile, "count": 1}) as dst:
                dst.write(src.read(b), 1)
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None, "properties": {},
            "assets": {n: {"href": f"{n}.tif"} for n in ("red", "green", "blue")}}
    (folder / "item.json").write_text(json.dumps(item))
    return folder / "item.json"


# (what the run reads, how it is reached, the output that names it, words of the error): grows with each new
# kind of input a run reaches through another
REACHED = [
    ("a VRT's source", lambda d, s: ([_vrt_of(s, d / "scene.vrt")], []), "--prob-out", "scene.tif", "reads"),
    ("a STAC Item's asset", lambda d, s: ([_item_of(s, d), "--assets", "red,green,blue"], []), "--prob-out",
     "green.tif", "reads"),
    ("the --aoi file", lambda d, s: ([s], ["--aoi", d / "area.geojson"]), "--out", "area.geojson", "--aoi file"),
    ("a scene's sidecar", lambda d, s: ([s], []), "--prob-out", "scene.tif.aux.xml", "reads"),
]


@pytest.mark.parametrize("what, reach, option, target, fragment", REACHED, ids=[r[0] for r in REACHED])
def test_files_reached_through_an_input_are_never_outputs(tiny_model, synth_task, tmp_path, what, reach, option,
                                                          target, fragment):
    import shutil

    import rasterio

    scene = tmp_path / "scene.tif"
    shutil.copy(synth_task["scene"], scene)
    with rasterio.open(scene) as src:
        b = src.bounds
        gpd.GeoSeries([box(b.left, b.bottom, b.right, b.top)], crs=src.crs).to_file(tmp_path / "area.geojson")
    (tmp_path / "scene.tif.aux.xml").write_text("<PAMDataset><Metadata><MDI key='k'>v</MDI></Metadata></PAMDataset>")
    scenes, more = reach(tmp_path, scene)
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    outs = {"--out": tmp_path / "roofs.gpkg", option: tmp_path / target}
    args = ["predict", *scenes, "--model", tiny_model, *more, "--quiet", "--no-preview", "--overwrite",
            *(x for k, v in outs.items() for x in (k, v))]
    one_line_error(run(*args), "an input of this run", fragment)
    assert {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("option, name, fragment", [
    ("--init", "model.pt", "the --init model"),  # train --init RUN/model.pt --out RUN --overwrite
    ("--label-extent", "extent.gpkg", "the --label-extent file"),
    ("--val-labels", "val.gpkg", "the --val-labels file"),
])
def test_a_run_folder_holding_a_file_the_run_reads_is_never_emptied(tiny_model, synth_task, tmp_path, option,
                                                                     name, fragment):
    import shutil

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    kept = run_dir / name
    if name.endswith(".pt"):
        shutil.copy(tiny_model, kept)
    else:
        gpd.read_file(synth_task["truth"]).to_file(kept)
    before = digest(kept)
    extra = ["--val-dir", synth_task["scene"]] if option == "--val-labels" else []
    one_line_error(run("train", "--images", synth_task["scene"], "--labels", synth_task["truth"], option, kept,
                       *extra, "--out", run_dir, "--overwrite", "--epochs", "1"), "holds", fragment)
    assert digest(kept) == before and sorted(p.name for p in run_dir.iterdir()) == [name]


@pytest.mark.parametrize("name", ["roofs?x=1.gpkg", "r|layername=a.gpkg", "-roofs.gpkg", "r%20s.gpkg", "r:s.gpkg",
                                  "r s'\"$(x).gpkg", "r\nnewline.gpkg", "über häuser.gpkg", "r.gpkg.zip",
                                  ".hidden.gpkg", "r.geojson?", "roofs.GeoJSON"])
def test_any_output_name_a_file_system_allows_touches_nothing_beside_it(tiny_model, synth_task, tmp_path, name):
    folder = tmp_path / "out"
    folder.mkdir()
    for hidden in (".roofs.gpkg", ".r.gpkg", f".{name}", ".geoseg"):  # files a careless temporary name could hit
        (folder / hidden).write_text("the user's")
    before = {p.name: digest(p) for p in folder.iterdir()}
    r = run("predict", synth_task["scene"], "--model", tiny_model, "--out", folder / name, "--quiet", "--no-preview")
    after = {p.name: digest(p) for p in folder.iterdir()}
    if r.exit_code == 0:
        new = set(after) - set(before)
        assert new <= {name, name.rsplit(".", 1)[0] + ".qml"} and name in new, new
    else:
        one_line_error(r)
        assert set(after) == set(before)
    assert {k: after[k] for k in before} == before


def _vector(path, geoms, crs=25832):
    gpd.GeoSeries(geoms, crs=crs).to_file(path)
    return path


# areas and labels that cannot be right: one line that names the real problem
BAD_VECTORS = [
    ("metres tagged as degrees", lambda: [box(356000, 5645900, 356100, 5646000)], 4326, "its CRS tag is wrong"),
    ("points", lambda: [__import__("shapely").Point(356010, 5645950)], 25832, "holds Point geometries, not polygons"),
    ("lines", lambda: [__import__("shapely").LineString([(356000, 5645900), (356100, 5646000)])], 25832,
     "holds LineString geometries, not polygons"),
]
AREAS_ONLY = [("collapsed polygons", lambda: [__import__("shapely").Polygon([(356000, 5645900), (356050, 5645950),
                                                                              (356100, 5646000)])], 25832,
               "holds no polygons")]


@pytest.mark.parametrize("what, geoms, crs, fragment, use",
                         [(*b, u) for b in BAD_VECTORS for u in ("--aoi", "--labels")] +
                         [(*b, "--aoi") for b in AREAS_ONLY],
                         ids=[f"{b[0]} {u}" for b in BAD_VECTORS for u in ("--aoi", "--labels")] +
                             [f"{b[0]} --aoi" for b in AREAS_ONLY])
def test_an_area_or_labels_that_cannot_be_right_are_one_line(tiny_model, synth_task, tmp_path, what, geoms, crs,
                                                              fragment, use):
    bad = _vector(tmp_path / "bad.gpkg", geoms(), crs)
    if use == "--aoi":
        r = run("predict", synth_task["scene"], "--model", tiny_model, "--out", tmp_path / "r.gpkg", "--aoi", bad,
                "--quiet")
    else:
        r = run("train", "--images", synth_task["scene"], "--labels", bad, "--out", tmp_path / "run", "--epochs", 1)
    if what == "collapsed polygons":  # repaired to nothing, which a warning says before the one error line
        errors = [line for line in r.output.splitlines() if line.startswith("Error: ")]
        assert r.exit_code != 0 and len(errors) == 1 and fragment in errors[0], r.output
    else:
        one_line_error(r, fragment)
    assert not (tmp_path / "r.gpkg").exists() and not (tmp_path / "run").exists()


# --- generated bad values: every numeric option, every awkward number -----------------------

AWKWARD = ["-1", "0", "nan", "inf", "-inf", "1e30", "1e-30", "2.5", "abc"]


def _numeric_options(command):
    import click

    cmd = main.commands[command]
    return [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and p.type.name in ("float", "integer")]


@pytest.mark.slow
@pytest.mark.parametrize("option", _numeric_options("predict"))
def test_any_number_for_any_predict_option_runs_or_is_one_line(tiny_model, synth_task, tmp_path, option):
    """Each value either predicts or is refused in one line before any output: never a traceback,
    an 'internal error', a hang or a partial file."""
    if option in ("--workers",):
        pytest.skip("starts a Dask cluster per value: covered by tests/predict/test_dask_engine.py")
    for k, value in enumerate(AWKWARD):
        out = tmp_path / f"r{k}.gpkg"
        r = CliRunner().invoke(main, ["predict", str(synth_task["scene"]), "--model", str(tiny_model), "--out",
                                      str(out), "--quiet", "--no-preview", "--tile-size", "128", option, value])
        text = r.output.strip()
        assert "Traceback" not in text and "internal error" not in text, (option, value, text)
        if r.exit_code != 0:
            errors = [line for line in text.splitlines() if line.startswith("Error")]
            assert len(errors) == 1 and not out.exists(), (option, value, text)


TAKEN = {}  # (option, value) → taken, for the table below


@pytest.mark.parametrize("option", [o for o in _numeric_options("train") if o not in ("--nproc",)])
def test_any_number_for_any_train_option_is_taken_or_refused_in_one_line(labelled, tmp_path, option, monkeypatch):
    """Checked before any data is read: every value either passes the config's checks (the run
    would start: the data loading is stood in for here) or is refused in one line."""
    import geoseg.train.loop

    class Started(Exception):
        pass

    def started(*a, **k):
        raise Started

    monkeypatch.setattr(geoseg.train.loop, "load_training_data", started)
    for value in AWKWARD:
        r = CliRunner().invoke(main, ["train", str(labelled), "--out", str(tmp_path / "run"), option, value])
        text = r.output.strip()
        if "(Started: " in text:  # the command's one-line report of the stand-in: the checks passed
            TAKEN[option, value] = True
            continue
        assert r.exit_code != 0 and "Traceback" not in text and "internal error" not in text, (option, value, text)
        assert len([line for line in text.splitlines() if line.startswith("Error")]) == 1, (option, value, text)
        assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir()), (option, value)
    # no value that cannot mean anything is taken
    absurd = [v for v in ("nan", "inf", "-inf", "-1") if TAKEN.get((option, v))]
    allowed = {"--nodata": {"nan", "inf", "-inf", "-1"}, "--seed": {"-1"}}.get(option, set())
    assert set(absurd) <= allowed, (option, absurd)


@pytest.fixture
def full_disk(tmp_path):
    """A real file system with about 100 KB free (a small tmpfs: root only; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        (mnt / "filler").write_bytes(b"\0" * 200 * 1024)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)  # lazy: GDAL may hold a file there a while


def test_a_really_full_disk_is_one_line_for_a_geopackage_and_a_checkpoint(tiny_model, synth_task, labelled,
                                                                           full_disk):
    r = run("predict", synth_task["scene"], "--model", tiny_model, "--out", full_disk / "roofs.gpkg", "--quiet")
    one_line_error(r, "no space left on the device", "no output was written")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]
    r = run("train", labelled, "--out", full_disk / "run", "--epochs", 1, "--encoder", "unet", "--depth", 3,
            "--width", 4, "--samples-per-epoch", 8, "--tile-size", 64, "--quiet")
    one_line_error(r, "no space left on the device", "keeps what was finished")
    assert not any(p.name.endswith(".part") for p in (full_disk / "run").iterdir())


def test_messages_name_the_scene_the_user_gave_not_a_temporary_file(tiny_model, tmp_path):
    import torch
    from affine import Affine

    model = tmp_path / "model-0.3m.pt"  # a model with a pixel size: a coarser scene is read through a VRT
    torch.save({**torch.load(tiny_model, weights_only=True), "gsd": 0.3}, model)
    two = np.random.default_rng(0).integers(0, 255, (2, 100, 100), dtype=np.uint8)
    scene = write_tif(tmp_path / "my scene.tif", two, transform=Affine(0.9, 0, 356_000.0, 0, -0.9, 5_646_000.0))
    r = run("predict", scene, "--model", model, "--out", tmp_path / "r.gpkg", "--quiet")
    errors = [line for line in r.output.splitlines() if line.startswith("Error: ")]
    assert r.exit_code != 0 and len(errors) == 1 and errors[0].startswith(f"Error: {scene}: 2 band(s)"), r.output
    assert "geoseg~" not in r.output and ".vrt" not in r.output


@pytest.mark.parametrize("command", [
    lambda folder, labelled: ["train", str(labelled), "--out", str(folder), "--epochs", "1", "--overwrite"],
    lambda folder, labelled: ["synth", str(folder), "--overwrite"],
    lambda folder, labelled: ["demo", "--out", str(folder), "--minutes", "0.01", "--overwrite"],
])
def test_overwrite_never_empties_a_folder_of_the_users_files(command, labelled, tmp_path):
    folder = tmp_path / "my documents"
    folder.mkdir()
    (folder / "thesis.odt").write_text("years of work")
    (folder / "model.pt").write_text("a name geoseg uses, the user's file")
    r = CliRunner().invoke(main, command(folder, labelled))
    assert r.exit_code != 0 and "geoseg did not write (thesis.odt)" in r.output and "--overwrite" in r.output
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt", "thesis.odt"]
    assert (folder / "thesis.odt").read_text() == "years of work"


def test_overwrite_empties_geosegs_own_folders_and_those_of_older_versions(tmp_path):
    made = tmp_path / "synth"
    assert CliRunner().invoke(main, ["synth", str(made), "--train-size", "256", "--scene-size", "64"]).exit_code == 0
    assert (made / ".geoseg").is_file()
    (made / "anything.txt").write_text("written into geoseg's folder")  # the marker says the folder is geoseg's
    again = CliRunner().invoke(main, ["synth", str(made), "--train-size", "256", "--scene-size", "64", "--overwrite"])
    assert again.exit_code == 0 and not (made / "anything.txt").exists(), again.output
    old = tmp_path / "old run"  # a run folder of geoseg 0.1: no marker, only what a run writes
    old.mkdir()
    for name in ("model.pt", "last.pt", "config.json", "metrics.csv", "curves.png"):
        (old / name).write_text("")
    r = CliRunner().invoke(main, ["synth", str(old), "--train-size", "256", "--scene-size", "64", "--overwrite"])
    assert r.exit_code == 0 and not (old / "last.pt").exists(), r.output


def test_the_plugin_command_replaces_only_its_own_plugin(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "geoseg").mkdir(parents=True)
    (plugins / "geoseg" / "notes.txt").write_text("another plugin's, or the user's")
    r = CliRunner().invoke(main, ["qgis-plugin", str(plugins), "--overwrite"])
    assert r.exit_code != 0 and "not geoseg's plugin" in r.output
    assert (plugins / "geoseg" / "notes.txt").read_text() == "another plugin's, or the user's"
    (plugins / "geoseg" / "notes.txt").unlink()
    (plugins / "geoseg").rmdir()
    assert CliRunner().invoke(main, ["qgis-plugin", str(plugins)]).exit_code == 0
    assert CliRunner().invoke(main, ["qgis-plugin", str(plugins), "--overwrite"]).exit_code == 0
