"""Peak memory and throughput of `geoseg predict` as the scene grows (issue: scenes of any size).

    python bench/predict_scale.py --sizes 2048,16384
    python bench/predict_scale.py --sizes 2048,12288 --all-roof

For each size, a synthetic mosaic scene is written (bench-out/, reused), then `run_predict`
runs in a fresh process that reports its own peak RSS and wall time. The model is the
default architecture trained for 1.5 minutes on another synthetic town (cached), so
polygons are realistic and vectorisation does real work.
Prints a table and the ratio of peak RSS, largest to smallest.

``--all-roof`` runs each size twice: with that model, and with the same model made to call
every pixel roof (its last layer's weights zeroed, its bias set to roof), as a badly
trained model or an undeclared nodata fill does: one polygon then crosses every strip.
It prints the all-roof run's peak RSS ratio, largest to smallest, and its seconds per
megapixel against the ordinary run's at each size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import PEAK_RSS, WORK, ensure_model, run_child

CHILD = f"""
import json, sys, time
from geoseg.predict import TileOptions
from geoseg.pipeline import Outputs, run_predict
from geoseg.vectorize import VectorizeOptions
scene, model, out, tile, overlap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
t = time.perf_counter()
r = run_predict(scene, model, Outputs(out, preview=False, overwrite=True), TileOptions(tile_size=tile, overlap=overlap),
                VectorizeOptions(threshold=float(sys.argv[6])))
seconds = time.perf_counter() - t
{PEAK_RSS}
print(json.dumps(dict(seconds=seconds, polygons=r.count, peak_rss_mib=peak_rss_mib)))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2048,16384")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--model", type=Path, help="a model.pt; default: one trained briefly on a synthetic town")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--all-roof", action="store_true", help="also a model that calls every pixel roof")
    args = ap.parse_args()
    args.work.mkdir(exist_ok=True)
    from geoseg.datasets.synth import write_mosaic

    model = args.model or ensure_model(args.work)
    models = {"model": model}
    if args.all_roof:
        models["all roof"] = all_roof(model, args.work / "all-roof.pt")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        scene = args.work / f"mosaic-{size}.tif"
        if not scene.exists():
            write_mosaic(scene, size)
        for kind, path in models.items():
            r = run_child(CHILD, str(scene), str(path), str(args.work / f"roofs-{size}.gpkg"),
                          str(args.tile), str(args.overlap), str(args.threshold))
            r.update(size=size, kind=kind, mpix=size * size / 1e6, mpix_per_s=size * size / 1e6 / r["seconds"])
            rows.append(r)
            print(f"{kind:>8} {size:>6} px  {r['mpix']:7.1f} MP  {r['seconds']:7.1f} s  {r['mpix_per_s']:5.2f} MP/s"
                  f"  peak RSS {r['peak_rss_mib']:7.1f} MiB  {r['polygons']} polygons", flush=True)
    for kind in models:
        mine = [r for r in rows if r["kind"] == kind]
        if len(mine) > 1:
            print(f"{kind}: peak RSS ratio {mine[-1]['size']} / {mine[0]['size']}: "
                  f"{mine[-1]['peak_rss_mib'] / mine[0]['peak_rss_mib']:.3f}")
    if args.all_roof:
        for size in sorted({r["size"] for r in rows}):
            a, b = (next(r for r in rows if r["size"] == size and r["kind"] == k) for k in ("model", "all roof"))
            print(f"{size} px: all-roof seconds per MP / ordinary: {b['seconds'] / a['seconds']:.2f}")
    print(json.dumps(rows))


def all_roof(model: Path, out: Path) -> Path:
    """``model`` made to call every pixel roof: its head's weights zeroed, its bias roof."""
    import torch

    state = torch.load(model, weights_only=True)
    weights = dict(state["state_dict"])
    weights["head.weight"] = torch.zeros_like(weights["head.weight"])
    weights["head.bias"] = torch.tensor([-8.0, 8.0], dtype=weights["head.bias"].dtype)
    torch.save({**state, "state_dict": weights}, out)
    return out


if __name__ == "__main__":
    main()
