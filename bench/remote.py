"""Bytes fetched when predicting a remote COG: the whole scene, and an area of a tenth of it.

    python -m bench remote [--size 4096] [--model starter]

A synthetic mosaic is written as a Cloud-Optimised GeoTIFF (512 px blocks, deflate) and
served from a loopback HTTP server that honours byte ranges (``tests/rangeserver.py``,
127.0.0.1 only); ``geoseg predict`` reads it by URL, whole and with ``--aoi`` of a tenth of
its area (a square in a corner), and the bytes the server sent are printed against the
file's size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench._common import WORK
from bench.harness import benchmark


@benchmark("speed")
def remote(size: int = 4096, model: str = "starter") -> dict:
    """Bytes a remote COG's prediction fetches, whole and with an --aoi of a tenth, against its size."""
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    from geoseg.datasets.synth import write_mosaic
    from geoseg.io.raster import copy_as_cog
    from geoseg.jobs.areas import read_area
    from geoseg.jobs.predict import Outputs, run_predict
    from geoseg.models import checkpoint
    from tests.rangeserver import RangeHandler, serve

    served = WORK / "remote"
    served.mkdir(parents=True, exist_ok=True)
    cog = served / f"mosaic-{size}-cog.tif"
    if not cog.exists():
        plain = WORK / f"mosaic-{size}.tif"
        if not plain.exists():
            write_mosaic(plain, size)
        copy_as_cog(plain, cog)
    size_bytes = cog.stat().st_size
    with rasterio.open(cog) as src:
        x0, y0, x1, y1 = src.bounds
        side = ((x1 - x0) * (y1 - y0) / 10) ** 0.5
        gpd.GeoDataFrame(geometry=[box(x0, y1 - side, x0 + side, y1)], crs=src.crs).to_file(served / "aoi.gpkg")
    figures: dict = {"file_mb": size_bytes / 1e6}
    with serve(served) as url, tempfile.TemporaryDirectory() as tmp:
        for name, area in (("whole", None), ("tenth", read_area(served / "aoi.gpkg"))):
            RangeHandler.sent = 0
            t = time.perf_counter()
            r = run_predict(f"{url}/{cog.name}", checkpoint.resolve(model),
                            Outputs(Path(tmp) / f"{name}.gpkg", preview=False), area=area)
            figures[f"{name}_fetched_x_file"] = RangeHandler.sent / size_bytes
            figures[f"{name}_seconds"] = time.perf_counter() - t
            figures[f"{name}_roofs"] = r.count
    return figures
