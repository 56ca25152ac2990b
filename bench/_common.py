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
    from geoseg.config import TrainConfig
    from geoseg.datasets.synth import write_dataset
    from geoseg.train.loop import fit

    paths = write_dataset(work / "train-data", seed=100)
    fit(TrainConfig(data_dir=str(paths["train"]), out_dir=str(model.parent), epochs=1000, norm=norm, encoder="unet",
                    time_limit=minutes, lr_max=1e-3, lr_min=1e-4, samples_per_epoch=64,
                    overwrite=True), progress=False)
    return model


def scene_args(doc: str, size: int, tile: int, precision: str):
    """The options every scene benchmark takes; more can be added to the returned parser."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=size, help="scene side, pixels")
    ap.add_argument("--tile", type=int, default=tile)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--precision", default=precision)
    ap.add_argument("--model", type=Path, help="a model.pt; default: one trained briefly on a synthetic town")
    ap.add_argument("--norm", default="batch", help="normalisation of that brief model")
    ap.add_argument("--work", type=Path, default=WORK, help="cache of scenes and models")
    return ap


def prepare(args) -> tuple[Path, Path]:
    """(model, scene) for parsed ``scene_args``: cached in ``--work``, made when missing."""
    from geoseg.datasets.synth import write_mosaic

    args.work.mkdir(exist_ok=True)
    model = args.model or ensure_model(args.work, norm=args.norm)
    scene = args.work / f"mosaic-{args.size}.tif"
    if not scene.exists():
        write_mosaic(scene, args.size)
    return model, scene


WORK = Path(__file__).resolve().parent.parent / "bench-out"  # ignored by git

PEAK_RSS = "import resource; peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python (so peak memory is its own); it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
