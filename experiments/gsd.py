"""One 0.3 m model on the same town at 0.15, 0.3 and 0.6 m/px: with and without resampling.

    python -m experiments.gsd [--model geoseg/models/weights/starter.pt] [--size 2048]

A synthetic town is drawn at 0.15 m/px (``--size`` pixels a side) and averaged down to 0.3
and 0.6 m/px, so the three scenes show the same roofs; each is predicted by the model as
``geoseg predict`` does (resampled to the model's pixel size, the polygons back in the
scene's coordinates), and again with the model's pixel size withheld (the scene fed as it
is). Prints object F1 (IoU ≥ 0.5, one to one) and pixel IoU against the true roofs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench._common import WORK

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "geoseg" / "models" / "weights" / "starter.pt")
    ap.add_argument("--size", type=int, default=2048, help="side of the 0.15 m scene, pixels")
    ap.add_argument("--seed", type=int, default=900)
    args = ap.parse_args()
    import geopandas as gpd
    import rasterio
    from rasterio.enums import Resampling

    from geoseg.config import TileOptions
    from geoseg.datasets.synth import write_scene, write_truth
    from geoseg.datasets.town import make_town
    from geoseg.evaluation.scoring import area_iou, object_scores
    from geoseg.jobs.predict import Outputs, run_predict

    work = WORK / "gsd"
    work.mkdir(parents=True, exist_ok=True)
    town = make_town(args.size, args.size, seed=args.seed, pixel_size=0.15)
    write_scene(town, work / "town-0.15.tif")
    write_truth(town, work / "truth.gpkg")
    for pixel in (0.3, 0.6):
        f = round(pixel / 0.15)
        with rasterio.open(work / "town-0.15.tif") as src:
            data = src.read(out_shape=(3, src.height // f, src.width // f), resampling=Resampling.average)
            profile = {**src.profile, "width": data.shape[2], "height": data.shape[1],
                       "transform": src.transform * src.transform.scale(f, f)}
        with rasterio.open(work / f"town-{pixel:g}.tif", "w", **profile) as dst:
            dst.write(data)
    raw = torch.load(args.model, weights_only=True)
    torch.save({**raw, "gsd": None}, work / "no-gsd.pt")
    truth = gpd.read_file(work / "truth.gpkg")
    print(f"model {args.model} ({raw.get('gsd')} m/px); {len(truth)} true roofs")
    for pixel in (0.15, 0.3, 0.6):
        for name, model in (("resampled", args.model), ("as it is", work / "no-gsd.pt")):
            out = work / f"roofs-{pixel:g}-{name[:2]}.gpkg"
            run_predict(work / f"town-{pixel:g}.tif", model, Outputs(out, preview=False, overwrite=True),
                        TileOptions())
            pred = gpd.read_file(out, layer="roofs")
            c = object_scores(pred, truth).counts
            print(f"{pixel:5.2f} m/px  {name:9s}  object F1 {c.f1:.3f}  (P {c.precision:.3f} R {c.recall:.3f})"
                  f"  area IoU {area_iou(pred, truth):.3f}  {len(pred)} polygons", flush=True)


if __name__ == "__main__":
    main()
