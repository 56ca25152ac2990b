"""Make the starter roof model shipped inside the package (``geoseg/models/weights/starter.pt``).

    python scripts/make_starter.py --roofs ../shared/data/roofs [--minutes 60] [--hold 4] [--seed 0] [--resume]

Its inputs, rebuilt each time in a work folder (bench-out/starter, never in the package):

- the reference roof tiles (``--roofs``: 20 labelled 256 px RGB tiles of German suburbs,
  taken as 0.3 m/px, from the roof-segmentation project geoseg grew out of), less
  ``--hold`` of them kept out for the model's held-out score, each also as a grey
  rendering (luminance in every band: panchromatic imagery fed as ``--bands 1,1,1``);
- synthetic towns (``geoseg.datasets.synth``) drawn at 0.15, 0.3 and 0.6 m/px and brought to the
  model's 0.3 m/px (averaged down, or resampled up as a coarser sensor's imagery is), in
  colour, in grey, and as 16-bit panchromatic renderings (11-bit values of a sensor's
  gain and offset) stretched to 8 bits by their 1st–99th percentiles, as ``geoseg
  predict`` stretches a 16-bit scene for an 8-bit model (``predict.scene_normalisation``).

The recipe is ``geoseg train``'s default (docs/model-card.md: the U-Net on an
ImageNet-pretrained EfficientNet-Lite0, dice loss, the weights averaged over the last 5
learning-rate cycles, lr 1e-3…1e-4), nodata 0 (the tiles' blanked-out black), within
``--minutes`` of training; ``--resume`` continues the run in the work folder from its
``last.pt`` (for another ``--minutes``). The weights are stored in float16 (half the
bytes; the held-out scores are measured on the stored file). The model's card (what it
was trained on, its pixel size, its held-out scores) goes inside the checkpoint, where
``geoseg info`` reads it. Prints the card as JSON last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GSD = 0.3
RECIPE = dict(loss="dice", average=5, lr_max=1e-3, lr_min=1e-4, nodata=0.0, encoder="efficientnet-lite0",
              tile_size=256, batch_size=8, epochs=100000, samples_per_epoch=64, val_fraction=0.0, gsd=GSD)


def grey(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 → its luminance (ITU-R 601) in all three bands, uint8."""
    y = (rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().clip(0, 255)
    return np.repeat(y.astype(np.uint8)[..., None], 3, axis=2)


def pan16_stretched(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 16-bit panchromatic rendering of ``rgb`` (11-bit values under a random gain and
    offset, with sensor noise), stretched back to 8 bits by its 1st–99th percentiles as
    predict stretches a 16-bit scene for an 8-bit model; grey in all three bands."""
    from geoseg.config import STRETCH_PERCENTILES

    y = grey(rgb)[..., 0].astype(np.float64)
    raw = y * rng.uniform(2.0, 7.0) + rng.uniform(50, 400) + rng.normal(0, 3, y.shape)
    raw = np.clip(raw, 0, 2047).round()
    lo, hi = np.percentile(raw, STRETCH_PERCENTILES)
    v = ((raw - lo) / max(hi - lo, 1e-9) * 255).round().clip(1, 255).astype(np.uint8)  # 0 is nodata
    return np.repeat(v[..., None], 3, axis=2)


def pan16_scene(scene: Path, out: Path) -> Path:
    """``scene`` (8-bit RGB GeoTIFF) as a one-band 16-bit panchromatic scene: 11-bit values under
    a sensor's gain and offset, as a satellite's pan band comes (predict stretches it)."""
    import rasterio

    with rasterio.open(scene) as src:
        rgb, profile = src.read(), src.profile
    y = rgb.transpose(1, 2, 0)[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    raw = np.clip(y * 4.5 + 180 + np.random.default_rng(0).normal(0, 3, y.shape), 0, 2047).round().astype(np.uint16)
    with rasterio.open(out, "w", **{**profile, "count": 1, "dtype": "uint16", "photometric": "MINISBLACK"}) as dst:
        dst.write(raw, 1)
    return out


def synthetic_tiles(folder: Path, seed: int) -> int:
    """Towns at 0.15, 0.3 and 0.6 m/px, brought to 0.3 m/px, cut into 256 px tiles: each tile
    in colour, and a third of them grey and a third 16-bit panchromatic, stretched."""
    from PIL import Image

    from geoseg.datasets.town import make_town

    rng = np.random.default_rng(seed)
    n = 0
    for k, pixel in enumerate((0.15, 0.3, 0.6, 0.15, 0.3, 0.6)):
        side = round(512 * GSD / pixel)  # 512 px at 0.3 m/px of ground
        town = make_town(side, side, seed=seed + 100 + k, pixel_size=pixel, terraces=0.2 if k >= 3 else 0.0)
        image = Image.fromarray(town.image.transpose(1, 2, 0))
        mask = Image.fromarray(town.mask * 255)
        if side != 512:
            image = image.resize((512, 512), Image.Resampling.BOX if side > 512 else Image.Resampling.BILINEAR)
            mask = mask.resize((512, 512), Image.Resampling.BILINEAR)
        for r in range(0, 512, 256):
            for c in range(0, 512, 256):
                tile = np.asarray(image.crop((c, r, c + 256, r + 256)))
                kind = ("colour", "grey", "pan16")[n % 3]
                tile = {"colour": tile, "grey": grey(tile), "pan16": pan16_stretched(tile, rng)}[kind]
                name = f"synth-{kind}-{pixel:g}-{k}-{r}-{c}.png"
                Image.fromarray(tile).save(folder / "images" / name)
                mask.crop((c, r, c + 256, r + 256)).save(folder / "masks" / name)
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roofs", type=Path, default=ROOT.parent / "shared" / "data" / "roofs")
    ap.add_argument("--out", type=Path, default=ROOT / "geoseg" / "models" / "weights" / "starter.pt")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "starter")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--hold", type=int, default=4, help="reference tiles kept out for the held-out score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue the run in --work for another --minutes")
    ap.add_argument("--card-only", action="store_true", help="no training: score the run in --work and write --out")
    args = ap.parse_args()

    import geopandas as gpd
    import torch
    from PIL import Image

    from geoseg.config import TileOptions, TrainConfig
    from geoseg.datasets.synth import write_dataset
    from geoseg.datasets.tiles import find_pairs
    from geoseg.evaluation.metrics import Counts
    from geoseg.evaluation.scoring import evaluate_model, object_scores
    from geoseg.jobs.predict import Outputs, run_predict
    from geoseg.models import checkpoint
    from geoseg.train.loop import fit

    pairs = find_pairs(args.roofs)
    order = np.random.default_rng(args.seed).permutation(len(pairs))
    held = [pairs[i] for i in sorted(order[: args.hold])]
    data = args.work / "data"
    if not (args.resume or args.card_only):
        shutil.rmtree(args.work, ignore_errors=True)
        for sub in ("images", "masks"):
            (data / sub).mkdir(parents=True)
        for p in pairs:
            if p not in held:
                shutil.copy(p.image, data / "images" / p.image.name)
                shutil.copy(p.mask, data / "masks" / p.mask.name)
                rgb = np.asarray(Image.open(p.image).convert("RGB"))
                Image.fromarray(grey(rgb)).save(data / "images" / f"grey-{p.image.stem}.png")
                shutil.copy(p.mask, data / "masks" / f"grey-{p.image.stem}.png")
        synthetic_tiles(data, args.seed)
    n_synth = sum(1 for f in (data / "images").iterdir() if f.name.startswith("synth-"))
    run = args.work / "run"
    if not args.card_only:
        fit(TrainConfig(data_dir=str(data), out_dir=str(run), time_limit=args.minutes, seed=args.seed,
                        resume=args.resume, **RECIPE), progress=True)
    raw = torch.load(run / "model.pt", weights_only=True)
    raw["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in raw["state_dict"].items()}
    model = args.work / "starter-fp16.pt"
    torch.save(raw, model)  # scored as it is shipped
    last = checkpoint.load(run / "last.pt")
    trained = {"steps": int(last.extra["step"]), "epochs": last.epoch}
    held_counts = sum((c for _, c in evaluate_model(model, held)), Counts())
    shutil.rmtree(args.work / "town", ignore_errors=True)
    town = write_dataset(args.work / "town", seed=args.seed + 500, tile_size=256, train_size=256, scene_size=1024)
    pan16 = pan16_scene(town["scene"], args.work / "town-pan16.tif")

    def town_score(scene, name):
        polygons = args.work / f"{name}.gpkg"
        run_predict(scene, model, Outputs(polygons, preview=False, overwrite=True), TileOptions())
        c = object_scores(gpd.read_file(polygons, layer="roofs"), gpd.read_file(town["truth"])).counts
        return {"object_f1": round(c.f1, 4), "precision": round(c.precision, 4), "recall": round(c.recall, 4)}

    town_obj, pan16_obj = town_score(town["scene"], "town-roofs"), town_score(pan16, "town-pan16-roofs")
    card = {
        "name": "geoseg starter roofs",
        "pixel_size_m": GSD,
        "bands": "RGB, 8-bit (grey and 16-bit scenes are stretched to it)",
        "trained_on": (f"{len(pairs) - len(held)} of the {len(pairs)} reference roof tiles (256 px RGB, German"
                       " suburbs, Imagery 2017 GeoBasis-DE/BKG, from the roof-segmentation project geoseg grew out"
                       " of; taken as 0.3 m/px), each also in grey, and"
                       f" {n_synth} synthetic tiles of towns drawn at 0.15, 0.3 and 0.6 m/px brought to 0.3 m/px"
                       " (colour, grey, and 16-bit panchromatic stretched to 8 bits)"),
        "recipe": {k: v for k, v in RECIPE.items() if k not in ("epochs", "val_fraction")} | {
            "seed": args.seed, "weights": "float16", **trained},
        "scores": {
            "held_out_reference_tiles": {"tiles": [p.image.name for p in held], "pixel_iou": round(held_counts.iou, 4),
                                         "pixel_f1": round(held_counts.f1, 4)},
            "unseen_synthetic_town": town_obj,
            "unseen_synthetic_town_panchromatic_16bit": pan16_obj,
        },
        "not_good_at": "other continents' roofs and building types, snow, dense city blocks, imagery far from"
                       " 0.3 m/px (predict resamples to 0.3 m/px and warns beyond a factor of 4), bands other than RGB"
                       " or grey",
        "made_by": "scripts/make_starter.py",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**raw, "card": card, "gsd": GSD}, args.out)
    checkpoint.load(args.out)  # as geoseg will read it
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
