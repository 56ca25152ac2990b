"""Stitched probability raster → roof polygons (a GeoDataFrame in the scene's CRS).

Works on the written raster strip by strip, so memory does not grow with the scene:
each strip is thresholded, its 4-connected components labelled and traced along the
pixels' edges (``polygonize``: the polygons GDAL's polygonize writes, in whole-array
numpy operations) in pixel coordinates. A component that reaches a strip's lower edge
is carried, as pixels, into the next strip and traced there whole, so a roof across
strip edges is one polygon, traced as from the whole raster (only a component taller
than ``CARRY_STRIPS`` strips is traced in parts, joined along their common edge). With
``split``, a component holding two or more cores of high probability is traced as its
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
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage
from shapely import STRtree, affinity
from shapely.geometry import Polygon, box
from shapely.ops import unary_union

from geoseg.config import FILL_HOLES_M2, FILL_HOLES_PX, MIN_AREA_PX, VectorizeOptions
from geoseg.errors import GeosegError
from geoseg.io import PROB_SCALE, local_utm, open_raster, probability_cut, raster_strips, shapely_affine, strip_rows
from geoseg.metrics import polygon_iou
from geoseg.polygonize import PixelRuns, pixel_runs, run_polygons
from geoseg.split import piece_polygons, split_components
from geoseg.table import PolygonTable, reproject


@dataclass
class _Part:
    geom: Polygon
    prob_sum: float
    pixels: int
    holes: list = field(default_factory=list)  # interior rings set aside while the part is open (``_set_aside``)

    def whole(self) -> _Part:
        """The part with its set-aside holes back in its polygon."""
        if not self.holes:
            return self
        geom = Polygon(self.geom.exterior, [*self.geom.interiors, *self.holes])
        return _Part(geom, self.prob_sum, self.pixels)


def _set_aside(part: _Part) -> _Part:
    """An open part's holes lie above the strip it is being joined with, which only adds area
    below them: they cannot change. Joining the outline alone costs what the strip adds, not
    what the polygon has gathered (a roof-wide polygon over the whole scene has holes in
    every strip)."""
    if not part.geom.interiors:
        return part
    return _Part(Polygon(part.geom.exterior), part.prob_sum, part.pixels, [*part.holes, *part.geom.interiors])


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius + radius  # the +r rounds the disk's rim out a little


@dataclass
class _Components:
    """The 4-connected components of a strip's roof mask of ``shape``, as its pixel runs
    (``polygonize.pixel_runs``, row-major) with each run's component ``label`` (1…n,
    numbered in the raster order of their first pixels, as ``ndimage.label`` numbers
    them): after the one pass that finds the runs, every count, sum, box and outline is
    over the runs or the roof pixels alone (``ndimage.label`` took 17 ms for a strip of
    8192 × 512 pixels; the runs' components take a few)."""

    shape: tuple[int, int]
    runs: PixelRuns
    label: np.ndarray
    n: int

    @classmethod
    def of(cls, mask: np.ndarray) -> _Components:
        runs = pixel_runs(mask)
        label, n = _connect(runs, mask.shape[1])
        return cls(mask.shape, runs, label, n)

    def pixels(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flat indices of the pixels of the runs ``keep`` (bool, per run), in raster
        order, and their labels."""
        r, a, b = (v[keep] for v in self.runs)
        return _run_pixels(r, a, b, self.shape[1]), np.repeat(self.label[keep], b - a)

    def image(self, keep: np.ndarray) -> np.ndarray:
        """The label image (int32, 0 background) of the runs ``keep``."""
        labels = np.zeros(self.shape, dtype=np.int32)
        at, label = self.pixels(keep)
        labels.ravel()[at] = label
        return labels


def _run_pixels(row: np.ndarray, start: np.ndarray, stop: np.ndarray, width: int) -> np.ndarray:
    """The flat indices (row × width + column) of the pixels of runs, run after run."""
    length = stop - start
    before = np.cumsum(length) - length  # pixels of the runs before each
    return np.repeat(row * width + start - before, length) + np.arange(int(length.sum()))


def _connect(runs: PixelRuns, width: int) -> tuple[np.ndarray, int]:
    """Each run's 4-connected component (1…n, in the raster order of their first pixels) and
    n: runs of consecutive rows that share a column are joined. The runs of the row above
    that meet a run are a range of the row-major order: found by two binary searches."""
    r, a, b = runs
    n = len(r)
    if not n:
        return np.zeros(0, dtype=np.int64), 0
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    line = (r - 1) * (width + 1)  # the row above, in keys row × (width + 1) + column
    lo = np.searchsorted(r * (width + 1) + b, line + a, side="right")  # the first run above ending after a
    hi = np.searchsorted(r * (width + 1) + a, line + b, side="left")  # the first starting at or after b
    count = np.maximum(hi - lo, 0)
    total = int(count.sum())
    upper = np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(total)
    lower = np.repeat(np.arange(n), count)
    graph = coo_matrix((np.ones(total, dtype=np.int8), (lower, upper)), shape=(n, n))
    m, comp = connected_components(graph, directed=False)
    _, first = np.unique(comp, return_index=True)  # each component's first run: its first pixel
    number = np.empty(m, dtype=np.int64)
    number[np.argsort(first)] = np.arange(1, m + 1)
    return number[comp], m


def _strip_parts(prob: np.ndarray, mask: np.ndarray, row0: int, min_box: float = 0.0,
                 comps: _Components | None = None, hold: np.ndarray | None = None,
                 split: int = 0) -> list[_Part]:
    """Polygons (pixel coordinates, x = column, y = row) of one strip, with probability sums.
    Components whose bounding box is under ``min_box`` pixels² and that touch neither of the
    strip's edge rows are left out before they are traced (``StripTracer``), and so are the
    labels ``hold``. ``comps``: the mask's components, when they are known. ``split``: a
    seed cut (uint8; 0: none): components holding two or more seeds are cut at the
    probability's valleys (``geoseg.split``)."""
    c = _Components.of(mask) if comps is None else comps
    if c.n == 0:
        return []
    counts = np.bincount(c.label, weights=c.runs.stop - c.runs.start, minlength=c.n + 1).astype(np.int64)
    drop = np.zeros(c.n + 1, dtype=bool)
    if hold is not None:
        drop[hold] = True
    if min_box > 0:
        drop |= _specks(c, counts, min_box)
    keep = ~drop[c.label]  # the others are left out of the tracing: their pixels are background
    at, label = c.pixels(keep)
    sums = np.bincount(label, weights=prob.ravel()[at], minlength=c.n + 1) / PROB_SCALE
    cut = split_components(prob, c.image(keep), c.n, split) if split else None
    if cut is not None:  # the cut components are traced as their pieces
        keep &= ~cut[0][c.label]
    polys, ks = run_polygons(*(v[keep] for v in c.runs), c.label[keep], c.shape, row0)
    parts = [_Part(poly, float(sums[k]), int(counts[k])) for poly, k in zip(polys, ks.tolist())]
    if cut is not None:
        polys, ks = piece_polygons(cut[1], row0)
        at = np.flatnonzero(cut[1])
        piece = cut[1].ravel()[at]
        counts = np.bincount(piece)
        sums = np.bincount(piece, weights=prob.ravel()[at]) / PROB_SCALE
        parts += [_Part(poly, float(sums[k]), int(counts[k])) for poly, k in zip(polys, ks.tolist())]
    return parts


def _specks(c: _Components, counts: np.ndarray, min_box: float) -> np.ndarray:
    """Which components (by label) have a bounding box under ``min_box`` pixels² and touch
    neither the first nor the last row. Only components of fewer pixels than that can have
    such a box: boxes from their runs alone."""
    few = counts < min_box
    few[0] = False
    on = few[c.label]
    if not on.any():
        return np.zeros_like(few)
    r, a, b = (v[on] for v in c.runs)
    lab = c.label[on]
    n = len(counts)
    top, left = np.full(n, c.shape[0]), np.full(n, c.shape[1])
    bottom, right = np.full(n, -1), np.full(n, -1)
    np.minimum.at(top, lab, r)
    np.maximum.at(bottom, lab, r)
    np.minimum.at(left, lab, a)
    np.maximum.at(right, lab, b - 1)
    return few & ((bottom - top + 1) * (right - left + 1) < min_box) & (top > 0) & (bottom < c.shape[0] - 1)


def _join(parts: list[_Part]) -> list[_Part]:
    """Union parts that share edges; probability sums and pixel counts add up. Only the
    parts that meet another are unioned, group by group (one union of every part of a
    wide scene's strip edge cost seconds); the others pass as they are."""
    if len(parts) < 2:
        return list(parts)
    out: list[_Part] = []
    for members in _meeting(np.array([p.geom for p in parts], dtype=object)):
        out += [parts[members[0]]] if len(members) == 1 else _union([parts[i] for i in members])
    return out


def _meeting(geoms: np.ndarray) -> list[np.ndarray]:
    """The groups of ``geoms`` that meet one another, directly or through others (indices,
    each group in order, the groups by their first member)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = STRtree(geoms).query(geoms, predicate="intersects")
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(geoms), len(geoms)))
    _, group = connected_components(graph, directed=False)
    return np.split(np.argsort(group, kind="stable"), np.flatnonzero(np.diff(np.sort(group))) + 1)


def _union(parts: list[_Part]) -> list[_Part]:
    """One union of ``parts`` (a group that meets): its polygons, each with the sums of the
    parts inside it (parts touching only at a corner stay apart)."""
    merged = unary_union([p.geom for p in parts])
    geoms = list(getattr(merged, "geoms", [merged]))
    out = [_Part(g, 0.0, 0) for g in geoms]
    # each part goes to the joined polygon its inner point lies in: one bulk query of the tree
    points = shapely.point_on_surface(np.array([p.geom for p in parts], dtype=object))
    where: dict[int, int] = {}
    for i, j in zip(*STRtree(geoms).query(points, predicate="intersects").tolist()):
        where.setdefault(i, j)
    for i, p in enumerate(parts):
        if i in where:
            j = int(where[i])
            out[j].prob_sum += p.prob_sum
            out[j].pixels += p.pixels
            out[j].holes += p.holes
    return out


def _strip_mask(rows: np.ndarray, r0: int, r1: int, a0: int, height: int, cut: int,
                radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Probability and roof mask of strip r0…r1 from ``rows`` (raster rows a0…, with a halo of
    up to 2 × radius rows either side), so the opening is exactly the one of the whole raster."""
    halo = 2 * radius
    a1 = a0 + rows.shape[0]
    mask = rows >= cut
    if radius > 0:
        # the raster's own edges are padded by reflection: a roof cut by the scene edge keeps its pixels
        top, bottom = (0 if a0 > 0 else halo), (0 if a1 < height else halo)
        padded = np.pad(mask, ((top, bottom), (halo, halo)), mode="symmetric")
        start = r0 - a0 + top
        mask = ndimage.binary_opening(padded, _disk(radius))[start : start + (r1 - r0), halo : -halo]
    else:
        mask = mask[r0 - a0 : r1 - a0]
    return rows[r0 - a0 : r1 - a0], mask


CARRY_STRIPS = 8  # a component reaching further above a strip's end than this many strips is traced in parts


@dataclass
class _Strip:
    """A strip ready to trace: probability and roof mask of raster rows ``top``…``r1``, where
    the rows above ``r0`` hold only the components carried down from the strips before;
    ``hold``: the labels (of ``_Components.of(mask)``) carried on into the next strip, not
    traced here; ``raw_top``: polygons reaching row ``r0`` may continue open parts above."""

    prob: np.ndarray
    mask: np.ndarray
    top: int
    r0: int
    r1: int
    height: int
    hold: np.ndarray
    raw_top: bool
    valleys: int = 0  # a seed cut (uint8): touching roofs cut apart (``geoseg.split``); 0: never

    def split(self, parts: list[_Part]) -> tuple[list[_Part], list[_Part]]:
        """``(edge, inner)``: the parts to be settled with the parts above or below them, and
        the others."""
        if not parts:
            return [], []
        box = shapely.bounds([p.geom for p in parts])
        edge = ((box[:, 1] <= self.r0) & self.raw_top) | ((box[:, 3] >= self.r1) & (self.r1 < self.height))
        return [p for p, e in zip(parts, edge) if e], [p for p, e in zip(parts, edge) if not e]


class StripTracer:
    """Roof polygons in pixel coordinates of a probability raster handed over in row blocks.

    ``feed(first row, rows)`` takes the raster (uint8, p × 255, ``height`` × ``width``)
    top to bottom in blocks of any sizes and returns the polygons finished so far (a list
    of parts); ``close()`` returns the rest. The rows are traced in strips of
    ``strip_rows(width, rows)``. A component that reaches a strip's lower edge is not
    traced there: its pixels are carried down into the next strip and traced with the
    rest of it, so every polygon is traced whole, as from the whole raster at once.
    Only a component reaching more than ``CARRY_STRIPS`` strips above the strip's end is
    traced in parts, held open and joined with its continuation below (pixel edges
    coincide exactly; the joined outline starts at another vertex). Memory is one strip,
    its halo and one block, plus at most ``CARRY_STRIPS`` strips of carried pixels and the
    open parts. ``opening_px``: radius of a morphological opening of the roof mask, in
    pixels (each strip is traced once the 2 × radius rows below it are in). ``min_box``:
    components whose bounding box is under this many pixels² are not traced (speckle: a
    weak model's probability can hold fifty times more specks than roofs, each costing a
    polygon). The caller chooses it so that no such component could have passed its
    minimum area: simplified or regularised, a polygon stays inside its bounding box.
    ``split_seed``: a probability above ``threshold``: components holding two or more cores
    of it are cut at the probability's valleys (``geoseg.split``); None: never.
    """

    def __init__(self, height: int, width: int, threshold: float = 0.5, rows: int | None = None,
                 opening_px: int = 0, min_box: float = 0.0, split_seed: float | None = None) -> None:
        self.height, self.step, self.radius, self.min_box = height, strip_rows(width, rows), opening_px, min_box
        self.cut = probability_cut(threshold)
        self.valleys = 0 if split_seed is None else probability_cut(split_seed)
        self.held: np.ndarray | None = None  # raster rows top… in hand
        self.top = 0
        self.r0 = 0  # the next strip's first row
        self.carry: tuple[int, np.ndarray, np.ndarray] | None = None  # (first row, probability, mask) carried
        self.split = False  # a component has been traced in parts: later strips' top parts may join it
        self.open_parts: list[_Part] = []

    def feed(self, row0: int, rows: np.ndarray) -> list[_Part]:
        done: list[_Part] = []
        for strip, comps in self.strips(row0, rows, labelled=True):
            parts = _strip_parts(strip.prob, strip.mask, strip.top, self.min_box, comps, strip.hold, strip.valleys)
            edge, inner = strip.split(parts)
            done += self.settle(strip, edge) + inner
        return done

    def strips(self, row0: int, rows: np.ndarray, labelled: bool = False):
        """Take a row block; yield each strip it completes (``_Strip``; with ``labelled``,
        ``(strip, its components)``), in order. Every strip's edge parts must
        then be ``settle``d, in the same order."""
        if row0 != self.top + (0 if self.held is None else len(self.held)):
            raise ValueError(f"row block at {row0} out of order")
        self.held = rows if self.held is None else np.concatenate([self.held, rows])
        halo = 2 * self.radius
        while self.r0 < self.height:
            r0, r1 = self.r0, min(self.r0 + self.step, self.height)
            a0, a1 = max(r0 - halo, 0), min(r1 + halo, self.height)
            if self.top + len(self.held) < a1:
                break
            strip, comps = self._carried(*_strip_mask(self.held[a0 - self.top : a1 - self.top], r0, r1, a0,
                                                       self.height, self.cut, self.radius), r0, r1)
            yield (strip, comps) if labelled else strip
            self.r0 = r1
            drop = max(r1 - halo, 0) - self.top
            self.held, self.top = self.held[drop:], self.top + drop

    def _carried(self, prob: np.ndarray, mask: np.ndarray, r0: int, r1: int) -> tuple[_Strip, _Components]:
        """Strip r0…r1 below the pixels carried into it; the components that reach its last
        row are carried on (unless they reach too far up: then they are traced in parts)."""
        top = r0
        if self.carry is not None:
            top, carried_prob, carried_mask = self.carry
            prob, mask = np.concatenate([carried_prob, prob]), np.concatenate([carried_mask, mask])
        c = _Components.of(mask)
        self.carry, hold, raw_top = None, np.empty(0, dtype=np.int64), self.split
        if r1 < self.height and c.n:
            ids = np.unique(c.label[c.runs.row == mask.shape[0] - 1])
            if raw_top:  # those reaching the strip's first row may continue open parts: traced, joined
                ids = np.setdiff1d(ids, c.label[c.runs.row <= r0 - top])
            if len(ids):
                on = np.zeros(c.n + 1, dtype=bool)
                on[ids] = True
                runs = on[c.label]
                first = int(c.runs.row[runs][0])  # the carried components' first row
                if r1 - (top + first) <= CARRY_STRIPS * self.step:
                    carried = np.zeros((mask.shape[0] - first, mask.shape[1]), dtype=bool)
                    carried.ravel()[c.pixels(runs)[0] - first * mask.shape[1]] = True
                    hold, self.carry = ids, (top + first, prob[first:], carried)
                else:
                    self.split = True
        return _Strip(prob, mask, top, r0, r1, self.height, hold, raw_top, self.valleys), c

    def close(self) -> list[_Part]:
        if self.r0 < self.height:
            raise ValueError(f"rows {self.r0}…{self.height} of the raster were never handed over")
        rest, self.open_parts = self.open_parts, []
        return [p.whole() for p in rest]

    def settle(self, strip: _Strip, parts: list[_Part]) -> list[_Part]:
        """A strip's edge parts (``_Strip.split``) joined with the open ones they touch;
        returns those done (the joined ones first), keeps the rest open."""
        r0, r1 = strip.r0, strip.r1
        fresh, touching = [], []
        for part in parts:
            (touching if part.geom.bounds[1] <= r0 else fresh).append(part)
        open_parts = [_set_aside(p) for p in self.open_parts] if touching else self.open_parts
        candidates = _join(open_parts + touching) if open_parts and touching else open_parts + touching
        done, self.open_parts = [], []
        for part in candidates + fresh:
            if r1 < self.height and part.geom.bounds[3] >= r1:
                self.open_parts.append(part)
            else:
                done.append(part.whole())
        return done


def _trace_strip(strip: _Strip, min_box: float, frame: _Frame, options: VectorizeOptions, scene_name: str,
                 comps: _Components | None = None):
    """A strip traced in a worker thread or process: its edge parts (raw, for
    ``StripTracer.settle``), and the others finished: cleaned and measured, ids from 1."""
    edge, inner = strip.split(_strip_parts(strip.prob, strip.mask, strip.top, min_box, comps, strip.hold,
                                           strip.valleys))
    return edge, _to_table(inner, frame, options, 1, scene_name)


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


@dataclass(frozen=True)
class _Frame:
    """How pixel polygons become map polygons, and how they are measured."""

    crs: object
    coeffs: tuple[float, ...]
    pixel_side: float
    area_crs: object  # a CRS in metres for areas when the scene's is not (None: the scene's own)
    pixel_side_m2: float = 1.0  # a pixel's area in m² (for a geographic scene, near its centre)
    size: tuple[int, int] = (0, 0)  # the raster's width and height, pixels

    @property
    def pixel_area(self) -> float:
        """A pixel's area in the units polygons are measured in (m², or pixels² without a CRS)."""
        return self.pixel_side_m2 if self.area_crs is not None else self.pixel_side**2

    def min_area(self, options: VectorizeOptions) -> float:
        """``options.min_area``, or ``MIN_AREA_PX`` pixels' area."""
        return MIN_AREA_PX * self.pixel_area if options.min_area is None else options.min_area

    def hole_area(self, options: VectorizeOptions) -> float:
        """``options.fill_holes``, or ``FILL_HOLES_PX`` pixels' area, at most ``FILL_HOLES_M2``
        where the units are metres."""
        if options.fill_holes is not None:
            return options.fill_holes
        return FILL_HOLES_PX * self.pixel_area if self.crs is None else min(FILL_HOLES_PX * self.pixel_area,
                                                                            FILL_HOLES_M2)

    def at_edge(self, pixel_geoms: list[Polygon]) -> np.ndarray:
        """Which polygons (pixel coordinates) the raster's edge cuts."""
        if not pixel_geoms:
            return np.zeros(0, dtype=bool)
        x0, y0, x1, y1 = shapely.bounds(pixel_geoms).T
        return (x0 <= 0) | (y0 <= 0) | (x1 >= self.size[0]) | (y1 >= self.size[1])


def _frame(prob_path) -> _Frame:
    with open_raster(prob_path) as src:
        crs, t, bounds, size = src.crs, src.transform, src.bounds, (src.width, src.height)
    if crs is None:
        return _Frame(None, (), 1.0, None, size=size)
    area_crs = None
    if not (crs.is_projected and crs.linear_units in ("metre", "meter")):
        area_crs = local_utm(box(*bounds), crs)
        cx, cy = (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2
        px = gpd.GeoSeries([box(cx, cy, cx + abs(t.a), cy + abs(t.e))], crs=crs).to_crs(area_crs).area.iloc[0]
        return _Frame(crs, tuple(shapely_affine(t)), abs(t.a), area_crs, float(px), size)
    return _Frame(crs, tuple(shapely_affine(t)), abs(t.a), area_crs, size=size)


def _to_table(parts: list[_Part], frame: _Frame, options: VectorizeOptions, first_id: int,
              scene_name: str) -> PolygonTable:
    """Pixel parts → cleaned, measured polygons in the scene's CRS, numbered from ``first_id``."""
    georef = frame.crs is not None
    geoms = np.array([p.geom for p in parts], dtype=object)
    if georef and len(geoms):  # all coordinates at once
        a, b, d, e, xoff, yoff = frame.coeffs
        matrix, offset = np.array([[a, d], [b, e]]), np.array([xoff, yoff])
        geoms = shapely.transform(geoms, lambda xy: xy @ matrix + offset)
    holes, holed = frame.hole_area(options), np.flatnonzero(shapely.get_num_interior_rings(geoms) > 0)
    if holes > 0 and len(holed):  # in the scene CRS's units² (m² → degree² when geographic)
        per_unit2 = 1.0 if frame.area_crs is None else frame.pixel_side_m2 / frame.pixel_side**2
        geoms = geoms.copy()
        geoms[holed] = [_fill_holes(g, holes / per_unit2) for g in geoms[holed]]
    geoms = np.array(_clean_outlines(list(geoms), frame.at_edge([p.geom for p in parts]).tolist(), frame, options),
                     dtype=object).reshape(-1)
    score = np.array([round(p.prob_sum / max(p.pixels, 1), 4) for p in parts], dtype=np.float64)
    # traced, simplified (``_simplify``) or holes filled, a polygon is valid already; regularised or
    # taken to and back from metres, it is checked
    keep = ~shapely.is_empty(geoms)
    if options.regularize or frame.area_crs is not None:
        keep &= shapely.is_valid(geoms)
    geoms, score = geoms[keep], score[keep]
    metric = reproject(geoms, frame.crs, frame.area_crs) if frame.area_crs is not None else geoms
    areas, perimeters = shapely.area(metric), shapely.length(metric)
    keep = areas >= frame.min_area(options)
    geoms, score, areas, perimeters = geoms[keep], score[keep], areas[keep], perimeters[keep]
    unit = "m" if georef else "px"
    columns = {"id": np.arange(first_id, first_id + len(geoms), dtype=np.int64), f"area_{unit}2": areas.round(2),
               f"perimeter_{unit}": perimeters.round(2), "score": score,
               "scene": np.full(len(geoms), scene_name, dtype=object)}
    return PolygonTable(shapely.orient_polygons(geoms), columns, frame.crs)  # exteriors counter-clockwise


def _to_frame(parts: list[_Part], frame: _Frame, options: VectorizeOptions, first_id: int,
              scene_name: str) -> gpd.GeoDataFrame:
    """``_to_table`` as a GeoDataFrame."""
    return _to_table(parts, frame, options, first_id, scene_name).frame()


def _clean_outlines(geoms: list[Polygon], at_edge: list[bool], frame: _Frame,
                    options: VectorizeOptions) -> list[Polygon]:
    """Simplify, or regularise, in metres: in the scene's CRS when it is projected (or in
    pixels without one), else in the local UTM zone, where right angles are right angles.
    Polygons cut by the scene's edge are only simplified: the straight cut is not the roof's
    own edge, and would be turned into a staircase."""
    if not geoms or (not options.regularize and options.simplify == 0):
        return geoms
    geographic = frame.area_crs is not None
    metric = list(reproject(np.array(geoms, dtype=object), frame.crs, frame.area_crs)) if geographic else geoms
    pixel = float(np.sqrt(frame.pixel_side_m2)) if geographic else frame.pixel_side
    tol = pixel if options.simplify is None else options.simplify
    if options.regularize:
        cleaned = [g.simplify(tol, preserve_topology=True) if cut else regularize(g, pixel, tol)
                   for g, cut in zip(metric, at_edge)]
    else:
        cleaned = list(_simplify(np.array(list(metric), dtype=object), tol))
    return list(reproject(np.array(cleaned, dtype=object), frame.area_crs, frame.crs)) if geographic else cleaned


def _simplify(geoms: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker, four times faster than the topology-preserving kind; the few outlines
    it collapses or makes invalid are simplified again keeping topology."""
    out = shapely.simplify(geoms, tol, preserve_topology=False)
    bad = ~shapely.is_valid(out) | shapely.is_empty(out) | (shapely.get_type_id(out) != 3)
    if bad.any():
        out[bad] = shapely.simplify(geoms[bad], tol, preserve_topology=True)
    return out


RECT_IOU = 0.85  # the least IoU with the traced outline for a right-angled fit to replace it
FIT_SLACK = 0.02  # a simpler fit wins over a closer one within this much IoU


def regularize(geom: Polygon, pixel: float, tolerance: float | None = None) -> Polygon:
    """``geom`` snapped to right angles along its dominant direction (see the module's
    docstring); ``pixel``: the pixel side, in ``geom``'s units; ``tolerance``: the
    simplification before the fit (default: one pixel).

    Fits are tried along two estimates of the direction (the simplified edges' and the
    minimum rotated rectangle's) with edges of at least 2, 4 and 8 pixels; the one with the
    fewest corners among those within ``FIT_SLACK`` of the best IoU with ``geom`` wins, so
    the wobble of a predicted outline does not become steps."""
    simple = geom.simplify(pixel if tolerance is None else tolerance, preserve_topology=True)
    if simple.is_empty or simple.area == 0:
        return simple
    rect = geom.minimum_rotated_rectangle
    angles = {round(_dominant_angle(np.asarray(c.exterior.coords)), 3) for c in (simple, rect)}
    fits = [(f, polygon_iou(f, geom)) for f in (_right_angled(geom, simple, a, k * pixel)
                                         for a in angles for k in (2, 4, 8)) if f is not None]
    if fits:
        top = max(iou for _, iou in fits)
        if top >= RECT_IOU:
            return min(((f, iou) for f, iou in fits if iou >= top - FIT_SLACK),
                       key=lambda fi: (len(fi[0].exterior.coords), -fi[1]))[0]
    return rect if polygon_iou(rect, geom) >= RECT_IOU else _keep_area(simple, geom, pixel)


def _right_angled(geom: Polygon, simple: Polygon, theta: float, min_edge: float) -> Polygon | None:
    """``simple`` made rectilinear along direction ``theta`` (radians), keeping ``geom``'s area."""
    centre = geom.centroid
    turned = affinity.rotate(simple, -theta, origin=centre, use_radians=True)
    ring = _rectilinear(np.asarray(turned.exterior.coords), min_edge)
    if ring is None:
        return None
    holes = [h for h in (_rectilinear(np.asarray(r.coords), min_edge) for r in turned.interiors) if h is not None]
    fit = Polygon(ring, holes)
    if not fit.is_valid:
        fit = Polygon(ring)
    fit = affinity.rotate(fit, theta, origin=centre, use_radians=True)
    return _keep_area(fit, geom, min_edge) if fit.is_valid and fit.area > 0 else None


def _keep_area(fit: Polygon, geom: Polygon, pixel: float) -> Polygon:
    """Simplification keeps staircase corners, which sit inside or outside the true edge:
    move ``fit``'s edges out or in together so that it has ``geom``'s area (mitred corners
    stay right angles)."""
    grow = (geom.area - fit.area) / fit.length
    if abs(grow) <= 1e-9 * pixel:
        return fit
    grown = fit.buffer(grow, join_style="mitre")
    return grown if isinstance(grown, Polygon) and grown.is_valid and not grown.is_empty else fit


def _dominant_angle(coords: np.ndarray) -> float:
    """The direction (radians, in (−π/4, π/4]) that the ring's edges follow, modulo 90°: the
    length-weighted circular mean of four times their angles, divided by four."""
    d = np.diff(coords, axis=0)
    z = np.sum(np.hypot(d[:, 0], d[:, 1]) * np.exp(4j * np.arctan2(d[:, 1], d[:, 0])))
    return float(np.angle(z) / 4)


def _rectilinear(coords: np.ndarray, min_edge: float) -> np.ndarray | None:
    """A closed ring (already turned so its dominant direction is x) → a ring of horizontal
    and vertical edges, or None when none fits. Each edge is classed horizontal or vertical;
    a run of one class becomes one line at the run's length-weighted mean offset; the
    shortest edge under ``min_edge`` is removed (its two neighbours, parallel, merge) until
    none is left or the ring is a rectangle."""
    p = coords[:-1]
    d = np.roll(p, -1, axis=0) - p
    length = np.hypot(d[:, 0], d[:, 1])
    horiz = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    mid = p + d / 2
    offset = np.where(horiz, mid[:, 1], mid[:, 0])
    changes = np.flatnonzero(horiz != np.roll(horiz, 1))
    if len(changes) < 4:
        return None
    lines: list[list] = []  # [horizontal, Σ offset·length, Σ length]
    for i in np.r_[changes[0] : len(p), 0 : changes[0]]:
        if lines and lines[-1][0] == horiz[i]:
            lines[-1][1] += offset[i] * length[i]
            lines[-1][2] += length[i]
        else:
            lines.append([bool(horiz[i]), offset[i] * length[i], length[i]])
    while len(lines) >= 4 and len(lines) % 2 == 0:
        off = np.array([s / w if w > 0 else s for _, s, w in lines])
        nxt = np.roll(off, -1)
        # vertex i joins line i and line i + 1: (x, y) from whichever of them is vertical
        vx = np.where([h for h, _, _ in lines], nxt, off)
        vy = np.where([h for h, _, _ in lines], off, nxt)
        v = np.column_stack([vx, vy])
        edges = np.hypot(*(v - np.roll(v, 1, axis=0)).T)  # line i runs from vertex i − 1 to vertex i
        k = int(np.argmin(edges))
        if edges[k] >= min_edge or len(lines) == 4:
            return np.vstack([v, v[:1]])
        lines = lines[k - 1 :] + lines[: k - 1]  # line k − 1 first (k = 0: the last one)
        a, b = lines[0], lines[2]
        lines = [[a[0], a[1] + b[1], a[2] + b[2]]] + lines[3:]
    return None


def _fill_holes(geom: Polygon, max_area: float) -> Polygon:
    keep = [r for r in geom.interiors if Polygon(r).area >= max_area]
    return geom if len(keep) == len(geom.interiors) else Polygon(geom.exterior, keep)


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
                 scene_name: str | None = None) -> None:
        from collections import deque

        self.frame = _frame(grid_path)
        self.options, self.scene_name = options, scene_name or ""
        pixel_m = float(np.sqrt(self.frame.pixel_side_m2)) if self.frame.area_crs is not None else self.frame.pixel_side
        width, height = self.frame.size
        self.tracer = StripTracer(height, width, options.threshold, options.strip_rows,
                                  round(options.opening / pixel_m), _min_box(self.frame, options),
                                  options.split or None)
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
            last = self._concat([*self._settle(keep=0), _to_table(self.tracer.close(), self.frame, self.options, 1,
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
                           " --trace-workers or none (--trace-workers 0)")

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
            joined = _to_table(self.tracer.settle(strip, edge), self.frame, self.options, 1, self.scene_name)
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

    def _chunk(self, parts: list[_Part]) -> PolygonTable:
        chunk = _to_table(parts, self.frame, self.options, self.next_id, self.scene_name)
        self.next_id += len(chunk)
        return chunk


def _min_box(frame: _Frame, options: VectorizeOptions) -> float:
    """Pixels² of bounding box under which no component can pass ``options.min_area``: the
    minimum area in pixels, halved where a pixel's area is not exact (a geographic CRS,
    measured near the scene's centre) or a regularised outline may leave the pixels' own
    bounding box (a rectangle turned to the roof's direction)."""
    min_px = frame.min_area(options) / frame.pixel_area
    return min_px / 2 if frame.area_crs is not None or options.regularize else min_px


def band_polygons(prob_path: str | os.PathLike, scene_path: str | os.PathLike, row0: int, first: bool, last: bool,
                  options: VectorizeOptions = VectorizeOptions(), scene_name: str = ""):
    """Polygons of one block of rows of a scene (``prob_path``: the block's probability, its
    first row being scene row ``row0``). Returns the polygons of the components that do not
    touch the block's inner edges, cleaned and measured (a GeoDataFrame, ids from 1), and
    the components that do, whole and raw, as ``(wkb in scene pixel coordinates, probability
    sum, pixels, pixels of their own)``, for ``join_band_edges`` once every block is done.
    With ``options.split`` their own pixels, ``(column, scene row, probability)`` of their
    bounding box with every other pixel 0, go along, for the client to cut each roof across
    a block edge as one process cuts it (otherwise None: a union joins them exactly). (No
    opening here: it would need the neighbours' rows.)"""
    frame = _frame(scene_path)
    with open_raster(prob_path) as src:
        h = src.height
    seed = options.split or None

    def on_edge(p: _Part) -> bool:
        return (p.geom.bounds[1] <= 0 and not first) or (p.geom.bounds[3] >= h and not last)

    # whole components (not cut) first: those on an inner edge go to the client
    whole = [p for chunk in iter_pixel_parts(prob_path, options.threshold, options.strip_rows) for p in chunk]
    edge = [p for p in whole if on_edge(p)]
    if seed is None:
        done = [p for p in whole if not on_edge(p)]
    else:  # the pieces of the components inside the block; the edge components are cut on the client
        cut = [p for chunk in iter_pixel_parts(prob_path, options.threshold, options.strip_rows, split_seed=seed)
               for p in chunk]
        done = _outside(cut, [p.geom for p in edge])
    done = [_Part(affinity.translate(p.geom, 0, row0), p.prob_sum, p.pixels) for p in done]
    own = _own_pixels(prob_path, edge, row0) if seed is not None else [None] * len(edge)
    return _to_frame(done, frame, options, 1, scene_name), [
        (affinity.translate(p.geom, 0, row0).wkb, p.prob_sum, p.pixels, o) for p, o in zip(edge, own)]


def _outside(parts: list[_Part], geoms: list[Polygon]) -> list[_Part]:
    """The parts that lie in none of ``geoms`` (pieces of other components: a point of each
    piece inside it tells)."""
    if not parts or not geoms:
        return list(parts)
    points = shapely.point_on_surface(np.array([p.geom for p in parts], dtype=object))
    inside = np.unique(STRtree(np.array(geoms, dtype=object)).query(points, predicate="intersects")[0])
    keep = np.ones(len(parts), dtype=bool)
    keep[inside] = False
    return [p for p, k in zip(parts, keep) if k]


def _own_pixels(prob_path: str | os.PathLike, parts: list[_Part], row0: int) -> list[tuple[int, int, np.ndarray]]:
    """Each whole component's probability over its bounding box, 0 outside it: ``(first column,
    first scene row, uint8 rows)`` (its pixel-edge outline says which pixels are its own)."""
    from affine import Affine
    from rasterio.features import rasterize
    from rasterio.windows import Window

    out = []
    with open_raster(prob_path) as src:
        for p in parts:
            x0, y0, x1, y1 = (int(round(v)) for v in p.geom.bounds)
            prob = src.read(1, window=Window(x0, y0, x1 - x0, y1 - y0))
            mine = rasterize([(p.geom, 1)], out_shape=prob.shape, transform=Affine.translation(x0, y0), dtype="uint8")
            out.append((x0, y0 + row0, np.where(mine > 0, prob, 0).astype(np.uint8)))
    return out


def join_band_edges(edge_parts: list, scene_path: str | os.PathLike, options: VectorizeOptions = VectorizeOptions(),
                    scene_name: str = "") -> gpd.GeoDataFrame:
    """The components that touched blocks' inner edges (``band_polygons``), joined with their
    continuations, cleaned and measured. With their own pixels (``options.split``), each
    group of parts that meet is traced again whole from them, and cut as one process cuts
    it; without, the parts are unioned."""
    parts = [_Part(shapely.from_wkb(w), s, n) for w, s, n, _ in edge_parts]
    if not options.split or not parts:
        return _to_frame(_join(parts), _frame(scene_path), options, 1, scene_name)
    own = [o for *_, o in edge_parts]
    out: list[_Part] = []
    for members in _meeting(np.array([p.geom for p in parts], dtype=object)):
        x0, y0 = min(own[i][0] for i in members), min(own[i][1] for i in members)
        x1 = max(own[i][0] + own[i][2].shape[1] for i in members)
        y1 = max(own[i][1] + own[i][2].shape[0] for i in members)
        canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        for i in members:
            cx, cy, pixels = own[i]
            at = canvas[cy - y0 : cy - y0 + pixels.shape[0], cx - x0 : cx - x0 + pixels.shape[1]]
            np.maximum(at, pixels, out=at)
        tracer = StripTracer(y1 - y0, x1 - x0, options.threshold, split_seed=options.split)
        out += [_Part(affinity.translate(p.geom, x0, y0), p.prob_sum, p.pixels)
                for p in tracer.feed(0, canvas) + tracer.close()]
    return _to_frame(out, _frame(scene_path), options, 1, scene_name)


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
