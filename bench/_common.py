"""Helpers shared by the benchmarks: a model to time, and peak memory of a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def ensure_model(work: Path, minutes: float = 1.5, norm: str = "batch") -> Path:
    """A model trained briefly on a synthetic town (cached in ``work``), so that predictions
    and polygons look like real ones and vectorisation does realistic work."""
    model = work / f"model-{norm}" / "model.pt"
    if model.exists():
        return model
    from geoseg.synth import write_dataset
    from geoseg.train import TrainConfig, fit

    paths = write_dataset(work / "train-data", seed=100)
    fit(TrainConfig(data_dir=str(paths["train"]), out_dir=str(model.parent), epochs=1000, norm=norm,
                    time_limit=minutes, lr_max=1e-3, lr_min=1e-4, samples_per_epoch=64,
                    overwrite=True), progress=False)
    return model


PEAK_RSS = "import resource; peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python (so peak memory is its own); it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
