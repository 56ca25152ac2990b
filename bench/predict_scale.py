"""Peak memory and throughput of ``geoseg predict`` as the scene grows: flat memory.

Each size's synthetic mosaic (cached in bench-out/) is predicted by ``run_predict`` in a
fresh process that reports its own peak RSS and wall time, with a model trained briefly on
another synthetic town (cached), so polygons are realistic. ``all_roof`` adds the same
model made to call every pixel roof (its head zeroed, its bias roof), as a badly trained
model or an undeclared nodata fill does: one polygon then crosses every strip.
"""

from __future__ import annotations

from pathlib import Path

from bench._common import PEAK_RSS, WORK, run_child
from bench.harness import benchmark

CHILD = f"""
import json, sys, time
from geoseg.config import TileOptions, VectorizeOptions
from geoseg.jobs.predict import Outputs, run_predict
scene, model, out, tile, overlap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
t = time.perf_counter()
r = run_predict(scene, model, Outputs(out, preview=False, overwrite=True), TileOptions(tile_size=tile, overlap=overlap),
                VectorizeOptions(threshold=float(sys.argv[6])))
seconds = time.perf_counter() - t
{PEAK_RSS}
print(json.dumps(dict(seconds=seconds, polygons=r.count, peak_rss_mib=peak_rss_mib)))
"""


@benchmark("memory")
def predict_scale(model: str, sizes: tuple[int, ...] = (2048, 8192), tile: int = 256, overlap: int = 32,
                  threshold: float = 0.5, all_roof: bool = False) -> dict:
    """Peak RSS and MP/s of geoseg predict at each scene size; the ratio largest/smallest."""
    from geoseg.datasets.synth import write_mosaic

    models = {"model": Path(model)}
    if all_roof:
        models["all_roof"] = all_roof_model(Path(model), WORK / "all-roof.pt")
    figures: dict = {}
    for size in sizes:
        scene = WORK / f"mosaic-{size}.tif"
        if not scene.exists():
            write_mosaic(scene, size)
        for kind, path in models.items():
            r = run_child(CHILD, str(scene), str(path), str(WORK / f"roofs-{size}.gpkg"), str(tile), str(overlap),
                          str(threshold))
            figures[f"{kind}_{size}_peak_rss_mib"] = r["peak_rss_mib"]
            figures[f"{kind}_{size}_mp_per_s"] = size * size / 1e6 / r["seconds"]
            figures[f"{kind}_{size}_polygons"] = r["polygons"]
    for kind in models:
        a, b = figures[f"{kind}_{sizes[0]}_peak_rss_mib"], figures[f"{kind}_{sizes[-1]}_peak_rss_mib"]
        figures[f"{kind}_peak_rss_ratio"] = b / a
    return figures


def all_roof_model(model: Path, out: Path) -> Path:
    """``model`` made to call every pixel roof: its head's weights zeroed, its bias roof."""
    import torch

    state = torch.load(model, weights_only=True)
    weights = dict(state["state_dict"])
    weights["head.weight"] = torch.zeros_like(weights["head.weight"])
    weights["head.bias"] = torch.tensor([-8.0, 8.0], dtype=weights["head.bias"].dtype)
    torch.save({**state, "state_dict": weights}, out)
    return out
