"""Touching roofs apart: object F1 on terraced houses with and without the contact gap.

    python -m experiments.terraces [--steps 250] [--gaps 0,2] [--terraces 0.5] [--average 0] [--init starter]
                               [--loss auto] [--splits 0,0.82] [--reuse] [--tag T] [--town-seed 77]

Trains on a synthetic orthophoto whose footprints include rows of 2–5 terraced houses
(``make_town(terraces=…)``: each house its own footprint, sharing walls with its
neighbours; half the rows one roof colour, half with one ridge along the row), once per
``--contact-gap`` in ``--gaps``, each for the same fixed number of steps (batches of 8)
with the defaults otherwise (but ``--average``: weight averaging over the last cycles, the
default of ``geoseg train``, takes in early, unfinished weights when a run is this short);
``--init``: fine-tune from a model (``starter``: the shipped one, which already knows roofs;
its network replaces the default) instead of training from scratch; ``--reuse``: a run
already trained with the same settings is predicted again, not trained again. Predicts an
unseen town of the same kind, once per ``--split`` in ``--splits`` (0: components whole;
a seed probability: touching roofs cut apart at the probability's valleys), and scores:

- object F1 at IoU 0.5 (one-to-one, SpaceNet's rule) over all roofs, and over the
  terraced houses alone (true roofs that touch another; predictions lying mostly on
  terrace rows), which is where a blob covering a whole row scores nothing;
- area IoU of all roofs together (what the gap costs the outlines).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench-out" / "terraces"
BATCH = 8
TEST_SEED = 77  # the unseen town scored; choose settings on another (--town-seed 78), then score here


def test_town(terraces: float, seed: int = TEST_SEED) -> tuple[Path, Path]:
    from geoseg.datasets.synth import write_scene, write_truth
    from geoseg.datasets.town import make_town

    name = f"test-{terraces:g}" + ("" if seed == TEST_SEED else f"-seed{seed}")
    scene, truth = WORK / f"{name}.tif", WORK / f"{name}-truth.gpkg"
    if not truth.exists():
        town = make_town(1024, 1024, seed=seed, terraces=terraces)
        write_scene(town, scene)
        write_truth(town, truth)
    return scene, truth


def terrace_scores(pred, truth) -> tuple[float, int]:
    """Object F1 on the terraced houses: true roofs touching another true roof, and the
    predictions that lie mostly on those rows. Returns (F1, number of terraced houses)."""
    import shapely

    from geoseg.evaluation.scoring import object_scores

    geoms = truth.geometry.values
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    touching = sorted(set(a[a != b].tolist()))
    rows = shapely.union_all(geoms[touching])
    on_rows = pred[pred.geometry.intersection(rows).area > 0.5 * pred.geometry.area]
    return object_scores(on_rows, truth.iloc[touching]).counts.f1, len(touching)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--gaps", default="0,2")
    ap.add_argument("--terraces", type=float, default=0.5, help="share of house sites holding a terrace")
    ap.add_argument("--size", type=int, default=2048, help="the training orthophoto's side, pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--average", type=int, default=0, help="as geoseg train's (its default: 5)")
    ap.add_argument("--init", default=None, help="as geoseg train's: a model.pt or starter")
    ap.add_argument("--loss", default="auto", help="as geoseg train's")
    ap.add_argument("--splits", default="0,0.82", help="geoseg predict's --split values to score each model with")
    ap.add_argument("--reuse", action="store_true", help="predict a run already trained, do not train it again")
    ap.add_argument("--town-seed", type=int, default=TEST_SEED,
                    help="the unseen town to score (77, the test town; 78 served to choose --split's default)")
    ap.add_argument("--tag", default="", help="appended to the run folders' names (to keep runs of other lengths)")
    args = ap.parse_args()

    import geopandas as gpd

    from geoseg.config import TileOptions, TrainConfig, VectorizeOptions
    from geoseg.datasets.synth import write_scene_dataset
    from geoseg.evaluation.scoring import area_iou, object_scores
    from geoseg.jobs.predict import Outputs, run_predict
    from geoseg.train.loop import fit

    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / f"train-{args.size}-{args.terraces:g}"
    if not (data / "truth.gpkg").exists():
        write_scene_dataset(data, size=args.size, seed=21, label_share=1.0, terraces=args.terraces)
    scene, truth_path = test_town(args.terraces, args.town_seed)
    truth = gpd.read_file(truth_path)
    per_epoch = 8 * BATCH
    tag = ("" if args.init is None else "-init-" + Path(args.init).stem) + (
        "" if args.loss == "auto" else "-" + args.loss) + (f"-{args.tag}" if args.tag else "")
    for gap in (int(g) for g in args.gaps.split(",")):
        run = WORK / f"run-gap{gap}{tag}"
        t0 = time.perf_counter()
        reused = args.reuse and (run / "model.pt").exists()
        if not reused:
            fit(TrainConfig(data_dir=str(data / "ortho.tif"), labels=str(data / "buildings.gpkg"), out_dir=str(run),
                            contact_gap=gap, val_fraction=0.0, samples_per_epoch=per_epoch,
                            epochs=max(1, args.steps * BATCH // per_epoch), seed=args.seed, average=args.average,
                            init=args.init, loss=args.loss, overwrite=True), progress=False)
        trained = "trained before" if reused else f"{(time.perf_counter() - t0) / 60:.1f} min"
        for split in (float(v) for v in args.splits.split(",")):
            town = "" if args.town_seed == TEST_SEED else f"-town{args.town_seed}"
            out = WORK / f"roofs-gap{gap}{tag}{f'-split{split:g}' if split else ''}{town}.gpkg"
            run_predict(scene, run / "model.pt", Outputs(out, preview=True, overwrite=True), TileOptions(),
                        VectorizeOptions(split=split))
            pred = gpd.read_file(out, layer="roofs")
            every = object_scores(pred, truth).counts
            rows_f1, n_rows = terrace_scores(pred, truth)
            print(f"--contact-gap {gap} --split {split:g}: object F1 all roofs {every.f1:.3f} (P {every.precision:.3f}"
                  f" R {every.recall:.3f})  terraced houses {rows_f1:.3f} ({n_rows} houses)"
                  f"  area IoU {area_iou(pred, truth):.3f}  [{args.steps} steps, {trained}]", flush=True)


if __name__ == "__main__":
    main()
