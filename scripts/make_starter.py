"""Make the starter roof model shipped inside the package (``geoseg/models/starter.pt``).

    python scripts/make_starter.py --roofs ../shared/data/roofs [--minutes 12] [--hold 4] [--seed 0]

Its inputs, rebuilt each time in a work folder (bench-out/starter, never in the package):

- the reference roof tiles (``--roofs``: 20 labelled 256 px RGB tiles of German suburbs,
  taken as 0.3 m/px, from the roof-segmentation project geoseg grew out of), less
  ``--hold`` of them kept out for the model's held-out score;
- synthetic towns (``geoseg.synth``) drawn at 0.15, 0.3 and 0.6 m/px and brought to the
  model's 0.3 m/px (averaged down, or resampled up as a coarser sensor's imagery is), so it
  has seen more than one town and more than one sharpness.

The recipe is the best measured on the reference tiles (README, Figures): dice loss, the
weights averaged over the last 5 learning-rate cycles, lr 1e-3…1e-4, nodata 0 (the tiles'
blanked-out black), within ``--minutes`` of training. The model's card (what it was
trained on, its pixel size, its held-out scores) goes inside the checkpoint, where
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
# the plain U-Net: 1.9 MB to ship in the package (a ResNet-18 encoder's would be 57 MB)
RECIPE = dict(loss="dice", average=5, lr_max=1e-3, lr_min=1e-4, nodata=0.0, encoder="unet", depth=4, width=16,
              tile_size=256, batch_size=8, epochs=1000, val_fraction=0.0, gsd=GSD)


def synthetic_tiles(folder: Path, seed: int) -> int:
    """Towns at 0.15, 0.3 and 0.6 m/px, brought to 0.3 m/px, cut into 256 px tiles."""
    from PIL import Image

    from geoseg.synth import make_town

    n = 0
    for k, pixel in enumerate((0.15, 0.3, 0.6)):
        side = round(512 * GSD / pixel)  # 512 px at 0.3 m/px of ground
        town = make_town(side, side, seed=seed + 100 + k, pixel_size=pixel)
        image = Image.fromarray(town.image.transpose(1, 2, 0))
        mask = Image.fromarray(town.mask * 255)
        if side != 512:
            image = image.resize((512, 512), Image.Resampling.BOX if side > 512 else Image.Resampling.BILINEAR)
            mask = mask.resize((512, 512), Image.Resampling.BILINEAR)
        for r in range(0, 512, 256):
            for c in range(0, 512, 256):
                name = f"synth-{pixel:g}-{r}-{c}.png"
                image.crop((c, r, c + 256, r + 256)).save(folder / "images" / name)
                mask.crop((c, r, c + 256, r + 256)).save(folder / "masks" / name)
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roofs", type=Path, default=ROOT.parent / "shared" / "data" / "roofs")
    ap.add_argument("--out", type=Path, default=ROOT / "geoseg" / "models" / "starter.pt")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "starter")
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--hold", type=int, default=4, help="reference tiles kept out for the held-out score")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import geopandas as gpd
    import torch

    from geoseg import checkpoint
    from geoseg.config import TileOptions, TrainConfig
    from geoseg.data import find_pairs
    from geoseg.evaluate import evaluate_model, object_scores
    from geoseg.metrics import Counts
    from geoseg.pipeline import Outputs, run_predict
    from geoseg.synth import write_dataset
    from geoseg.train import fit

    pairs = find_pairs(args.roofs)
    order = np.random.default_rng(args.seed).permutation(len(pairs))
    held = [pairs[i] for i in sorted(order[: args.hold])]
    data = args.work / "data"
    shutil.rmtree(args.work, ignore_errors=True)
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for p in pairs:
        if p not in held:
            shutil.copy(p.image, data / "images" / p.image.name)
            shutil.copy(p.mask, data / "masks" / p.mask.name)
    n_synth = synthetic_tiles(data, args.seed)
    run = fit(TrainConfig(data_dir=str(data), out_dir=str(args.work / "run"), time_limit=args.minutes,
                          seed=args.seed, **RECIPE), progress=True)
    model = run / "model.pt"
    held_counts = sum((c for _, c in evaluate_model(model, held)), Counts())
    town = write_dataset(args.work / "town", seed=args.seed + 500, tile_size=256, train_size=256, scene_size=1024)
    polygons = args.work / "town-roofs.gpkg"
    run_predict(town["scene"], model, Outputs(polygons, preview=False), TileOptions())
    town_obj = object_scores(gpd.read_file(polygons, layer="roofs"), gpd.read_file(town["truth"])).counts
    card = {
        "name": "geoseg starter roofs",
        "pixel_size_m": GSD,
        "bands": "RGB, 8-bit",
        "trained_on": (f"{len(pairs) - len(held)} of the {len(pairs)} reference roof tiles (256 px RGB, German"
                       " suburbs, Imagery 2017 GeoBasis-DE/BKG, from the roof-segmentation project geoseg grew out"
                       f" of; taken as 0.3 m/px) and {n_synth} synthetic tiles of towns drawn at 0.15, 0.3 and"
                       " 0.6 m/px brought to 0.3 m/px"),
        "recipe": {k: v for k, v in RECIPE.items() if k not in ("epochs", "val_fraction")} | {
            "minutes": args.minutes, "seed": args.seed},
        "scores": {
            "held_out_reference_tiles": {"tiles": [p.image.name for p in held], "pixel_iou": round(held_counts.iou, 4),
                                         "pixel_f1": round(held_counts.f1, 4)},
            "unseen_synthetic_town": {"object_f1": round(town_obj.f1, 4), "precision": round(town_obj.precision, 4),
                                      "recall": round(town_obj.recall, 4)},
        },
        "not_good_at": "other continents' roofs and building types, snow, dense city blocks, imagery far from"
                       " 0.3 m/px (predict resamples to 0.3 m/px and warns beyond a factor of 4), bands other than RGB",
        "made_by": "scripts/make_starter.py",
    }
    raw = torch.load(model, weights_only=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**raw, "card": card, "gsd": GSD}, args.out)
    checkpoint.load(args.out)  # as geoseg will read it
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
