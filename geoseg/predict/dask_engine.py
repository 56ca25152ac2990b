"""Prediction on a dask.distributed cluster: a task per scene, or per block of one scene.

The client sends the model to every worker once (``Client.scatter(..., broadcast=True)``),
so workers need no shared copy of ``model.pt``; they need only to read the scenes
(paths on a shared file system, or URLs GDAL opens). Each task predicts one scene in
the worker's temporary folder and returns its polygons; the client takes the results in
scene order and feeds them to the same merging and writing as a single-process run, so
the output is the same file. A single scene is cut into blocks of tile rows instead
(``ClusterOptions.block``): each task predicts the scene rows its tile rows finish —
reading the tiles above that reach into them, so the probability is pixel for pixel the
single-process one — and traces them; polygons that touch a block's inner edge come back
raw and are joined with their continuation at the end, and the blocks' probability rows
can be written into one ``--prob-out``. Dask retries a task whose worker died (``retries``, and
the scheduler's own reassignment of a killed worker's tasks); a scene that still fails
is reported by name, and the run then writes nothing.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd

from geoseg.errors import GeosegError, InputError, first_line


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
    block: int = 4096  # scene rows per task when a single scene is cut into blocks

    def __post_init__(self) -> None:
        if (self.scheduler is None) == (self.workers is None):
            raise InputError("give either `scheduler` ADDRESS or `workers` N, not both")
        if self.workers is not None and self.workers < 1:
            raise InputError("`workers` must be at least 1")
        if self.block < 1:
            raise InputError("`block` must be at least 1 row")


def predict_scene_polygons(scene: str, ckpt, tiles, vector, threads: int | None) -> gpd.GeoDataFrame:
    """A task: the roof polygons of one scene, in the scene's CRS, numbered from 1."""
    import rasterio
    import torch

    from geoseg.predict.engine import GDAL_CACHE_BYTES, predict_probability
    from geoseg.predict.resample import model_grid
    from geoseg.vector.stream import vectorize

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="geoseg-task-") as tmp, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        prob = Path(tmp) / "prob.tif"
        predict_probability(model_grid(scene, ckpt, tmp, tiles.gsd), ckpt, prob, tiles, compress="zstd")
        return vectorize(prob, vector, scene_name=Path(scene).name)


def predict_block(scene: str, ckpt, tiles, vector, block: tuple[int, int, int, bool], threads: int | None,
                  with_prob: bool) -> dict:
    """A task: one block of a scene → its finished polygons, the raw parts on its inner
    edges, and (``with_prob``) its probability rows (uint8). ``block``: grid rows
    ``i0…i1−1``, the block's first scene row, and whether it is the scene's last."""
    import rasterio
    import torch

    from geoseg.predict.engine import GDAL_CACHE_BYTES, predict_probability
    from geoseg.vector.bands import band_polygons

    i0, i1, row0, last = block
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="geoseg-task-") as tmp, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        prob = Path(tmp) / "prob.tif"
        predict_probability(scene, ckpt, prob, tiles, compress="zstd", tile_rows=(i0, i1))
        rows = None
        if with_prob:
            with rasterio.open(prob) as src:
                rows = src.read(1)
        done, edge = band_polygons(prob, scene, row0, i0 == 0, last, vector, Path(scene).name)
    return {"row0": row0, "done": done, "edge": edge, "prob": rows}


def scene_blocks(scene, ckpt, tiles, vector, block: int) -> list[tuple[int, int, int, bool]]:
    """The blocks of about ``block`` scene rows (whole rows of tiles) a scene is cut into;
    one block when an opening is asked (it would need its neighbours' rows)."""
    from geoseg.io.raster import open_raster
    from geoseg.predict.engine import band_rows
    from geoseg.samplers.grid import choose_grid

    with open_raster(scene) as src:
        h, w = src.height, src.width
    grid = choose_grid(h, w, ckpt.model.multiple, tiles.tile_size, tiles.overlap, ckpt.fixed_tile)
    step = grid.rows if vector.opening > 0 else max(1, block // grid.stride)
    return [(i0, min(i0 + step, grid.rows), band_rows(grid, i0, min(i0 + step, grid.rows))[0],
             i0 + step >= grid.rows) for i0 in range(0, grid.rows, step)]


def block_polygons(client, scene, ckpt, tiles, vector, options: ClusterOptions, prob_sink=None,
                   report=None) -> Iterator[tuple[int, gpd.GeoDataFrame]]:
    """``(0, polygons)`` chunks of one scene predicted block by block on ``client``'s workers;
    ``prob_sink(row0, rows)`` receives the probability rows, block by block, in order."""
    import uuid

    from geoseg.io.raster import open_raster
    from geoseg.predict.resample import grid_ratio
    from geoseg.vector.bands import join_band_edges

    with open_raster(scene) as src:
        ratio, own = grid_ratio(src, ckpt, tiles.gsd)
    if ratio is not None:
        raise InputError(f"{scene}: {own:.3g} m pixels for a model of {ckpt.gsd:.3g} m; a single scene on a cluster"
                         " is cut into blocks of its own grid, so predict it without `workers`/`scheduler` (it is"
                         " then resampled), or with other scenes (a task each)")
    threads = _threads(options)
    blocks = scene_blocks(scene, ckpt, tiles, vector, options.block)
    run = uuid.uuid4().hex[:8]
    [model] = client.scatter([ckpt], broadcast=True, hash=False)
    futures = [client.submit(predict_block, str(scene), model, tiles, vector, b, threads, prob_sink is not None,
                             retries=options.retries, pure=False, key=f"geoseg-{run}-block-{k}-{Path(scene).name}")
               for k, b in enumerate(blocks)]
    edges: list = []
    try:
        for k, future in enumerate(futures):
            try:
                result = future.result()
            except Exception as exc:
                raise ScenesFailedError(f"{scene}: block {k + 1} of {len(blocks)} failed, nothing was written:"
                                        f" {first_line(exc)}") from None
            if report:
                report(f"block {k + 1}/{len(blocks)} done")
            if prob_sink is not None:
                prob_sink(result["row0"], result["prob"])
            edges += result["edge"]
            yield 0, result["done"]
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
    yield 0, join_band_edges(edges, scene, vector, Path(scene).name)


def _threads(options: ClusterOptions) -> int | None:
    """Torch threads per task on a local cluster (its workers share this machine's cores)."""
    if not options.workers:
        return None
    from geoseg.runtime import threads_per_process

    return threads_per_process(options.workers)


@contextlib.contextmanager
def connect(options: ClusterOptions):
    """A ``distributed.Client`` for ``options``; a LocalCluster is closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise InputError(f"distributed prediction needs dask.distributed ({exc}); pip install 'geoseg[dask]'"
                         ) from None
    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout=f"{options.timeout}s")
        except OSError as exc:
            raise InputError(f"`scheduler` {options.scheduler}: cannot connect ({exc}); is the scheduler running?"
                             ) from None
        with client:
            yield client
        return
    import logging
    import signal

    # Workers started while SIGINT is ignored keep ignoring it: Ctrl-C then reaches this
    # process alone, which closes the cluster, instead of a traceback from every worker.
    # (Its logs are silenced too: what fails reaches the user as this run's own error.)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
    finally:
        signal.signal(signal.SIGINT, previous)
    with cluster, Client(cluster) as client:
        yield client


def scene_polygons(client, scenes: list, ckpt, tiles, vector, options: ClusterOptions,
                   report=None) -> Iterator[tuple[int, gpd.GeoDataFrame]]:
    """``(scene index, polygons)`` for every scene, in scene order, computed on ``client``'s
    workers. Raises ``ScenesFailedError`` naming the scenes that failed for good, after
    every other scene is done."""
    threads = _threads(options)
    import uuid

    run = uuid.uuid4().hex[:8]  # keys of their own: a second run on the same client shares nothing
    # in a list: scattering a dict would scatter each of its values as a future of its own
    [model] = client.scatter([ckpt], broadcast=True, hash=False)
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
                failed.append(f"{scenes[k]} ({type(exc).__name__}: {first_line(exc)})")
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
