"""``geoseg demo``: the whole job on an embedded default, from nothing to scored roof polygons.

Writes a synthetic georeferenced task (``datasets.synth``), trains a small U-Net on its labelled
tiles within a time budget, predicts a scene it never saw (16 tiles' area), writes
``roofs.geojson`` and a preview PNG, and scores the result against the true polygons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd

from geoseg.outputs.atomic import fresh_folder


@dataclass(frozen=True)
class DemoResult:
    """What ``run_demo`` made and how well it did."""

    out_dir: Path
    geojson: Path
    preview: Path
    model: Path
    polygons: int
    truth_polygons: int
    pixel_iou: float
    object_precision: float
    object_recall: float
    object_f1: float
    train_seconds: float
    predict_seconds: float


def run_demo(out_dir: str | Path = "geoseg-demo", minutes: float = 4.0, seed: int = 0,
             device: str = "auto", overwrite: bool = False, progress: bool = True,
             norm: str = "batch") -> DemoResult:
    """``geoseg demo``: a synthetic town made, a U-Net trained on its tiles for ``minutes``, an unseen scene
    predicted and scored."""
    from geoseg.config import TileOptions, TrainConfig
    from geoseg.datasets import synth
    from geoseg.evaluation.scoring import object_scores, pixel_scores
    from geoseg.jobs.predict import Outputs, preview_path, run_predict
    from geoseg.outputs.preview import render_preview
    from geoseg.train.loop import fit

    out = fresh_folder(out_dir, overwrite)
    paths = synth.write_dataset(out / "data", seed=seed)
    t0 = time.perf_counter()
    run = fit(TrainConfig(
        data_dir=str(paths["train"]), out_dir=str(out / "run"), epochs=1000, time_limit=minutes,
        lr_max=1e-3, lr_min=1e-4, seed=seed, device=device, samples_per_epoch=64, norm=norm, loss="dice",
        average=0,  # the best epoch on the demo's validation tiles, as its figures were measured
        encoder="unet",  # the plain U-Net its figures were measured with: more steps in its 4 minutes on a CPU
    ), progress=progress)
    t1 = time.perf_counter()
    geojson = out / "roofs.geojson"
    run_predict(paths["scene"], run / "model.pt", Outputs(geojson, prob=out / "prob.tif", preview=False),
                TileOptions(device=device), progress=progress)
    t2 = time.perf_counter()
    truth = gpd.read_file(paths["truth"])
    pred = gpd.read_file(geojson)
    preview = preview_path(geojson)
    render_preview(paths["scene"], pred.to_crs(truth.crs), preview, truth=truth)
    pix = pixel_scores(out / "prob.tif", truth)
    obj = object_scores(pred, truth).counts
    return DemoResult(out, geojson, preview, run / "model.pt", len(pred), len(truth), pix.iou,
                      obj.precision, obj.recall, obj.f1, t1 - t0, t2 - t1)
