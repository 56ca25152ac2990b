"""Prediction on a dask.distributed cluster: one task per scene.

The client sends the model to every worker once (``Client.scatter(..., broadcast=True)``),
so workers need no shared copy of ``model.pt``; they need only to read the scenes
(paths on a shared file system, or URLs GDAL opens). Each task predicts one scene in
the worker's temporary folder and returns its polygons; the client takes the results in
scene order and feeds them to the same merging and writing as a single-process run, so
the output is the same file. Dask retries a task whose worker died (``retries``, and
the scheduler's own reassignment of a killed worker's tasks); a scene that still fails
is reported by name, and the run then writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geoseg.errors import GeosegError, InputError


class ScenesFailedError(GeosegError):
    """Some scenes failed on the cluster even after retries."""


@dataclass(frozen=True)
class ClusterOptions:
    """``scheduler``: address of a running ``dask.distributed`` scheduler (``tcp://host:8786``);
    or ``workers``: start a LocalCluster of that many worker processes on this machine.
    ``retries``: extra attempts of a failed task; ``timeout``: seconds to reach the scheduler."""

    scheduler: str | None = None
    workers: int | None = None
    retries: int = 2
    timeout: float = 20.0

    def __post_init__(self) -> None:
        if (self.scheduler is None) == (self.workers is None):
            raise InputError("give either --scheduler ADDRESS or --workers N, not both")
        if self.workers is not None and self.workers < 1:
            raise InputError("--workers must be at least 1")


def predict_scene_polygons(scene: str, state: dict, tiles, vector, threads: int | None) -> gpd.GeoDataFrame:
    """A task: the roof polygons of one scene, in the scene's CRS, numbered from 1."""
    import rasterio
    import torch

    from geoseg.predict import GDAL_CACHE_MB, predict_probability
    from geoseg.vectorize import iter_polygons

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="geoseg-task-") as tmp, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        prob = Path(tmp) / "prob.tif"
        predict_probability(scene, state, prob, tiles, compress="zstd")
        chunks = list(iter_polygons(prob, vector, scene_name=Path(scene).name))
    return gpd.GeoDataFrame(pd.concat(chunks, ignore_index=True), crs=chunks[0].crs)


@contextlib.contextmanager
def connect(options: ClusterOptions):
    """A ``distributed.Client`` for ``options``; a LocalCluster is closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise InputError(f"distributed prediction needs dask.distributed ({exc}); pip install -e . installs it"
                         ) from None
    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout=f"{options.timeout}s")
        except OSError as exc:
            raise InputError(f"--scheduler {options.scheduler}: cannot connect ({exc}); is the scheduler running?"
                             ) from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        yield client


def scene_polygons(client, scenes: list, state: dict, tiles, vector, options: ClusterOptions,
                   report=None) -> Iterator[tuple[int, gpd.GeoDataFrame]]:
    """``(scene index, polygons)`` for every scene, in scene order, computed on ``client``'s
    workers. Raises ``ScenesFailedError`` naming the scenes that failed for good, after
    every other scene is done."""
    threads = max(1, (os.cpu_count() or 1) // options.workers) if options.workers else None
    import uuid

    run = uuid.uuid4().hex[:8]  # keys of their own: a second run on the same client shares nothing
    # in a list: scattering a dict would scatter each of its values as a future of its own
    [model] = client.scatter([state], broadcast=True, hash=False)
    futures = [client.submit(predict_scene_polygons, str(s), model, tiles, vector, threads,
                             retries=options.retries, pure=False, key=f"geoseg-{run}-scene-{k}-{Path(s).name}")
               for k, s in enumerate(scenes)]
    failed = []
    try:
        for k, future in enumerate(futures):
            try:
                result = future.result()
            except GeosegError as exc:
                failed.append(f"{scenes[k]} ({exc})")
                continue
            except Exception as exc:  # a worker's crash, a killed worker past its retries
                failed.append(f"{scenes[k]} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
                continue
            if report:
                report(f"scene {k + 1}/{len(scenes)} done: {scenes[k]}")
            if not failed:  # once one scene failed nothing is written: stop feeding the writer
                yield k, result
    finally:  # on an early exit (Ctrl-C, a writer's error), drop what is still queued
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
    if failed:
        raise ScenesFailedError(f"{len(failed)} of {len(scenes)} scene(s) failed, nothing was written: "
                                + "; ".join(failed))
