"""Scale-out: the same scenes predicted in one process, and on a Dask LocalCluster of
1 and 2 worker processes.

    python -m bench.scale_out [--size 4096] [--workers 1,2]

The synthetic scene of --size is cut into its four quarters (four scenes); each run
predicts all four into one GeoPackage. Prints seconds and scene megapixels per second
for each, and the speed-up of each cluster over one worker. On a 2-core machine the
gain is bounded by the cores: one process already runs the model on both.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import rasterio
from rasterio.windows import Window

from bench._common import prepare, scene_args
from geoseg.config import TileOptions
from geoseg.jobs.predict import run_predict
from geoseg.predict.dask_engine import ClusterOptions


def quarters(scene: Path, work: Path) -> list[Path]:
    paths = []
    with rasterio.open(scene) as src:
        h, w = src.height // 2, src.width // 2
        for k, (r, c) in enumerate([(0, 0), (0, w), (h, 0), (h, w)]):
            path = work / f"{scene.stem}-q{k}.tif"
            paths.append(path)
            if path.exists():
                continue
            win = Window(c, r, w, h)
            with rasterio.open(path, "w", **{**src.profile, "width": w, "height": h,
                                             "transform": src.window_transform(win)}) as dst:
                dst.write(src.read(window=win))
    return paths


def main() -> None:
    ap = scene_args(__doc__, size=4096, tile=512, precision="auto")
    ap.add_argument("--workers", default="1,2", help="cluster sizes to time")
    args = ap.parse_args()
    model, scene = prepare(args)
    scenes = quarters(scene, args.work)
    mp = args.size**2 / 1e6
    opts = TileOptions(tile_size=args.tile, overlap=args.overlap, precision=args.precision)
    runs = [("one process", None)] + [(f"{n} worker(s)", ClusterOptions(workers=int(n)))
                                     for n in args.workers.split(",")]
    print(f"4 scenes of {args.size // 2}² px ({mp:.1f} MP in all), tile {args.tile}")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cluster in runs:
            t = time.perf_counter()
            r = run_predict(scenes, model, Path(tmp) / f"{len(times)}.gpkg", opts, cluster=cluster)
            times[name] = time.perf_counter() - t
            print(f"{name:14s} {times[name]:7.1f} s  {mp / times[name]:6.2f} MP/s  ({r.count} polygons)")
    base = times.get("1 worker(s)")
    if base:
        for name, t in times.items():
            if name.endswith("worker(s)"):
                print(f"{name}: {base / t:.2f}× the speed of 1 worker (cluster start-up included)")


if __name__ == "__main__":
    main()
