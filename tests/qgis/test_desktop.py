"""The real QGIS desktop (Debian's qgis, under Xvfb) with the geoseg plugin enabled in a fresh
profile: geoseg:predict runs from Processing, the roofs load over the scene with their style,
and a screenshot of the map canvas shows them. The screenshot in the QGIS guide is this
test's: ``GEOSEG_SCREENSHOT=docs/qgis-desktop.png pytest tests/qgis/test_desktop.py``."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geoseg.models import checkpoint
from geoseg.qgis.install import write_plugin

pytestmark = [
    pytest.mark.skipif(not (shutil.which("qgis") and shutil.which("xvfb-run")),
                       reason="QGIS desktop or Xvfb absent (Debian packages qgis and xvfb)"),
    pytest.mark.skipif(not checkpoint.STARTER.is_file(), reason="no starter model made (scripts/make_starter.py)"),
    pytest.mark.slow,
]
SCRIPT = Path(__file__).with_name("desktop_script.py")


def run_desktop(tmp_path: Path, scene: Path, model: str, layer: str | None = None) -> tuple[dict, Path]:
    """QGIS's desktop in a fresh profile with the plugin: geoseg:predict from Processing, the
    result over the scene; its verdict and the screenshot of the map canvas."""
    from tests.qgis.test_plugin import GEOSEG

    profile = tmp_path / "profiles" / "default"
    (profile / "QGIS").mkdir(parents=True)
    (profile / "python").mkdir()
    write_plugin(profile / "python" / "plugins")  # made here, as for a profile that never had a plugin
    (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\ngeoseg=true\n")
    args = {"scene": str(scene), "model": model, "out": str(tmp_path / "out.gpkg"), "layer": layer,
            "screenshot": str(tmp_path / "canvas.png"), "verdict": str(tmp_path / "verdict.json")}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "QT_QPA_PLATFORM")}
    env.update(PATH="/usr/bin:/bin", GEOSEG_EXECUTABLE=GEOSEG, GEOSEG_DESKTOP_ARGS=json.dumps(args))
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "qgis", "--profiles-path", str(tmp_path),
                           "--nologo", "--noversioncheck", "--code", str(SCRIPT)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert Path(args["verdict"]).is_file(), proc.stderr[-3000:]
    v = json.loads(Path(args["verdict"]).read_text())
    assert "error" not in v and not v.get("timeout"), v
    return v, Path(args["screenshot"])


def test_the_desktop_predicts_from_processing_and_shows_the_roofs_on_their_houses(synth_task, tmp_path):
    v, screenshot = run_desktop(tmp_path, synth_task["scene"], "")
    assert v["plugin_loaded"] and v["provider"] and v["visible"] and v["count"] > 5, v
    assert v["canvas_layers"] == ["roofs", "scene"] and v["style"] == "#ffc800" and v["renderer"] == "singleSymbol"
    (x0, y0, x1, y1), (sx0, sy0, sx1, sy1) = v["roofs_extent"], v["scene_extent"]
    assert sx0 - 1e-6 <= x0 < x1 <= sx1 + 1e-6 and sy0 - 1e-6 <= y0 < y1 <= sy1 + 1e-6
    # the canvas shows them: pixels of the style's outline colour (255, 200, 0) over the scene
    shot = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    outline = (np.abs(shot - [255, 200, 0]).sum(axis=2) < 60).mean()
    assert 0.002 < outline < 0.2, outline
    if os.environ.get("GEOSEG_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["GEOSEG_SCREENSHOT"])


def test_the_desktop_shows_a_model_of_several_classes_categorised_in_its_colours(class_model, tmp_path):
    model, scene = class_model
    v, _ = run_desktop(tmp_path / "qgis", scene, str(model), "classes")
    ckpt = checkpoint.load(model)
    assert v["renderer"] == "categorizedSymbol" and v["canvas_layers"] == ["classes", "scene"]
    assert v["style"] == dict(zip(ckpt.classes[1:], ckpt.colours[1:]))  # the model's colours, class by class
