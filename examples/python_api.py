"""The command line's jobs from Python, with the same names: synth → fit → run_predict → scores.

    python examples/python_api.py /tmp/geoseg-example
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd

from geoseg.config import TileOptions, TrainConfig, VectorizeOptions
from geoseg.datasets.synth import write_dataset
from geoseg.evaluation.scoring import object_scores, pixel_scores
from geoseg.jobs.predict import Outputs, run_predict
from geoseg.train.loop import fit


def main(out: Path) -> None:
    paths = write_dataset(out / "data", seed=1)
    run = fit(TrainConfig(data_dir=str(paths["train"]), out_dir=str(out / "run"), time_limit=2.0,
                          epochs=1000, lr_max=1e-3, lr_min=1e-4, samples_per_epoch=64, overwrite=True))
    result = run_predict(paths["scene"], run / "model.pt",
                         Outputs(out / "roofs.gpkg", prob=out / "prob.tif", overwrite=True),
                         TileOptions(overlap=32), VectorizeOptions(threshold=0.5))
    truth = gpd.read_file(paths["truth"])
    print(f"{result.count} roofs; pixel IoU {pixel_scores(out / 'prob.tif', truth).iou:.3f};"
          f" object F1 {object_scores(gpd.read_file(result.out), truth).counts.f1:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "geoseg-example"))
