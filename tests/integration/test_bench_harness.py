"""The benchmark harness: options from a benchmark's signature, a run in a fresh process, its
figures saved with the machine and commit, and the benchmarks page built from kept figures."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_is_listed_with_what_it_measures():
    out = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("predict-scale", "train-speed", "large-polygons", "remote"):
        assert name in out.stdout
    bad = subprocess.run([sys.executable, "-m", "bench", "no-such"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr


def test_a_run_saves_its_median_figures_with_the_machine_and_the_page_is_built_from_them(tmp_path, monkeypatch):
    from bench import harness

    monkeypatch.setattr(harness, "WORK", tmp_path / "out")
    monkeypatch.setattr(harness, "RESULTS", tmp_path / "results")
    result = harness.run("large-polygons", ["--width", "256", "--heights", "64,128", "--repeat", "2", "--record"])
    saved = json.loads((tmp_path / "out" / "large-polygons" / f"{result['environment']['commit']}.json").read_text())
    assert saved["options"] == {"width": 256, "heights": [64, 128]} and len(saved["runs"]) == 2
    figures = saved["figures"]
    assert figures["s_per_mp_ratio"] > 0 and figures["peak_rss_mib"] > 10
    for key in ("cores", "cpu", "cpu_flags", "device", "torch", "gdal", "commit"):
        assert key in saved["environment"]
    harness.report(tmp_path / "benchmarks.md")
    page = (tmp_path / "benchmarks.md").read_text()
    assert "python -m bench large-polygons --width 256" in page and saved["environment"]["cpu"] in page
