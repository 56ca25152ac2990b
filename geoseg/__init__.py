"""geoseg: tiled geospatial segmentation, from labelled tiles or footprints to roof polygons.

The library is a package of subpackages by role, each importing only from those below it
(``docs/architecture.md``): ``errors``, ``config`` and ``runtime`` at the ground; ``io``
(scenes in windows, remote, STAC, vector labels), ``samplers`` (the tile grid, hold-out
blocks), ``datasets`` (tiles, scenes with footprints, synthetic towns), ``vector``
(probability rows to polygons), ``outputs`` (files, style, previews); ``models`` (U-Nets,
checkpoints); ``predict`` (the engine); ``evaluation``; ``train``; and ``jobs`` (whole
commands: ``run_predict``). Torch is imported only by the modules that need it.

The everyday names are here too: ``geoseg.run_predict``, ``geoseg.fit``,
``geoseg.TrainConfig``, ``geoseg.load_checkpoint``.
"""

from geoseg import _moved
from geoseg._lazy import exports

__version__ = "0.2.0"

_moved.install()

_all, _getattr, _dir = exports(__name__, {
    "config": ("TrainConfig", "TileOptions", "VectorizeOptions"),
    "errors": ("GeosegError", "InputError"),
    "jobs.predict": ("run_predict", "Outputs"),
    "train.loop": ("fit",),
    "evaluation.scoring": ("evaluate_model",),
})
__all__ = ["__version__", "load_checkpoint", *_all]


def __getattr__(name: str):
    if name == "load_checkpoint":
        from geoseg.models.checkpoint import load

        return load
    return _getattr(name)


def __dir__() -> list[str]:
    return sorted(__all__)
