"""Test-time augmentation on held-out images: re-score a finished cross-validation.

    python -m experiments.cv_tta bench-out/cv-roofs-dice-pixel-softmax--/dice

For each ``fold-K`` of a ``geoseg cv`` loss folder, the fold's ``model.pt`` predicts the
images that fold held out (named in its ``config.json``) without and with ``--tta``;
prints the held-out pixel IoU of each fold both ways, their means and the gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

from geoseg.config import TileOptions
from geoseg.datasets.tiles import find_pairs
from geoseg.errors import GeosegWarning
from geoseg.evaluation.metrics import Counts
from geoseg.evaluation.scoring import evaluate_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("loss_dir", type=Path, help="a loss folder of a 'geoseg cv' run (holding fold-0, fold-1, …)")
    args = ap.parse_args()
    warnings.simplefilter("ignore", GeosegWarning)  # grey masks: said by the cross-validation that trained them
    folds = sorted(args.loss_dir.glob("fold-*"), key=lambda p: int(p.name.split("-")[1]))
    if not folds:
        raise SystemExit(f"{args.loss_dir}: no fold-K folders; give a loss folder of a 'geoseg cv' run")
    iou = {False: [], True: []}
    seconds = {False: 0.0, True: 0.0}
    for fold in folds:
        config = json.loads((fold / "config.json").read_text())
        held = [p for p in find_pairs(config["data_dir"]) if p.image.name in set(config["val_images"])]
        for tta in (False, True):
            t = time.perf_counter()
            counts = sum((c for _, c in evaluate_model(fold / "model.pt", held, tiles=TileOptions(tta=tta))), Counts())
            seconds[tta] += time.perf_counter() - t
            iou[tta].append(counts.iou)
        print(f"{fold.name}: {len(held)} held-out images, IoU {iou[False][-1]:.4f} → with TTA {iou[True][-1]:.4f}")
    for tta in (False, True):
        print(f"{'with TTA' if tta else 'plain   '}  mean IoU {statistics.fmean(iou[tta]):.4f} ± "
              f"{statistics.pstdev(iou[tta]):.4f}  ({seconds[tta]:.1f} s)")
    gains = [b - a for a, b in zip(iou[False], iou[True])]
    print(f"gain {statistics.fmean(gains):+.4f} (folds " + " ".join(f"{g:+.3f}" for g in gains) + ")")


if __name__ == "__main__":
    main()
