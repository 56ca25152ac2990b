"""geoseg's default recipe against a peer U-Net, on the 5 folds of the reference tiles.

    python -m experiments.peers [--roofs ../shared/data/roofs] [--steps 165] [--jobs 1]
                          [--arms geoseg,smp-resnet34] [--starter MODEL] [--work bench-out/peers]

Arms, each trained on a fold's 16 training tiles and scored on its 4 held-out tiles:
  geoseg          ``geoseg train``'s defaults (``--nodata 0`` for the tiles' blanked black);
  fine-tuned      the same, started from ``--starter`` (``--init``; a model that never saw
                  a reference tile, e.g. ``bench/finetune.py``'s synthetic-only start);
  smp-ENCODER     ``segmentation_models_pytorch.Unet`` with that encoder (resnet18,
                  resnet34, …), random weights (pretrained ones cannot be downloaded here).
                  It takes the U-Net's place in geoseg's own training loop and tiled
                  prediction, so data, augmentation, loss, schedule, weight averaging,
                  steps and scoring are the same as the geoseg arm's; only the network
                  differs. Needs ``pip install segmentation-models-pytorch`` (the bench's
                  own dependency, never geoseg's).
  geoseg-wW-dD    the default recipe with another width W and depth D (capacity).

Every arm runs ``--steps`` steps of 8 tiles (a fixed number, so a loaded machine changes
the minutes, never the figures: 165 steps are 7 minutes of the 2-core development CPU,
1 400 were 7 minutes of the older bf16 Xeon the issue's budget was set on). ``--jobs``
runs that many (arm, fold) pairs at once, each in its own process with one CPU thread
(for a many-core machine with a GPU); each writes its JSON row to ``--work``/rows/ and
the summary prints last: held-out pixel IoU and F1 over all pixels, object F1 at IoU 0.5
with roofs as the connected components of the masks (``bench/finetune.py``'s scoring).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BATCH, PER_EPOCH = 8, 64  # 8 steps an epoch, as the defaults give these 16-tile sets


def smp_unet(encoder: str):
    """A class that builds ``smp.Unet(encoder)`` from a ``UNetConfig`` (bands and classes; its
    depth, width and normalisation are the encoder's own), standing in for geoseg's UNet."""
    import segmentation_models_pytorch as smp
    from torch import nn

    class SmpUNet(nn.Module):
        def __init__(self, config) -> None:
            super().__init__()
            self.config = config
            self.net = smp.Unet(encoder_name=encoder, encoder_weights=None, in_channels=config.in_channels,
                                classes=config.classes)

        def forward(self, x):
            return self.net(x)

    return SmpUNet


def run_one(args, arm: str, fold: int) -> dict:
    """Train ``arm`` on fold ``fold`` and score it on the held-out tiles."""
    import torch

    import geoseg.models.checkpoint
    import geoseg.train
    import geoseg.train.loop
    from experiments.finetune import score
    from geoseg.config import ENCODERS, TrainConfig
    from geoseg.datasets.sources import split_pairs
    from geoseg.train.loop import fit

    if args.jobs > 1:
        torch.set_num_threads(1)
    extra: dict = {}
    if arm.startswith("smp-"):  # the peer takes the network's place in training and prediction
        geoseg.train.loop.create_model = geoseg.models.checkpoint.create_model = smp_unet(arm[4:])
        extra["encoder"] = "resnet18"  # as smp's: 6 levels, inputs in multiples of 32
    elif arm.startswith("geoseg-w"):  # the plain U-Net of another size
        width, depth = arm[len("geoseg-w"):].split("-d")
        extra = {"encoder": "unet", "width": int(width), "depth": int(depth)}
    elif arm.startswith("geoseg-") and arm[len("geoseg-"):] in ENCODERS:
        extra["encoder"] = arm[len("geoseg-"):]
    elif arm == "fine-tuned":
        if not args.starter:
            raise SystemExit("the fine-tuned arm needs --starter MODEL")
        extra["init"] = str(args.starter)
    elif arm != "geoseg":
        raise SystemExit(f"unknown arm {arm!r}")
    config = TrainConfig(data_dir=str(args.roofs), out_dir=str(args.work / arm / f"fold-{fold}"), folds=args.folds,
                         fold=fold, seed=args.seed, select_best=False, nodata=0.0, samples_per_epoch=PER_EPOCH,
                         epochs=max(1, args.steps * BATCH // PER_EPOCH), overwrite=True, **extra)
    t0 = time.perf_counter()
    model = fit(config, progress=False) / "model.pt"
    seconds = time.perf_counter() - t0
    _, held = split_pairs(config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"arm": arm, "fold": fold, "steps": config.epochs * PER_EPOCH // BATCH, "seconds": round(seconds),
            "device": device, "held": [p.image.name for p in held], **score(model, held)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roofs", type=Path, default=ROOT.parent / "shared" / "data" / "roofs")
    ap.add_argument("--steps", type=int, default=165, help="steps of 8 tiles for every arm")
    ap.add_argument("--arms", default="geoseg,smp-resnet34", help="comma-separated (see above)")
    ap.add_argument("--starter", type=Path, help="the start of the fine-tuned arm")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only", type=int, nargs="*", help="run these folds only (0-based)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="(arm, fold) pairs at once, one process each")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "peers")
    ap.add_argument("--one", nargs=2, metavar=("ARM", "FOLD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.roofs.is_dir():
        raise SystemExit(f"{args.roofs}: no reference tiles; pass --roofs DIR")
    rows = args.work / "rows"
    rows.mkdir(parents=True, exist_ok=True)
    if args.one:
        arm, fold = args.one[0], int(args.one[1])
        row = run_one(args, arm, fold)
        (rows / f"{arm}-{fold}.json").write_text(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        return
    pairs = [(arm, k) for arm in args.arms.split(",")
             for k in (args.only if args.only is not None else range(args.folds))]
    common = ["--roofs", str(args.roofs), "--steps", str(args.steps), "--folds", str(args.folds),
              "--seed", str(args.seed), "--jobs", str(args.jobs), "--work", str(args.work)]
    if args.starter:
        common += ["--starter", str(args.starter)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.jobs > 1 else dict(os.environ)
    running: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # to the finally below, which stops the runs
    try:
        for arm, k in pairs:
            (rows / f"{arm}-{k}.json").unlink(missing_ok=True)
            while len(running) >= args.jobs:
                running = [p for p in running if p.poll() is None]
                time.sleep(0.5)
            running.append(subprocess.Popen([sys.executable, __file__, "--one", arm, str(k), *common], env=env))
        failed = sum(p.wait() != 0 for p in running)
    finally:
        for p in running:
            p.kill()
    summarise(rows, [arm for arm in args.arms.split(",")])
    if failed:
        raise SystemExit(f"{failed} of the last runs failed; see their output above")


def summarise(rows: Path, arms: list[str]) -> None:
    got = [json.loads(f.read_text()) for f in sorted(rows.glob("*.json"))]
    print(f"\n{'arm':16s} folds  pixel IoU (mean ± sd)  folds' IoU                      pixel F1  object F1"
          "  steps  minutes/fold  device")
    for arm in arms:
        mine = sorted((r for r in got if r["arm"] == arm), key=lambda r: r["fold"])
        if not mine:
            continue
        iou = [r["pixel_iou"] for r in mine]
        print(f"{arm:16s} {len(mine):5d}  {statistics.fmean(iou):.3f} ± {statistics.pstdev(iou):.3f}"
              f"         {' '.join(f'{v:.3f}' for v in iou):30s}"
              f"  {statistics.fmean(r['pixel_f1'] for r in mine):.3f}"
              f"     {statistics.fmean(r['object_f1'] for r in mine):.3f}"
              f"  {sorted({r['steps'] for r in mine})}"
              f"  {statistics.fmean(r['seconds'] for r in mine) / 60:.1f}  {mine[0]['device']}")


if __name__ == "__main__":
    main()
