import json

import pytest
from click.testing import CliRunner

from geoseg.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_scores(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--minutes", "0.15", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "pixel IoU" in r.output and "F1" in r.output
    assert json.loads((out / "roofs.geojson").read_text())["type"] == "FeatureCollection"
    assert (out / "roofs.preview.png").exists() and (out / "run" / "model.pt").exists()
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--minutes", "0.1", "--quiet"])
    assert r.exit_code != 0 and "--overwrite" in r.output
