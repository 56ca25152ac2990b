"""Fine-tuning from the starter against training from scratch, 5 folds of the reference tiles.

    python -m experiments.finetune [--roofs ../shared/data/roofs] [--steps 120] [--pretrain-steps 300]
                             [--starter synthetic|per-fold] [--encoder unet] [--arms starter,scratch,fine-tuned]
                             [--loss auto]

For each fold of ``geoseg cv``'s 5-fold split of the 20 reference roof tiles (seed 0):

1. **starter**: the model fine-tuning starts from, scored on the fold as it is. With
   ``--starter synthetic`` (the default), one model for every fold, made with the
   starter's recipe (``scripts/make_starter.py``) from synthetic towns alone (drawn at
   0.15/0.3/0.6 m/px, three seeds): no reference tile at all, so none of a fold's.
   With ``--starter per-fold``, the starter is rebuilt for each fold exactly as the
   shipped one is made (synthetic towns and the reference tiles) *without that fold's
   tiles*: over the folds, the 5-fold cross-validation of the starter's recipe (five
   times the pre-training: about 2 h of a 2-core CPU at the shipped starter's length).
   Both for ``--pretrain-steps``.
2. **scratch**: the defaults of ``geoseg train`` (``--nodata 0`` for the tiles' blanked
   black) on the fold's 16 training tiles, ``--steps`` steps.
3. **fine-tuned**: the same, started from that fold's starter (``--init``), the same
   number of steps: the same training time per fold as from scratch.

``--encoder`` is the network of all three (``unet``: the shipped starter's plain U-Net;
``resnet34``: geoseg train's default, whose start is then made with the starter's recipe
but that network); ``--arms`` runs some of them only; ``--loss`` is scratch's and
fine-tuned's (``auto``: ``geoseg train``'s choice).

Every arm runs a fixed number of steps (batches of 8), so a loaded machine changes the
minutes, never the figures; the seconds each took are printed beside them. Scores on
the held-out fold: pixel IoU and F1 over all its pixels, and object F1 at IoU 0.5 with
roofs as the connected components of the masks (20 px² and over). One JSON line per
fold and arm goes to ``--work``/results.jsonl as it finishes; the summary prints last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

BATCH = 8
ARMS = ("starter", "scratch", "fine-tuned")


def components(mask: np.ndarray) -> list:
    """Roofs of a boolean mask: its 4-connected components as polygons (pixel coordinates)."""
    from rasterio import features
    from shapely.geometry import shape

    return [shape(g) for g, v in features.shapes(mask.astype(np.uint8), mask=mask) if v]


def score(model: Path, held) -> dict:
    """Pixel and object scores of ``model`` on the held-out pairs, predicted as ``geoseg predict`` does."""
    import tempfile

    from geoseg.config import TileOptions
    from geoseg.datasets.tiles import read_label
    from geoseg.evaluation.metrics import Counts, match_objects, pixel_counts
    from geoseg.io.raster import open_raster, probability_cut
    from geoseg.models import checkpoint
    from geoseg.predict.engine import predict_probability

    ckpt = checkpoint.load(model)
    counts, objects = Counts(), Counts()
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        for pair in held:
            prob = Path(tmp) / "prob.tif"
            predict_probability(pair.image, ckpt, prob, TileOptions())
            with open_raster(prob) as src:
                pred = src.read(1) >= probability_cut(0.5)
            truth = read_label(pair, {}).astype(bool)
            counts = counts + pixel_counts(pred, truth)
            objects = objects + match_objects(components(pred), components(truth), min_area=20.0).counts
    return {"pixel_iou": round(counts.iou, 4), "pixel_f1": round(counts.f1, 4), "object_f1": round(objects.f1, 4),
            "roofs_true": objects.tp + objects.fn, "roofs_found": objects.tp + objects.fp}


def starter_data(folder: Path, train_pairs, seed: int) -> None:
    """The starter's training tiles: ``train_pairs`` (reference tiles) and synthetic towns;
    with no reference tiles, towns of three seeds instead of one."""
    from make_starter import synthetic_tiles

    shutil.rmtree(folder, ignore_errors=True)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for p in train_pairs:
        shutil.copy(p.image, folder / "images" / p.image.name)
        shutil.copy(p.mask, folder / "masks" / p.mask.name)
    for k in range(1 if train_pairs else 3):
        tmp = folder / f"seed-{k}"
        for sub in ("images", "masks"):
            (tmp / sub).mkdir(parents=True)
        synthetic_tiles(tmp, seed + 10 * k)
        for sub in ("images", "masks"):
            for f in (tmp / sub).iterdir():
                f.rename(folder / sub / f"{k}-{f.name}")
        shutil.rmtree(tmp)


def network(encoder: str) -> dict:
    """TrainConfig's network settings: the starter's plain U-Net, or a ResNet encoder's."""
    from make_starter import RECIPE

    if encoder == "unet":
        return {k: RECIPE[k] for k in ("encoder", "depth", "width")}
    return {"encoder": encoder, "depth": None, "width": RECIPE["width"]}


def train_starter(work: Path, train_pairs, steps: int, per_epoch: int, seed: int, encoder: str = "unet") -> Path:
    from make_starter import RECIPE

    from geoseg.config import TrainConfig
    from geoseg.train.loop import fit

    data = work / "starter-data"
    starter_data(data, train_pairs, seed)
    recipe = {**RECIPE, **network(encoder), "epochs": max(1, steps * BATCH // per_epoch)}
    return fit(TrainConfig(data_dir=str(data), seed=seed, samples_per_epoch=per_epoch, overwrite=True,
                           out_dir=str(work / "starter"), **recipe), progress=False) / "model.pt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roofs", type=Path, default=ROOT.parent / "shared" / "data" / "roofs")
    ap.add_argument("--steps", type=int, default=120, help="steps of 8 tiles for scratch and fine-tuned")
    ap.add_argument("--pretrain-steps", type=int, default=300, help="steps of 8 tiles for the starter")
    ap.add_argument("--starter", choices=["synthetic", "per-fold"], default="synthetic")
    ap.add_argument("--encoder", default="unet", help="the network of every arm (unet: the shipped starter's)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated, of " + ", ".join(ARMS))
    ap.add_argument("--loss", default="auto", help="as geoseg train's, for scratch and fine-tuned")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only", type=int, nargs="*", help="run these folds only (0-based)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "finetune")
    args = ap.parse_args()
    arms = args.arms.split(",")
    if not set(arms) <= set(ARMS):
        raise SystemExit(f"--arms: choose among {', '.join(ARMS)}")

    from geoseg.config import TrainConfig
    from geoseg.datasets.sources import split_pairs
    from geoseg.train.loop import fit

    args.work.mkdir(parents=True, exist_ok=True)
    net = "" if args.encoder == "unet" else "-" + args.encoder  # in the names of its files and folders
    loss = "" if args.loss == "auto" else "-" + args.loss
    results = args.work / f"results-{args.starter}{net}{loss}.jsonl"
    per_epoch = 8 * BATCH  # samples per epoch: 8 steps, as the defaults give these 16-36 tile sets
    base = TrainConfig(data_dir=str(args.roofs), out_dir="", folds=args.folds, seed=args.seed, select_best=False,
                       nodata=0.0, samples_per_epoch=per_epoch, epochs=max(1, args.steps * BATCH // per_epoch),
                       overwrite=True, loss=args.loss, **network(args.encoder))
    shared, needs_start = None, arms != ["scratch"]
    if args.starter == "synthetic" and needs_start:
        t0 = time.perf_counter()
        shared = train_starter(args.work / f"synthetic{net}", [], args.pretrain_steps, per_epoch,
                               args.seed, args.encoder)
        shared_seconds = time.perf_counter() - t0
    for k in args.only if args.only is not None else range(args.folds):
        fold = replace(base, fold=k)
        train_pairs, held = split_pairs(fold)
        t0 = time.perf_counter()
        starter = shared
        if starter is None and needs_start:  # --starter per-fold: rebuilt without this fold's tiles
            starter = train_starter(args.work / f"fold-{k}{net}", train_pairs, args.pretrain_steps, per_epoch,
                                    args.seed, args.encoder)
        starter_seconds = shared_seconds if shared else time.perf_counter() - t0
        for arm in arms:
            t0 = time.perf_counter()
            if arm == "starter":
                model, steps, seconds = starter, args.pretrain_steps, starter_seconds
            else:
                config = replace(fold, out_dir=str(args.work / f"fold-{k}{net}" / (arm + loss)),
                                 init=str(starter) if arm == "fine-tuned" else None)
                model = fit(config, progress=False) / "model.pt"
                steps, seconds = config.epochs * per_epoch // BATCH, time.perf_counter() - t0
            row = {"fold": k, "arm": arm, "starter": args.starter, "steps": steps, "seconds": round(seconds),
                   "held": [p.image.name for p in held], **score(model, held)}
            print(json.dumps(row), flush=True)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
    summarise(results)


def summarise(results: Path) -> None:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    print(f"\n{'arm':16s} folds  pixel IoU (mean ± sd)  pixel F1  object F1  minutes/fold")
    for arm in ARMS:
        got = {r["fold"]: r for r in rows if r["arm"] == arm}  # the latest row of each fold
        if not got:
            continue
        iou = [r["pixel_iou"] for r in got.values()]
        print(f"{arm:16s} {len(got):5d}  {statistics.fmean(iou):.3f} ± {statistics.pstdev(iou):.3f}"
              f"         {statistics.fmean(r['pixel_f1'] for r in got.values()):.3f}"
              f"     {statistics.fmean(r['object_f1'] for r in got.values()):.3f}"
              f"      {statistics.fmean(r['seconds'] for r in got.values()) / 60:.1f}"
              f"  (steps {sorted({r['steps'] for r in got.values()})})")


if __name__ == "__main__":
    main()
