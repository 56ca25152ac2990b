"""The module paths of geoseg 0.1's flat layout, kept working: ``import geoseg.pipeline``
gives ``geoseg.jobs`` (whose ``run_predict`` it was), with a ``DeprecationWarning`` that
names the new place. A meta path finder, so the old names take no file in the tree."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

# the old module -> where its names live now (a package re-exports all of a split module's names)
MOVED = {
    "augment": "train.augment", "checkpoint": "models.checkpoint", "crossval": "train.crossval",
    "dask_predict": "predict.dask_engine", "data": "datasets.tiles", "ddp": "train.ddp", "demo": "jobs.demo",
    "efficientnet": "models.efficientnet", "evaluate": "evaluation.scoring", "export": "outputs.export",
    "inference": "models.inference", "losses": "train.losses", "merge": "vector.merge",
    "metrics": "evaluation.metrics", "model": "models", "onnx_export": "models.onnx", "pipeline": "jobs",
    "polygonize": "vector.polygonize", "preview": "outputs.preview", "scenes": "datasets.scenes",
    "sources": "datasets.sources", "split": "vector.touching", "stac": "io.stac", "stitch": "predict.stitch",
    "style": "outputs.style", "synth": "datasets", "table": "vector.table", "tiling": "samplers.grid",
    "vectorize": "vector",
}


class _Loader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        old = spec.name
        warnings.warn(f"{old} moved to {self.target} in geoseg 0.2; import it from there", DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package != "geoseg" or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(f"geoseg.{MOVED[name]}"))


def install() -> None:
    """Let the old module paths import (once per interpreter)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
