"""Regularisation: fewer vertices, and does it cost IoU against the truth?

    python -m experiments.regularize [--size 2048] [--cv-dir bench-out/cv-roofs/softmax]

On a synthetic town it never saw (true roof polygons known), the briefly trained bench
model's stitched prediction is vectorised three ways: raw pixel outlines (``--simplify
0``), the default (one-pixel simplification) and ``--regularize``. For each: the polygon
and vertex counts, object precision/recall/F1 (one-to-one at IoU ≥ 0.5) and the mean IoU
per matched roof. With ``--cv-dir`` (the folder of one loss written by ``bash
bench/cv_roofs.sh``), it does the same on the reference roof tiles, each predicted by the
fold model that did not see it, against polygons traced from its mask.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

from bench._common import prepare, scene_args
from geoseg.config import TileOptions, VectorizeOptions
from geoseg.evaluation.scoring import object_scores
from geoseg.models import checkpoint
from geoseg.predict.engine import predict_probability
from geoseg.vector.stream import vectorize

WAYS = {"raw": VectorizeOptions(simplify=0), "simplified": VectorizeOptions(),
        "regularized": VectorizeOptions(regularize=True)}


def vertices(gdf: gpd.GeoDataFrame) -> int:
    return int(sum(len(g.exterior.coords) - 1 + sum(len(r.coords) - 1 for r in g.interiors) for g in gdf.geometry))


def score(prob: Path, truth: gpd.GeoDataFrame, totals: dict) -> None:
    for name, options in WAYS.items():
        t = time.perf_counter()
        pred = vectorize(prob, options)
        seconds = time.perf_counter() - t
        match = object_scores(pred, truth)
        row = totals.setdefault(name, {"polygons": 0, "vertices": 0, "tp": 0, "fp": 0, "fn": 0, "ious": [],
                                       "seconds": 0.0})
        row["polygons"] += len(pred)
        row["vertices"] += vertices(pred)
        row["tp"] += match.counts.tp
        row["fp"] += match.counts.fp
        row["fn"] += match.counts.fn
        row["ious"] += [iou for _, _, iou in match.pairs]
        row["seconds"] += seconds


def report(title: str, totals: dict) -> None:
    print(title)
    print(f"{'outlines':12s} {'polygons':>8s} {'vertices':>9s} {'per roof':>8s} {'P':>6s} {'R':>6s} {'F1':>6s}"
          f" {'mean IoU':>9s} {'seconds':>8s}")
    raw = totals["raw"]["vertices"]
    for name, r in totals.items():
        p = r["tp"] / max(r["tp"] + r["fp"], 1)
        rc = r["tp"] / max(r["tp"] + r["fn"], 1)
        f1 = 2 * p * rc / max(p + rc, 1e-12)
        iou = statistics.fmean(r["ious"]) if r["ious"] else float("nan")
        print(f"{name:12s} {r['polygons']:8d} {r['vertices']:9d} {r['vertices'] / max(r['polygons'], 1):8.1f}"
              f" {p:6.3f} {rc:6.3f} {f1:6.3f} {iou:9.4f} {r['seconds']:8.2f}")
    reg = totals["regularized"]
    print(f"regularised outlines have {raw / max(reg['vertices'], 1):.1f}× fewer vertices than raw ones; mean IoU"
          f" per matched roof {statistics.fmean(reg['ious']) - statistics.fmean(totals['raw']['ious']):+.4f}")


def synthetic(args) -> None:
    from geoseg.datasets import synth

    model, _ = prepare(args)
    scene, truth_path = args.work / f"town-{args.size}.tif", args.work / f"town-{args.size}.gpkg"
    if not scene.exists():
        town = synth.make_town(args.size, args.size, seed=7)
        synth.write_scene(town, scene)
        synth.write_truth(town, truth_path)
    prob = args.work / f"town-{args.size}-prob.tif"
    predict_probability(scene, checkpoint.load(model), prob, TileOptions(tile_size=args.tile, overlap=args.overlap,
                                                                         precision=args.precision))
    totals: dict = {}
    score(prob, gpd.read_file(truth_path), totals)
    report(f"synthetic town {args.size}², unseen, {len(gpd.read_file(truth_path))} true roofs", totals)


def reference_tiles(cv_dir: Path) -> None:
    from geoseg.datasets.tiles import find_pairs
    from geoseg.io.raster import read_mask

    totals: dict = {}
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fold in sorted(cv_dir.glob("fold-*")):
            config = json.loads((fold / "config.json").read_text())
            pairs = {p.image.name: p for p in find_pairs(config["data_dir"])}
            state = checkpoint.load(fold / "model.pt")
            for name in config["val_images"]:
                pair = pairs[name]
                prob, mask = Path(tmp) / "prob.tif", Path(tmp) / "truth.tif"
                predict_probability(pair.image, state, prob, TileOptions())
                import rasterio

                with rasterio.open(prob) as src:
                    profile = src.profile
                with rasterio.open(mask, "w", **profile) as dst:
                    dst.write((read_mask(pair.mask) > 0).astype(np.uint8)[None] * 255)
                truth = vectorize(mask, VectorizeOptions(simplify=0, min_area=1))
                score(prob, truth, totals)
                n += 1
    report(f"reference roof tiles: {n} held-out tiles (each predicted by the fold model that did not see it),"
           " truth traced from the masks", totals)


def main() -> None:
    ap = scene_args(__doc__, size=2048, tile=512, precision="auto")
    ap.add_argument("--cv-dir", type=Path, help="one loss's folder from bench/cv_roofs.sh")
    args = ap.parse_args()
    synthetic(args)
    if args.cv_dir:
        print()
        reference_tiles(args.cv_dir)


if __name__ == "__main__":
    main()
