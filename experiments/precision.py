"""Precision: do the fast paths (bfloat16 autocast on CPU, AMP on CUDA) give float32's roofs?

    python -m experiments.precision [--size 2048] [--tile 512]

Runs geoseg's tiled prediction on one synthetic scene in float32 and in the device's
fast precision, and prints the share of pixels whose thresholded mask agrees, the polygon
counts, and how many float32 polygons have a fast-path polygon at IoU ≥ 0.5.
"""

from __future__ import annotations

import time

import numpy as np
import rasterio
import torch

from bench._common import prepare, scene_args
from geoseg.config import TileOptions, VectorizeOptions
from geoseg.evaluation.metrics import match_objects
from geoseg.models import checkpoint
from geoseg.predict.engine import predict_probability
from geoseg.runtime import resolve_device, resolve_precision
from geoseg.vector.stream import vectorize


def main() -> None:
    ap = scene_args(__doc__, size=2048, tile=512, precision="auto")
    args = ap.parse_args()
    model, scene = prepare(args)
    state = checkpoint.load(model)
    fast = resolve_precision(args.precision, resolve_device("auto"))
    runs = {}
    for precision in ("fp32", fast):
        out = args.work / f"precision-{precision}.tif"
        t = time.perf_counter()
        predict_probability(scene, state, out, TileOptions(tile_size=args.tile, overlap=args.overlap,
                                                           precision=precision))
        runs[precision] = (out, time.perf_counter() - t)
    (a, ta), (b, tb) = runs["fp32"], runs[fast]
    with rasterio.open(a) as x, rasterio.open(b) as y:
        agree = float(np.mean((x.read(1) >= 128) == (y.read(1) >= 128)))
    pa, pb = vectorize(a, VectorizeOptions()), vectorize(b, VectorizeOptions())
    matched = match_objects(list(pb.geometry), list(pa.geometry)).counts.tp
    print(f"scene {args.size} px, tile {args.tile}, {torch.get_num_threads()} threads")
    print(f"fp32 {ta:6.1f} s   {fast} {tb:6.1f} s   ({ta / tb:.2f}× faster)")
    print(f"thresholded masks agree on {100 * agree:.3f} % of pixels")
    print(f"polygons: fp32 {len(pa)}, {fast} {len(pb)}; {matched} of the fp32 polygons matched at IoU ≥ 0.5")


if __name__ == "__main__":
    main()
