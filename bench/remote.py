"""Bytes fetched when predicting a remote COG: the whole scene, and an area of a tenth of it.

    python bench/remote.py [--size 4096] [--model geoseg/models/weights/starter.pt]

A synthetic mosaic is written as a Cloud-Optimised GeoTIFF (512 px blocks, deflate) and
served from a loopback HTTP server that honours byte ranges (``tests/rangeserver.py``,
127.0.0.1 only); ``geoseg predict`` reads it by URL, whole and with ``--aoi`` of a tenth of
its area (a square in a corner), and the bytes the server sent are printed against the
file's size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import WORK

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--model", type=Path, default=ROOT / "geoseg" / "models" / "starter.pt")
    args = ap.parse_args()
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    from geoseg.datasets.synth import write_mosaic
    from geoseg.io.raster import copy_as_cog
    from geoseg.jobs.areas import read_area
    from geoseg.jobs.predict import Outputs, run_predict
    from tests.rangeserver import RangeHandler, serve

    served = WORK / "remote"
    served.mkdir(parents=True, exist_ok=True)
    cog = served / f"mosaic-{args.size}-cog.tif"
    if not cog.exists():
        plain = WORK / f"mosaic-{args.size}.tif"
        if not plain.exists():
            write_mosaic(plain, args.size)
        copy_as_cog(plain, cog)
    size = cog.stat().st_size
    with rasterio.open(cog) as src:
        x0, y0, x1, y1 = src.bounds
        side = ((x1 - x0) * (y1 - y0) / 10) ** 0.5
        gpd.GeoDataFrame(geometry=[box(x0, y1 - side, x0 + side, y1)], crs=src.crs).to_file(served / "aoi.gpkg")
    with serve(served) as url, tempfile.TemporaryDirectory() as tmp:
        for name, area in (("whole scene", None), ("a tenth (--aoi)", read_area(served / "aoi.gpkg"))):
            RangeHandler.sent = 0
            t = time.perf_counter()
            r = run_predict(f"{url}/{cog.name}", args.model, Outputs(Path(tmp) / f"{len(name)}.gpkg", preview=False),
                            area=area)
            print(f"{name:16s} {RangeHandler.sent / 1e6:7.2f} MB of {size / 1e6:.2f} MB = "
                  f"{RangeHandler.sent / size:.3f} x the file  ({r.count} roofs, {time.perf_counter() - t:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
