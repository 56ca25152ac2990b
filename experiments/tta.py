"""Test-time augmentation: what it costs, and what it buys against the truth.

    python -m experiments.tta [--size 1024] [--model M]

Predicts an unseen synthetic town (true roofs known) with and without ``--tta`` (the
mean over the 8 flips and quarter turns of each tile) and prints the time of each, the
ratio, pixel IoU and object F1 against the truth.
"""

from __future__ import annotations

import time

import geopandas as gpd

from bench._common import prepare, scene_args
from geoseg.config import TileOptions, VectorizeOptions
from geoseg.evaluation.scoring import object_scores, pixel_scores
from geoseg.models import checkpoint
from geoseg.predict.engine import predict_probability
from geoseg.vector.stream import vectorize


def main() -> None:
    ap = scene_args(__doc__, size=1024, tile=512, precision="auto")
    args = ap.parse_args()
    model, _ = prepare(args)
    from geoseg.datasets import synth

    scene, truth_path = args.work / f"town-{args.size}.tif", args.work / f"town-{args.size}.gpkg"
    if not scene.exists():
        town = synth.make_town(args.size, args.size, seed=7)
        synth.write_scene(town, scene)
        synth.write_truth(town, truth_path)
    truth = gpd.read_file(truth_path)
    state = checkpoint.load(model)
    print(f"scene {args.size}², tile {args.tile}, {len(truth)} true roofs, model {model}")
    seconds = {}
    for tta in (False, True):
        prob = args.work / f"tta-{tta}.tif"
        t = time.perf_counter()
        predict_probability(scene, state, prob, TileOptions(tile_size=args.tile, overlap=args.overlap,
                                                            precision=args.precision, tta=tta))
        seconds[tta] = time.perf_counter() - t
        pix = pixel_scores(prob, truth)
        obj = object_scores(vectorize(prob, VectorizeOptions()), truth).counts
        print(f"tta {'on ' if tta else 'off'}  {seconds[tta]:7.1f} s  pixel IoU {pix.iou:.4f}  object F1 {obj.f1:.4f}"
              f"  (P {obj.precision:.3f}, R {obj.recall:.3f})")
    print(f"TTA costs {seconds[True] / seconds[False]:.2f}× the time of a plain prediction")


if __name__ == "__main__":
    main()
