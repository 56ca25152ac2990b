"""Stitched probability raster → roof polygons (a GeoDataFrame in the scene's CRS).

Works on the written raster strip by strip, so memory does not grow with the scene:
each strip is thresholded, its 4-connected components labelled and traced along the
pixels' edges (``vector.polygonize``: the polygons GDAL's polygonize writes, in whole-array
numpy operations) in pixel coordinates. A component that reaches a strip's lower edge
is carried, as pixels, into the next strip and traced there whole, so a roof across
strip edges is one polygon, traced as from the whole raster (only a component taller
than ``CARRY_STRIPS`` strips is traced in parts, joined along their common edge). With
``vector.touching``, a component holding two or more cores of high probability is traced as its
pieces cut at the probability's valleys (``geoseg.split``). Then pixel → map
coordinates, clean-up in map units (opening, minimum area, holes, simplification or
regularisation), and attributes.

Regularisation (``regularize``) snaps a roof outline to its dominant orientation with
right angles: the outline is simplified, its dominant direction found as the
length-weighted circular mean of its edge directions modulo 90°, every edge classed as
along or across that direction, runs of edges of one class replaced by one line at their
length-weighted mean offset, and edges shorter than a minimum removed (their neighbours
merge) until the outline is rectilinear. When that does not fit the roof (a round or
irregular roof), the minimum rotated rectangle is tried, and failing both, the simplified
outline is kept.
"""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool

import geopandas as gpd
import numpy as np

from geoseg.config import VectorizeOptions
from geoseg.errors import GeosegError
from geoseg.io.raster import open_raster, raster_strips
from geoseg.vector.clean import Frame, frame_of, least_box, to_table
from geoseg.vector.parts import Part, RunComponents, strip_parts
from geoseg.vector.strips import StripTracer, StripWork
from geoseg.vector.table import PolygonTable


def _trace_strip(strip: StripWork, min_box: float, frame: Frame, options: VectorizeOptions, scene_name: str,
                 comps: RunComponents | None = None):
    """A strip traced in a worker thread or process: its edge parts (raw, for
    ``StripTracer.settle``), and the others finished: cleaned and measured, ids from 1."""
    edge, inner = strip.split(strip_parts(strip.prob, strip.mask, strip.top, min_box, comps, strip.hold,
                                           strip.valleys))
    return edge, to_table(inner, frame, options, 1, scene_name)


def _quiet_worker() -> None:
    """Workers leave Ctrl-C to the main process, which stops them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


_POOLS: dict[int, object] = {}


def trace_pool(workers: int):
    """A process pool of ``workers`` tracers, started once per process and kept (the workers
    import geoseg once: about a second) and warmed up at once, so they start while the model
    loads."""
    if workers not in _POOLS:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_quiet_worker)
        for _ in range(workers):
            pool.submit(_quiet_worker)
        _POOLS[workers] = pool
    return _POOLS[workers]


def _raster_rows(prob_path: str | os.PathLike, step: int):
    """A raster's first band as ``(first row, rows)`` blocks of ``step`` rows, top to bottom."""
    with open_raster(prob_path) as src:
        for win, rows in raster_strips(src, step):
            yield win.row_off, rows


def iter_pixel_parts(prob_path: str | os.PathLike, threshold: float = 0.5, rows: int | None = None,
                     opening_px: int = 0, split_seed: float | None = None):
    """``StripTracer`` over a probability raster on disk: lists of finished parts, strip by strip."""
    with open_raster(prob_path) as src:
        tracer = StripTracer(src.height, src.width, threshold, rows, opening_px, split_seed=split_seed)
    for r0, block in _raster_rows(prob_path, tracer.step):
        yield tracer.feed(r0, block)
    yield tracer.close()


def iter_polygons(prob_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
                  scene_name: str | None = None):
    """Roof polygons of a probability raster as a stream of GeoDataFrames (one per strip).

    Each chunk is in the raster's CRS (None: pixel coordinates) with the columns of
    ``vectorize``; ids run on across chunks. Memory does not grow with the scene.
    """
    for table in _iter_tables(prob_path, options, scene_name):
        yield table.frame()


def _iter_tables(prob_path: str | os.PathLike, options: VectorizeOptions, scene_name: str | None):
    """``iter_polygons``'s chunks as ``PolygonTable``s."""
    stream = PolygonStream(prob_path, options, scene_name)
    for r0, block in _raster_rows(prob_path, stream.tracer.step):
        yield stream.feed(r0, block)
    yield stream.close()


class _Worker:
    """A thread that applies ``work(*item)`` to the items ``put`` to it, in order, keeping the
    results for ``results()``; at most ``depth`` items wait. Its error is raised in the
    caller at the next ``put``, ``results`` or ``finish``."""

    def __init__(self, work, depth: int) -> None:
        import queue
        import threading

        self.work, self.items, self.done = work, queue.Queue(depth), queue.SimpleQueue()
        self.error: BaseException | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="geoseg-trace", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import queue

        while not self.stopped.is_set():
            try:
                item = self.items.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                return
            try:
                self.done.put(self.work(*item))
            except BaseException as exc:  # raised in the caller
                self.error = exc
                return

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, *item) -> None:
        self._put(item)

    def _put(self, item: tuple | None) -> None:
        import queue

        while True:
            self._check()
            if not self.thread.is_alive():
                raise RuntimeError("the tracing thread has stopped")
            try:
                self.items.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def results(self) -> list:
        self._check()
        out = []
        while not self.done.empty():
            out.append(self.done.get())
        return out

    def finish(self) -> list:
        """Wait for every item; their results not yet taken."""
        self._put(None)  # the end: the thread stops once every item before it is done
        self.thread.join()
        self._check()
        return self.results()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


class PolygonStream:
    """``iter_polygons`` of a probability handed over in row blocks as a prediction finishes
    them (no raster written): ``feed(first row, rows)`` (uint8, p × 255, top to bottom, on
    the grid of the raster ``grid_path``, the scene) and ``close()`` each return a chunk (a
    ``PolygonTable``: no GeoDataFrame per strip).

    ``options.trace_threads`` 1 or more: the rows are traced and cleaned in a thread of
    their own while the caller goes on (reading, the model, blending): ``feed`` hands the
    rows over and returns the polygons finished by then (numpy, shapely and GDAL work
    outside Python's lock, so the two overlap); at most ``QUEUED_BLOCKS`` row blocks wait.
    From 2, that thread hands each strip (its components found, the carry settled) to as
    many threads, which trace it and clean its inner polygons. ``options.trace_workers``
    above 0: worker processes do that instead. The strips' edge polygons are joined in
    order; at most two strips per thread or worker are in flight (memory stays flat).
    Either way the polygons are the same, in the same order, with the same ids."""

    QUEUED_BLOCKS = 2

    def __init__(self, grid_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
                 scene_name: str | None = None, carry_strips: int | None = None) -> None:
        from collections import deque

        self.frame = frame_of(grid_path)
        self.options, self.scene_name = options, scene_name or ""
        pixel_m = float(np.sqrt(self.frame.pixel_side_m2)) if self.frame.area_crs is not None else self.frame.pixel_side
        width, height = self.frame.size
        self.tracer = StripTracer(height, width, options.threshold, options.strip_rows,
                                  round(options.opening / pixel_m), least_box(self.frame, options),
                                  options.split or None, carry_strips)
        self.next_id = 1
        threads = options.trace_threads or 0
        self.threads = None  # strip tracers that are threads: they take the components as they are
        if options.trace_workers:
            self.pool, self.in_flight = trace_pool(options.trace_workers), 2 * options.trace_workers
        elif threads >= 2:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = self.threads = ThreadPoolExecutor(threads, thread_name_prefix="geoseg-strip")
            self.in_flight = 2 * threads
        else:
            self.pool = None
        self.pending: deque = deque()  # (strip, future) of the strips in flight, in order
        self.thread = _Worker(self._feed, self.QUEUED_BLOCKS) if threads else None

    def feed(self, row0: int, rows: np.ndarray) -> PolygonTable:
        if self.thread is None:
            return self._feed(row0, rows)
        self.thread.put(row0, rows)
        return self._concat(self.thread.results(), ids=False)

    def close(self) -> PolygonTable:
        done = self.thread.finish() if self.thread is not None else []
        if self.pool is None:
            last = self._chunk(self.tracer.close())
        else:
            last = self._concat([*self._settle(keep=0), to_table(self.tracer.close(), self.frame, self.options, 1,
                                                                self.scene_name)])
        if self.threads is not None:
            self.threads.shutdown()
        return self._concat([*done, last], ids=False)

    def abandon(self) -> None:
        """Stop the threads and cancel the strips in flight (the run stopped)."""
        if self.thread is not None:
            self.thread.stop()
        for _, future in self.pending:
            future.cancel()
        self.pending.clear()
        if self.threads is not None:
            self.threads.shutdown(cancel_futures=True)

    def _feed(self, row0: int, rows: np.ndarray) -> PolygonTable:
        if self.pool is None:
            return self._chunk(self.tracer.feed(row0, rows))
        for strip, comps in self.tracer.strips(row0, rows, labelled=True):
            job = (strip, self.tracer.min_box, self.frame, self.options, self.scene_name)
            # a process labels the strip again (cheaper than sending the labels over)
            try:
                future = self.pool.submit(_trace_strip, *job, comps if self.threads else None)
            except BrokenProcessPool:
                raise self._worker_died() from None
            self.pending.append((strip, future))
        return self._concat(self._settle(keep=self.in_flight))

    def _worker_died(self) -> GeosegError:
        """A worker was killed (the out-of-memory killer, kill -9): one line, and the next run
        starts a fresh pool."""
        _POOLS.pop(self.options.trace_workers, None)
        return GeosegError("a tracing worker process died (killed, or out of memory?); run again, with fewer"
                           " `trace_workers` or none (`trace_workers` 0)")

    def _settle(self, keep: int) -> list[PolygonTable]:
        """Settle the strips whose tracing is done, in order, waiting while more than
        ``keep`` are in flight; their polygons, without ids."""
        chunks = []
        while self.pending and (len(self.pending) > keep or self.pending[0][1].done()):
            strip, future = self.pending.popleft()
            try:
                edge, inner = future.result()
            except BrokenProcessPool:
                raise self._worker_died() from None
            joined = to_table(self.tracer.settle(strip, edge), self.frame, self.options, 1, self.scene_name)
            chunks += [joined, inner]
        return chunks

    def _concat(self, chunks: list[PolygonTable], ids: bool = True) -> PolygonTable:
        """One chunk of ``chunks``; ``ids``: numbered on (else they are numbered already)."""
        full = [c for c in chunks if len(c)]
        if not full:
            return chunks[0] if chunks and not ids else self._chunk([])
        chunk = PolygonTable.concat(full)
        if ids:
            self.next_id = chunk.number(self.next_id)
        return chunk

    def _chunk(self, parts: list[Part]) -> PolygonTable:
        chunk = to_table(parts, self.frame, self.options, self.next_id, self.scene_name)
        self.next_id += len(chunk)
        return chunk


def vectorize(prob_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
              scene_name: str | None = None) -> gpd.GeoDataFrame:
    """Roof polygons of a probability raster, in the raster's CRS (None: pixel coordinates).

    Columns: ``id`` (1…n), ``area_m2`` and ``perimeter_m`` (``area_px2``, ``perimeter_px``
    when not georeferenced; measured in a local UTM zone when the CRS is geographic),
    ``score`` (mean roof probability inside),
    ``scene``; one valid polygon per roof, exterior counter-clockwise. Holds every
    polygon in memory: for large scenes, ``iter_polygons`` streams them.
    """
    return PolygonTable.concat(list(_iter_tables(prob_path, options, scene_name))).frame()
