"""Prediction with K classes against two: peak memory as the scene grows, and throughput.

A model of each class count (the same small plain U-Net, its head biased to background so the
polygons are few and the figures are the engine's: a stitcher per class, the class bands
joined, each pixel's class) predicts synthetic mosaics of each size in a fresh process."""

from __future__ import annotations

from pathlib import Path

from bench._common import PEAK_RSS, WORK, run_child
from bench.harness import benchmark

CHILD = f"""
import json, sys, time
from geoseg.config import TileOptions
from geoseg.jobs.predict import Outputs, run_predict
t = time.perf_counter()
r = run_predict(sys.argv[1], sys.argv[2], Outputs(sys.argv[3], preview=False, overwrite=True),
                TileOptions(tile_size=512, overlap=32))
seconds = time.perf_counter() - t
{PEAK_RSS}
print(json.dumps(dict(seconds=seconds, polygons=r.count, peak_rss_mib=peak_rss_mib)))
"""


def class_model(k: int, out: Path) -> Path:
    """A small plain U-Net of ``k`` classes with random weights, its head biased to background."""
    import torch

    from geoseg.datasets.classes import colours_of
    from geoseg.datasets.normalisation import Normalisation
    from geoseg.models import checkpoint
    from geoseg.models.registry import create_model
    from geoseg.models.unet import UNetConfig

    torch.manual_seed(0)
    net = create_model(UNetConfig(classes=k, depth=4, width=16)).eval()
    with torch.no_grad():
        net.head.bias.copy_(torch.tensor([6.0] + [0.0] * (k - 1)))
    names = ("background", *(f"class{i}" for i in range(1, k)))
    checkpoint.save(out, net, Normalisation(255.0, (0.5,) * 3, (0.25,) * 3), 256, classes=list(names),
                    colours=list(colours_of(names)))
    return out


@benchmark("memory")
def predict_classes(sizes: tuple[int, ...] = (2048, 12288), classes: tuple[int, ...] = (2, 5)) -> dict:
    """Peak RSS and MP/s of predict with K classes: each K's largest/smallest RSS ratio, K/2 speed."""
    from geoseg.datasets.synth import write_mosaic

    WORK.mkdir(exist_ok=True)
    figures: dict = {}
    for k in classes:
        model = class_model(k, WORK / f"classes-{k}.pt")
        for size in sizes:
            scene = WORK / f"mosaic-{size}.tif"
            if not scene.exists():
                write_mosaic(scene, size)
            r = run_child(CHILD, str(scene), str(model), str(WORK / f"classes-{k}-{size}.gpkg"))
            figures[f"k{k}_{size}_peak_rss_mib"] = r["peak_rss_mib"]
            figures[f"k{k}_{size}_mp_per_s"] = size * size / 1e6 / r["seconds"]
        figures[f"k{k}_peak_rss_ratio"] = (figures[f"k{k}_{sizes[-1]}_peak_rss_mib"]
                                           / figures[f"k{k}_{sizes[0]}_peak_rss_mib"])
    first, last = classes[0], classes[-1]
    figures[f"k{last}_over_k{first}_speed"] = (figures[f"k{last}_{sizes[-1]}_mp_per_s"]
                                               / figures[f"k{first}_{sizes[-1]}_mp_per_s"])
    return figures
