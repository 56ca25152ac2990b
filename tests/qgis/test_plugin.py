"""geoseg inside QGIS: the Processing provider, run by headless QGIS (Debian's python3-qgis,
the system Python, which has no torch), runs the geoseg command of this environment.

Each check runs in a subprocess that prints its verdict as JSON first (QGIS may crash while
tearing down). Skipped with a reason where QGIS is not installed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoseg.qgis.install import write_plugin
from tests.conftest import write_tif

SYSTEM_PYTHON = "/usr/bin/python3"
GEOSEG = shutil.which("geoseg") or str(Path(sys.executable).with_name("geoseg"))


def qgis_available() -> bool:
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import qgis.core, processing"], capture_output=True,
        env={**os.environ, "PYTHONPATH": "/usr/share/qgis/python/plugins"}).returncode == 0


pytestmark = [pytest.mark.skipif(not qgis_available(), reason="QGIS absent (Debian package python3-qgis)"),
              pytest.mark.slow]

PRELUDE = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from qgis.core import QgsApplication, QgsProcessingFeedback, QgsProcessingException, QgsVectorLayer
app = QgsApplication([], False); app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
import geoseg  # the plugin folder: this Python has no geoseg library
plugin = geoseg.classFactory(None); plugin.initProcessing()
def say(verdict):
    print(json.dumps(verdict), flush=True)
    os._exit(0)
class Commands(QgsProcessingFeedback):  # the geoseg command lines the provider logs
    said = []
    def pushCommandInfo(self, info):
        self.said.append(info)
"""

PREDICT = PRELUDE + r"""
args = json.loads(sys.argv[2])
algs = sorted(a.id() for a in QgsApplication.processingRegistry().providerById("geoseg").algorithms())
result = processing.run("geoseg:predict", args, feedback=Commands())
layer = QgsVectorLayer(result["OUTPUT"], "roofs", "ogr")
e = layer.extent()
symbol = layer.renderer().symbol().symbolLayer(0)
scores = processing.run("geoseg:evaluate", {"PRED": result["OUTPUT"], "TRUTH": sys.argv[3]})
say(dict(algs=algs, valid=layer.isValid(), authid=layer.crs().authid(), count=layer.featureCount(),
         extent=[e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()], stroke=symbol.strokeColor().name(),
         output=result["OUTPUT"], scores=scores, commands=Commands.said))
"""

PREDICT_CLASSES = PRELUDE + r"""
result = processing.run("geoseg:predict", json.loads(sys.argv[2]), feedback=Commands())
layer = QgsVectorLayer(result["OUTPUT"] + "|layername=classes", "classes", "ogr")
say(dict(valid=layer.isValid(), count=layer.featureCount(), renderer=layer.renderer().type(),
         commands=Commands.said))
"""

CANCEL = PRELUDE + r"""
args = json.loads(sys.argv[2])
feedback = QgsProcessingFeedback()
progress = []
def on_progress(p):  # Cancel pressed once geoseg is under way
    progress.append(p)
    if p >= 1:
        feedback.cancel()
feedback.progressChanged.connect(on_progress)
try:
    processing.run("geoseg:predict", args, feedback=feedback)
    say(dict(cancelled=False, progress=progress))
except QgsProcessingException as exc:
    say(dict(cancelled=True, message=str(exc), progress=progress))
"""


def run_qgis(code, plugins, args, *more):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GEOSEG_EXECUTABLE": GEOSEG,
           "PYTHONPATH": "/usr/share/qgis/python/plugins"}
    proc = subprocess.run([SYSTEM_PYTHON, "-c", code, str(plugins), json.dumps(args), *map(str, more)],
                          capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[0])


def test_the_provider_predicts_a_styled_layer_in_place(tiny_model, synth_task, tmp_path):
    import rasterio

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins)
    out = tmp_path / "roofs.gpkg"
    v = run_qgis(PREDICT, plugins, {"INPUT": str(synth_task["scene"]), "MODEL": str(tiny_model), "THRESHOLD": 0.3,
                                    "SPLIT": 0.6, "OUTPUT": str(out)}, synth_task["truth"])
    assert " --threshold 0.3 " in v["commands"][0] and v["commands"][0].endswith(" --split 0.6")
    assert v["algs"] == ["geoseg:evaluate", "geoseg:predict", "geoseg:train"]
    assert v["valid"] and v["authid"] == "EPSG:25832" and v["count"] > 0 and v["stroke"] == "#ffc800"
    with rasterio.open(synth_task["scene"]) as src:
        b = src.bounds
    x0, y0, x1, y1 = v["extent"]
    assert b.left - 1e-6 <= x0 <= x1 <= b.right + 1e-6 and b.bottom - 1e-6 <= y0 <= y1 <= b.top + 1e-6
    # evaluate, as geoseg evaluate scores the same files
    import geopandas as gpd

    from geoseg.evaluation.scoring import area_iou, object_scores

    pred, truth = gpd.read_file(out, layer="roofs"), gpd.read_file(synth_task["truth"])
    c = object_scores(pred, truth).counts
    assert v["scores"]["F1"] == pytest.approx(round(c.f1, 4), abs=1e-4)
    assert v["scores"]["AREA_IOU"] == pytest.approx(round(area_iou(pred, truth), 4), abs=1e-4)


def test_the_provider_passes_per_class_thresholds_to_a_model_of_several_classes(class_model, tmp_path):
    model, scene = class_model
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins)
    v = run_qgis(PREDICT_CLASSES, plugins, {"INPUT": str(scene), "MODEL": str(model),
                                            "CLASS_THRESHOLDS": "road=0.3,water=0.6",
                                            "OUTPUT": str(tmp_path / "classes.gpkg")})
    assert " --class-thresholds road=0.3,water=0.6" in v["commands"][0], v
    assert v["valid"] and v["renderer"] == "categorizedSymbol"


def test_cancel_stops_geoseg_and_leaves_no_output(tiny_model, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins)
    scene = write_tif(tmp_path / "big.tif", np.random.default_rng(0).integers(0, 255, (3, 3072, 3072), np.uint8))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    v = run_qgis(CANCEL, plugins, {"INPUT": str(scene), "MODEL": str(tiny_model), "OUTPUT": str(out_dir / "r.gpkg")})
    assert v["cancelled"] and "cancelled; geoseg stopped" in v["message"], v
    assert 1 <= max(v["progress"]) < 100  # the progress came through, and the run stopped early
    assert list(out_dir.iterdir()) == []  # nothing half-written, no temporary file left
    left = subprocess.run(["pgrep", "-f", f"predict {scene}"], capture_output=True, text=True).stdout.strip()
    assert left == ""


def test_the_plugin_is_written_as_a_folder_or_a_zip(tmp_path):
    import zipfile

    from click.testing import CliRunner

    from geoseg.cli import main

    r = CliRunner().invoke(main, ["qgis-plugin", str(tmp_path)])
    assert r.exit_code == 0 and (tmp_path / "geoseg" / "metadata.txt").is_file()
    again = CliRunner().invoke(main, ["qgis-plugin", str(tmp_path)])
    assert again.exit_code != 0 and "--overwrite" in again.output
    r = CliRunner().invoke(main, ["qgis-plugin", str(tmp_path / "geoseg-qgis.zip")])
    assert r.exit_code == 0
    names = zipfile.ZipFile(tmp_path / "geoseg-qgis.zip").namelist()
    assert "geoseg/metadata.txt" in names and "geoseg/algorithms.py" in names


TRAIN_AND_LAYERS = PRELUDE + r"""
args = json.loads(sys.argv[2])
verdict = {}
try:  # a folder holding the user's documents as the run folder
    processing.run("geoseg:train", args, feedback=Commands())
    verdict["train"] = "ran"
except QgsProcessingException as exc:
    verdict["train"] = str(exc)
verdict["train_command"] = Commands.said[-1] if Commands.said else ""
# the second layer of a two-layer GeoPackage, filtered as the user sees it
pred = QgsVectorLayer(sys.argv[3] + "|layername=roofs", "pred", "ogr")
pred.setSubsetString("keep = 1")
truth = QgsVectorLayer(sys.argv[3] + "|layername=roofs", "truth", "ogr")
truth.setSubsetString("keep = 1")
verdict["scores"] = processing.run("geoseg:evaluate", {"PRED": pred, "TRUTH": truth}, feedback=Commands())
verdict["evaluate_command"] = Commands.said[-1]
say(verdict)
"""


def test_the_train_algorithm_never_empties_a_folder_and_layers_keep_their_name_and_filter(synth_task, tmp_path):
    import shlex

    import geopandas as gpd

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins)
    folder = tmp_path / "my documents"
    folder.mkdir()
    (folder / "thesis.odt").write_text("years of work")
    roofs = gpd.read_file(synth_task["truth"])
    two = tmp_path / "two layers.gpkg"
    roofs.iloc[:0].assign(keep=[]).to_file(two, layer="empty")  # the first layer: nothing
    roofs.assign(keep=[1] * (len(roofs) - 1) + [0]).to_file(two, layer="roofs")
    v = run_qgis(TRAIN_AND_LAYERS, plugins, {"IMAGES": str(synth_task["scene"]), "LABELS": str(synth_task["truth"]),
                                             "MINUTES": 0.1, "STARTER": False,
                                             "EXTRA": "--labels-where \"id IS NOT NULL OR 1 = 1\"",
                                             "OUTPUT": str(folder)}, two)
    assert "exists and is not empty" in v["train"], v
    assert (folder / "thesis.odt").read_text() == "years of work" and len(list(folder.iterdir())) == 1
    said = shlex.split(v["train_command"])  # the logged command is shell-quoted: it splits back into the same words
    assert "--overwrite" not in said and said[said.index("--labels-where") + 1] == "id IS NOT NULL OR 1 = 1"
    assert said[said.index("--out") + 1] == str(folder)
    assert v["scores"]["F1"] == 1.0, v  # the chosen layer, filtered: not the empty first layer
    words = shlex.split(v["evaluate_command"])
    assert words[words.index("--pred-layer") + 1] == "roofs" and words[words.index("--pred-where") + 1] == "keep = 1"


TRAIN_THEN_PREDICT = PRELUDE + r"""
args = json.loads(sys.argv[2])
trained = processing.run("geoseg:train", args, feedback=Commands())
predicted = processing.run("geoseg:predict", {"INPUT": args["IMAGES"], "MODEL": trained["MODEL"],
                                              "OUTPUT": sys.argv[3]}, feedback=Commands())
layer = QgsVectorLayer(predicted["OUTPUT"], "roofs", "ogr")
say(dict(model=trained["MODEL"], folder=trained["OUTPUT"], valid=layer.isValid(), count=layer.featureCount(),
         commands=Commands.said))
"""


def test_the_train_algorithm_trains_into_a_new_folder_and_its_model_predicts(synth_task, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins)
    run = tmp_path / "new run"  # does not exist yet: geoseg makes it
    tiny = "--encoder unet --depth 3 --width 4 --tile-size 64 --batch-size 4 --samples-per-epoch 8 --quiet"
    v = run_qgis(TRAIN_THEN_PREDICT, plugins, {"IMAGES": str(synth_task["scene"]), "LABELS": str(synth_task["truth"]),
                                               "MINUTES": 0.1, "STARTER": False, "EXTRA": tiny, "OUTPUT": str(run)},
                 tmp_path / "roofs.gpkg")
    assert Path(v["model"]) == run / "model.pt" and (run / "model.pt").is_file() and (run / "last.pt").is_file()
    assert v["valid"] and (tmp_path / "roofs.gpkg").is_file(), v
    train_command = next(c for c in v["commands"] if " train " in f" {c} ")
    assert "--overwrite" not in train_command and "--time-limit 0.1" in train_command


def test_the_plugin_command_makes_a_plugins_folder_that_qgis_has_not_made_yet(tmp_path):
    from click.testing import CliRunner

    from geoseg.cli import main

    profile = tmp_path / "profiles" / "default" / "python"  # a profile that never had a plugin
    profile.mkdir(parents=True)
    r = CliRunner().invoke(main, ["qgis-plugin", str(profile / "plugins")])
    assert r.exit_code == 0 and (profile / "plugins" / "geoseg" / "metadata.txt").is_file(), r.output
    assert "created" in r.output
    r = CliRunner().invoke(main, ["qgis-plugin", str(tmp_path / "no" / "such" / "plugins")])
    assert r.exit_code != 0 and "no such folder" in r.output and not (tmp_path / "no").exists()
