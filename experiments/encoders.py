"""Encoders: the ImageNet-pretrained EfficientNet-Lite0 U-Net (the default since it came)
against the same network from scratch, the old default (a ResNet-34 encoder, random
weights) and the old starter's network (the plain U-Net, depth 4, width 16).

    python -m experiments.encoders speed [--tile 512] [--repeat 5]
    python -m experiments.encoders cv [--steps 304] [--arms lite0,lite0-scratch,resnet34,starter-net] [--folds 5]
    python -m experiments.encoders cv --minutes 3 [--arms ...]

``speed``: in one run, interleaved, the best of ``--repeat``: the bare forward pass in
megapixels per second (geoseg's inference fusions, channels-last, geoseg's precision, one
tile at a time as a CPU predicts) and training steps per second (batches of 8 × 256 px,
forward, backward and Adam), with the ratios to the new default.

``cv``: 5-fold cross-validation on the reference roof tiles (``../shared/data/roofs``,
nodata 0), each arm trained the same number of steps (``--steps``, 8 tiles a step), or for
the same wall time (``--minutes`` a fold, a step count per arm that then differs), and
every fold's held-out tiles predicted as ``geoseg predict`` does: pixel IoU over the
fold's pixels, and object F1 (the masks' 4-connected components matched one to one at
IoU ≥ 0.5). Prints a table, mean ± standard deviation over the folds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
ROOFS = ROOT.parent / "shared" / "data" / "roofs"
ARMS = {
    "lite0": dict(encoder="efficientnet-lite0"),
    "lite0-scratch": dict(encoder="efficientnet-lite0", pretrained=False),
    "lite0-enclr0.1": dict(encoder="efficientnet-lite0", encoder_lr=0.1),
    "lite0-dice+ce": dict(encoder="efficientnet-lite0", loss="dice+ce"),
    "lite0-quarter-plain": dict(encoder="efficientnet-lite0", rotation="quarter", photometric=False),
    "lite0-quarter-plain-dice+ce": dict(encoder="efficientnet-lite0", rotation="quarter", photometric=False,
                                        loss="dice+ce"),
    "lite2": dict(encoder="efficientnet-lite2"),
    "resnet34": dict(encoder="resnet34"),
    "starter-net": dict(encoder="unet", depth=4, width=16),
}


def network(arm: str) -> torch.nn.Module:
    from geoseg.config import RESNET_LEVELS
    from geoseg.models.registry import create_model
    from geoseg.models.unet import UNetConfig

    a = ARMS[arm]
    depth = a.get("depth", RESNET_LEVELS)
    return create_model(UNetConfig(encoder=a["encoder"], depth=depth, width=a.get("width", 16)))


def speed(args) -> None:
    from geoseg.models.inference import fuse_for_inference
    from geoseg.runtime import autocast, resolve_device, resolve_precision

    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    arms = args.arms.split(",")
    x = torch.randn(1, 3, args.tile, args.tile).contiguous(memory_format=torch.channels_last).to(device)
    xb = torch.randn(8, 3, 256, 256).contiguous(memory_format=torch.channels_last).to(device)
    yb = torch.randint(0, 2, (8, 256, 256), device=device)
    fwd = {a: fuse_for_inference(network(a)).to(device).to(memory_format=torch.channels_last) for a in arms}
    train = {a: network(a).to(device).to(memory_format=torch.channels_last).train() for a in arms}
    opts = {a: torch.optim.Adam(train[a].parameters(), 1e-3) for a in arms}
    best = {(a, k): 0.0 for a in arms for k in ("fwd", "step")}
    for _ in range(args.repeat):
        for a in arms:
            with torch.no_grad(), autocast(device, precision):
                fwd[a](x)
                t = time.perf_counter()
                for _ in range(3):
                    fwd[a](x)
                best[a, "fwd"] = max(best[a, "fwd"], 3 * args.tile**2 / 1e6 / (time.perf_counter() - t))
            t = time.perf_counter()
            for _ in range(2):
                with autocast(device, precision):
                    loss = torch.nn.functional.cross_entropy(train[a](xb), yb)
                opts[a].zero_grad()
                loss.backward()
                opts[a].step()
            best[a, "step"] = max(best[a, "step"], 2 / (time.perf_counter() - t))
    ref = arms[0]
    print(f"device {device}, precision {precision}, {torch.get_num_threads()} threads; tile {args.tile} px;"
          f" best of {args.repeat}")
    print(f"{'network':14s} {'M weights':>9s} {'fwd MP/s':>9s} {'× ' + ref:>10s} {'steps/s':>8s} {'× ' + ref:>10s}")
    for a in arms:
        w = sum(p.numel() for p in fwd[a].parameters()) / 1e6
        print(f"{a:14s} {w:9.2f} {best[a, 'fwd']:9.2f} {best[a, 'fwd'] / best[ref, 'fwd']:10.2f}"
              f" {best[a, 'step']:8.3f} {best[a, 'step'] / best[ref, 'step']:10.2f}")


def object_counts(pred: np.ndarray, truth: np.ndarray):
    """One-to-one matches at IoU ≥ 0.5 between the 4-connected components of two masks."""
    from scipy import ndimage

    from geoseg.evaluation.metrics import Counts

    lp, n_p = ndimage.label(pred)
    lt, n_t = ndimage.label(truth)
    if not n_p or not n_t:
        return Counts(0, n_p, n_t, 0)
    pairs = np.stack([lp.ravel(), lt.ravel()])
    inter = np.zeros((n_p + 1, n_t + 1), np.int64)
    np.add.at(inter, (pairs[0], pairs[1]), 1)
    area_p, area_t = np.bincount(lp.ravel(), minlength=n_p + 1), np.bincount(lt.ravel(), minlength=n_t + 1)
    iou = inter[1:, 1:] / (area_p[1:, None] + area_t[None, 1:] - inter[1:, 1:])
    tp = 0
    while iou.size and iou.max() >= 0.5:  # greedy by IoU: at IoU ≥ 0.5 a match is unique anyway
        i, j = np.unravel_index(iou.argmax(), iou.shape)
        tp += 1
        iou[i, :], iou[:, j] = 0, 0
    return Counts(tp, n_p - tp, n_t - tp, 0)


def cv(args) -> None:
    import tempfile

    import rasterio

    from geoseg.config import TileOptions, TrainConfig
    from geoseg.datasets.sources import split_pairs
    from geoseg.datasets.tiles import read_label
    from geoseg.evaluation.metrics import Counts, pixel_counts
    from geoseg.io.raster import probability_cut
    from geoseg.models import checkpoint
    from geoseg.predict.engine import predict_probability
    from geoseg.train.loop import fit

    rows = []
    for arm in args.arms.split(","):
        ious, f1s, steps, secs = [], [], [], []
        for k in range(args.folds):
            epochs = 100000 if args.minutes else max(1, args.steps // 8)
            config = TrainConfig(data_dir=str(args.roofs), out_dir=str(args.work / arm / f"fold-{k}"), nodata=0.0,
                                 folds=args.folds, fold=k, select_best=False, samples_per_epoch=64, epochs=epochs,
                                 time_limit=args.minutes, seed=args.seed, overwrite=True, **ARMS[arm])
            t = time.perf_counter()
            run = fit(config, progress=False)
            secs.append(time.perf_counter() - t)
            steps.append(int(checkpoint.load(run / "last.pt").extra["step"]))
            _, held = split_pairs(config)
            ckpt = checkpoint.load(run / "model.pt")
            pixels, objects = Counts(), Counts()
            with tempfile.TemporaryDirectory() as tmp:
                for pair in held:  # as geoseg predict and geoseg cv score them (evaluate.evaluate_model)
                    predict_probability(pair.image, ckpt, Path(tmp) / "p.tif", TileOptions())
                    with rasterio.open(Path(tmp) / "p.tif") as src:
                        pred = src.read(1) >= probability_cut(0.5)
                    truth = read_label(pair, {}).astype(bool)
                    pixels = pixels + pixel_counts(pred, truth)
                    objects = objects + object_counts(pred, truth)
            ious.append(pixels.iou)
            f1s.append(objects.f1)
            print(f"{arm:14s} fold {k + 1}/{args.folds}: pixel IoU {pixels.iou:.4f}  object F1 {objects.f1:.4f}"
                  f"  ({steps[-1]} steps, {secs[-1] / 60:.1f} min)", flush=True)
        rows.append((arm, ious, f1s, steps, secs))
    what = f"{args.minutes} min a fold" if args.minutes else f"{args.steps} steps of 8 tiles"
    print(f"\n5-fold CV on the reference roof tiles, {what}; held-out tiles predicted as geoseg predict does")
    print(f"{'arm':14s} {'pixel IoU':>16s} {'object F1':>16s} {'steps':>6s} {'min/fold':>8s}  folds (IoU)")
    for arm, ious, f1s, steps, secs in rows:
        print(f"{arm:14s} {statistics.fmean(ious):8.4f} ± {statistics.pstdev(ious):.3f}"
              f" {statistics.fmean(f1s):8.4f} ± {statistics.pstdev(f1s):.3f} {statistics.fmean(steps):6.0f}"
              f" {statistics.fmean(secs) / 60:8.1f}  {' '.join(f'{v:.3f}' for v in ious)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--tile", type=int, default=512)
    s.add_argument("--repeat", type=int, default=5)
    s.add_argument("--arms", default="lite0,resnet34,starter-net")
    c = sub.add_parser("cv")
    c.add_argument("--steps", type=int, default=304)
    c.add_argument("--minutes", type=float, default=None)
    c.add_argument("--folds", type=int, default=5)
    c.add_argument("--arms", default="lite0,lite0-scratch,resnet34,starter-net")
    c.add_argument("--roofs", type=Path, default=ROOFS)
    c.add_argument("--work", type=Path, default=ROOT / "bench-out" / "encoders")
    c.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(0)
    speed(args) if args.what == "speed" else cv(args)


if __name__ == "__main__":
    main()
