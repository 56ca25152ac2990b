"""Scale-out: the same scenes predicted in one process, and on a Dask LocalCluster of
1 and 2 worker processes.

    python -m bench scale-out [--size 4096] [--workers 1,2]

The synthetic scene of --size is cut into its four quarters (four scenes); each run
predicts all four into one GeoPackage. Gives scene megapixels per second for each,
and the speed-up of each cluster over one worker (cluster start-up included). On a 2-core machine the
gain is bounded by the cores: one process already runs the model on both.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import rasterio
from rasterio.windows import Window

from bench._common import WORK
from bench.harness import benchmark
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


@benchmark("speed")
def scale_out(model: str, size: int = 4096, tile: int = 512, overlap: int = 32, precision: str = "auto",
              workers: tuple[int, ...] = (1, 2)) -> dict:
    """Four scenes in one process and on Dask LocalClusters: MP/s each, and each cluster against one worker."""
    from geoseg.datasets.synth import write_mosaic

    WORK.mkdir(exist_ok=True)
    scene = WORK / f"mosaic-{size}.tif"
    if not scene.exists():
        write_mosaic(scene, size)
    scenes = quarters(scene, WORK)
    mp = size**2 / 1e6
    opts = TileOptions(tile_size=tile, overlap=overlap, precision=precision)
    runs = [("one_process", None)] + [(f"workers_{n}", ClusterOptions(workers=int(n))) for n in workers]
    figures: dict = {"mp": mp}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cluster in runs:
            t = time.perf_counter()
            r = run_predict(scenes, model, Path(tmp) / f"{name}.gpkg", opts, cluster=cluster)
            figures[f"{name}_mp_per_s"] = mp / (time.perf_counter() - t)
            figures[f"{name}_polygons"] = r.count
    if "workers_1_mp_per_s" in figures:
        for n in workers:
            figures[f"workers_{n}_over_1"] = figures[f"workers_{n}_mp_per_s"] / figures["workers_1_mp_per_s"]
    return figures
