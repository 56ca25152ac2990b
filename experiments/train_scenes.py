"""Training from scenes and footprints: flat memory, throughput, and why the label extent exists.

    python -m experiments.train_scenes memory [--sizes 2048,16384] [--samples 32]
    python -m experiments.train_scenes speed [--samples 256]
    python -m experiments.train_scenes extent [--steps 400]
    python -m experiments.train_scenes positives [--steps 400]

memory  For each size, a synthetic orthophoto with footprints (``synth.write_scene_dataset``,
        bench-out/, reused) is trained on for one epoch of ``--samples`` windows in a fresh
        process, which reports its peak RSS; prints the ratio largest / smallest.
speed   Samples per second of the same training (same model, batches, augmentation,
        steps) from the scene read in windows against from pre-cut tiles of the same town
        held in memory (``DATA_DIR``), interleaved, best of ``--repeat``.
extent  An orthophoto whose footprints cover only its left half: trained for a fixed number
        of steps (the same in both runs) with the label extent (pixels outside it left out
        of the loss) and without it (the unlabelled half taught as background), then scored
        (pixel IoU, object F1) on a town neither saw.
positives  The same, with the label extent, for --positive-fraction 0.25, 0.5 and 0.75.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench._common import PEAK_RSS, WORK, run_child

ROOT = Path(__file__).resolve().parent.parent
MODEL = dict(depth=4, width=16, tile_size=256, batch_size=8, lr_max=1e-3, lr_min=1e-4, loss="dice")

CHILD = f"""
import json, sys, time
from geoseg.config import TrainConfig
from geoseg.train.loop import fit
args = json.loads(sys.argv[1])
t = time.perf_counter()
fit(TrainConfig(**args), progress=False)
seconds = time.perf_counter() - t
{PEAK_RSS}
print(json.dumps(dict(seconds=seconds, peak_rss_mib=peak_rss_mib)))
"""


def dataset(size: int, seed: int = 0, label_share: float = 1.0) -> dict:
    from geoseg.datasets.synth import write_scene_dataset

    folder = WORK / f"ortho-{size}-{seed}-{label_share:g}"
    if not (folder / "truth.gpkg").exists():
        write_scene_dataset(folder, size=size, seed=seed, label_share=label_share)
    return {k: folder / f for k, f in (("ortho", "ortho.tif"), ("labels", "buildings.gpkg"),
                                          ("extent", "label_extent.gpkg"), ("truth", "truth.gpkg"))}


def memory(args) -> None:
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        d = dataset(size)
        config = dict(data_dir=str(d["ortho"]), labels=str(d["labels"]), out_dir=str(WORK / f"run-mem-{size}"),
                      epochs=1, samples_per_epoch=args.samples, val_fraction=0.2, overwrite=True, **MODEL)
        r = run_child(CHILD, json.dumps(config))
        r["size"] = size
        rows.append(r)
        print(f"{size:>6} px  {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mib']:7.1f} MiB", flush=True)
    print(f"peak RSS ratio {rows[-1]['size']} / {rows[0]['size']}: "
          f"{rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.3f}")


def speed(args) -> None:
    import rasterio
    import torch
    from torch.utils.data import DataLoader

    from geoseg.datasets import scenes as sc
    from geoseg.datasets.synth import write_scene, write_tiles
    from geoseg.datasets.tiles import TileDataset, find_pairs, load_samples
    from geoseg.datasets.town import make_town
    from geoseg.models.unet import UNet, UNetConfig
    from geoseg.runtime import autocast, resolve_device, resolve_precision
    from geoseg.train.augment import train_transform
    from geoseg.train.losses import get_loss

    folder = WORK / "speed-town"
    if not (folder / "scene.tif").exists():
        folder.mkdir(parents=True, exist_ok=True)
        town = make_town(2048, 2048, seed=5)
        write_scene(town, folder / "scene.tif")
        write_tiles(town, folder / "tiles", 256)
        import geopandas as gpd

        gpd.GeoDataFrame(geometry=town.roofs, crs=town.crs).to_crs(4326).to_file(folder / "buildings.gpkg")
    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    tile = MODEL["tile_size"]
    scenes, _, _ = sc.load_scenes(str(folder / "scene.tif"), str(folder / "buildings.gpkg"), None, None, 30.0)
    zones = sc.spatial_split(scenes, tile, 0.0, 0)
    samples, scale = load_samples(find_pairs(folder / "tiles"))
    norm = sc.window_statistics(scenes, zones, tile, None, scale, 0)

    def loaders():
        t = train_transform(3)
        yield "scene windows", sc.WindowDataset(scenes, zones, norm, tile, transform=t, length=args.samples)
        yield "pre-cut tiles", TileDataset(samples, norm, tile, 8, transform=t, length=args.samples)

    def run(ds) -> float:
        torch.manual_seed(0)
        model = UNet(UNetConfig(depth=MODEL["depth"], width=MODEL["width"])).to(device)
        model = model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = get_loss("dice")
        t0 = time.perf_counter()
        for batch in DataLoader(ds, batch_size=MODEL["batch_size"], shuffle=True):
            b = {k: v.to(device) for k, v in batch.items()}
            with autocast(device, precision):
                loss = loss_fn(model(b["image"].contiguous(memory_format=torch.channels_last)), b["target"],
                               b["valid"], b["weight"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return args.samples / (time.perf_counter() - t0)

    best: dict[str, float] = {}
    with rasterio.Env(GDAL_CACHEMAX=128 << 20):  # bytes (rasterio hands it to GDALSetCacheMax64)
        for _ in range(args.repeat):
            for name, ds in loaders():
                best[name] = max(best.get(name, 0.0), run(ds))
                print(f"{name:14s} {best[name]:6.2f} samples/s (best so far)", flush=True)
    print(f"scene windows / pre-cut tiles: {best['scene windows'] / best['pre-cut tiles']:.3f}")


def _train_and_score(args, name: str, **extra) -> None:
    """Train on the half-labelled orthophoto for ``--steps`` steps, score on an unseen town."""
    import geopandas as gpd

    from geoseg.config import TileOptions, TrainConfig
    from geoseg.datasets.synth import write_dataset
    from geoseg.evaluation.scoring import object_scores, pixel_scores
    from geoseg.jobs.predict import Outputs, run_predict
    from geoseg.train.loop import fit

    d = dataset(args.size, seed=21, label_share=0.5)
    test = WORK / "extent-test"
    if not (test / "scene.tif").exists():
        write_dataset(test, seed=77, tile_size=256, train_size=256, scene_size=1024)
    tag = "".join(c for c in name if c.isalnum())[:24]
    extra = {"label_extent": str(d["extent"]), **extra}
    if extra["label_extent"] is None:
        del extra["label_extent"]
    run = fit(TrainConfig(data_dir=str(d["ortho"]), labels=str(d["labels"]), out_dir=str(WORK / f"run-{tag}"),
                          epochs=1, samples_per_epoch=args.steps * MODEL["batch_size"], val_fraction=0.0,
                          overwrite=True, average=0, **MODEL, **extra), progress=False)
    out = WORK / f"scored-{tag}.gpkg"
    run_predict(test / "scene.tif", run / "model.pt", Outputs(out, prob=out.with_suffix(".tif"), preview=False,
                                                               overwrite=True), TileOptions())
    truth = gpd.read_file(test / "truth.gpkg")
    px = pixel_scores(out.with_suffix(".tif"), truth)
    obj = object_scores(gpd.read_file(out, layer="roofs"), truth).counts
    print(f"{name:30s} pixel IoU {px.iou:.3f}  recall {px.recall:.3f}  object F1 {obj.f1:.3f}"
          f"  ({args.steps} steps of {MODEL['batch_size']})", flush=True)


def extent(args) -> None:
    _train_and_score(args, "with the label extent")
    _train_and_score(args, "without it (whole scene)", label_extent=None, extent_buffer=1e6)


def positives(args) -> None:
    for f in (0.25, 0.5, 0.75):
        _train_and_score(args, f"--positive-fraction {f}", positive_fraction=f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["memory", "speed", "extent", "positives"])
    ap.add_argument("--sizes", default="2048,16384")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--size", type=int, default=2048, help="extent: the orthophoto's side")
    args = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    sys.path.insert(0, str(ROOT))
    {"memory": memory, "speed": speed, "extent": extent, "positives": positives}[args.what](args)


if __name__ == "__main__":
    main()
