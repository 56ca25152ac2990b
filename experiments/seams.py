"""Seams: does the tiled, blended prediction agree with one forward pass over the whole scene?

    python -m experiments.seams [--size 2048] [--blend hann] [--tile 256] [--overlap 32]

On a synthetic mosaic scene, runs (a) geoseg's tiled prediction (overlapping tiles,
blended, written block by block) and (b) the same model in one forward pass over the
whole scene held in memory (the reference with no seams at all), then prints the share
of pixels whose thresholded mask agrees and the number of polygons each gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch

from bench._common import prepare, scene_args
from geoseg.config import TileOptions, VectorizeOptions
from geoseg.io.raster import PROB_SCALE
from geoseg.models import checkpoint
from geoseg.predict.engine import predict_probability
from geoseg.runtime import autocast, resolve_device, resolve_precision
from geoseg.vector.stream import vectorize


def whole_scene_probability(scene: Path, state, out: Path, precision: str) -> None:
    device = resolve_device("auto")
    precision = resolve_precision(precision, device)
    model, cfg = checkpoint.build_model(state, device)
    model.eval()
    norm = state.norm
    with rasterio.open(scene) as src:
        x = src.read(out_dtype="float32")
        profile = {**src.profile, "count": 1, "photometric": "MINISBLACK"}
    m = cfg.multiple
    h, w = x.shape[1:]
    ph, pw = -h % m, -w % m
    x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    mean, std = torch.tensor(norm.mean)[:, None, None], torch.tensor(norm.std)[:, None, None]
    t = (torch.from_numpy(x) / norm.scale - mean) / std
    with torch.no_grad(), autocast(device, precision):
        prob = model(t[None].float().to(device)).float().softmax(1)[0, 1, :h, :w].cpu().numpy()
    with rasterio.open(out, "w", **profile) as dst:
        dst.write((prob * PROB_SCALE + 0.5).astype(np.uint8)[None])


def main() -> None:
    ap = scene_args(__doc__, size=2048, tile=256, precision="fp32")
    ap.add_argument("--blend", default="hann")
    args = ap.parse_args()
    model, scene = prepare(args)
    state = checkpoint.load(model)
    tiled, whole = args.work / "seams-tiled.tif", args.work / "seams-whole.tif"
    predict_probability(scene, state, tiled, TileOptions(tile_size=args.tile, overlap=args.overlap,
                                                         blend=args.blend, precision=args.precision))
    whole_scene_probability(scene, state, whole, args.precision)
    with rasterio.open(tiled) as a, rasterio.open(whole) as b:
        pa, pb = a.read(1) >= 128, b.read(1) >= 128
    agree = float(np.mean(pa == pb))
    na, nb = len(vectorize(tiled, VectorizeOptions())), len(vectorize(whole, VectorizeOptions()))
    print(f"scene {args.size} px, tile {args.tile}, overlap {args.overlap}, blend {args.blend}, {args.precision}")
    print(f"pixels agreeing after thresholding: {100 * agree:.3f} %")
    print(f"polygons: tiled {na}, whole scene {nb}")


if __name__ == "__main__":
    main()
