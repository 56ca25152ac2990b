"""A strip's roof components as pixel runs: labelling them (4-connected), dropping specks,
setting aside those that reach the strip's lower edge, and joining parts traced apart."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy import ndimage
from shapely import STRtree
from shapely.geometry import Polygon
from shapely.ops import unary_union

from geoseg.io.raster import PROB_SCALE
from geoseg.vector.polygonize import PixelRuns, pixel_runs, run_polygons
from geoseg.vector.touching import piece_polygons, split_components


@dataclass
class Part:
    """A traced roof component in pixels: its outline, the sum of its probability and its pixel
    count (the polygon's mean probability and area), and the holes set aside while it is open."""

    geom: Polygon
    prob_sum: float
    pixels: int
    holes: list = field(default_factory=list)  # interior rings set aside while the part is open (``set_aside``)

    def whole(self) -> Part:
        """The part with its set-aside holes back in its polygon."""
        if not self.holes:
            return self
        geom = Polygon(self.geom.exterior, [*self.geom.interiors, *self.holes])
        return Part(geom, self.prob_sum, self.pixels)


def set_aside(part: Part) -> Part:
    """An open part's holes lie above the strip it is being joined with, which only adds area
    below them: they cannot change. Joining the outline alone costs what the strip adds, not
    what the polygon has gathered (a roof-wide polygon over the whole scene has holes in
    every strip)."""
    if not part.geom.interiors:
        return part
    return Part(Polygon(part.geom.exterior), part.prob_sum, part.pixels, [*part.holes, *part.geom.interiors])


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius + radius  # the +r rounds the disk's rim out a little


@dataclass
class RunComponents:
    """The 4-connected components of a strip's roof mask of ``shape``, as its pixel runs
    (``vector.polygonize.pixel_runs``, row-major) with each run's component ``label`` (1…n,
    numbered in the raster order of their first pixels, as ``ndimage.label`` numbers
    them): after the one pass that finds the runs, every count, sum, box and outline is
    over the runs or the roof pixels alone (``ndimage.label`` took 17 ms for a strip of
    8192 × 512 pixels; the runs' components take a few)."""

    shape: tuple[int, int]
    runs: PixelRuns
    label: np.ndarray
    n: int

    @classmethod
    def of(cls, mask: np.ndarray) -> RunComponents:
        runs = pixel_runs(mask)
        label, n = _connect(runs, mask.shape[1])
        return cls(mask.shape, runs, label, n)

    def pixels(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flat indices of the pixels of the runs ``keep`` (bool, per run), in raster
        order, and their labels."""
        r, a, b = (v[keep] for v in self.runs)
        return _run_pixels(r, a, b, self.shape[1]), np.repeat(self.label[keep], b - a)

    def mask(self, keep: np.ndarray, first: int = 0) -> np.ndarray:
        """The pixels of the runs ``keep`` (bool, per run) as a bool image of the rows from
        ``first`` on, filled run by run: a byte a pixel of the image, where the flat indices
        of ``pixels`` take eight a pixel of the runs, twice (a road network carried down the
        scene covers millions)."""
        r, a, b = (v[keep] for v in self.runs)
        h, w = self.shape[0] - first, self.shape[1]
        edges = np.zeros((h, w + 1), np.int8)
        edges[r - first, a] = 1  # a row's runs never touch (each is as long as it goes): no clash
        edges[r - first, b] = -1
        np.cumsum(edges, axis=1, dtype=np.int8, out=edges)
        return edges[:, :w].view(bool)

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


def strip_parts(prob: np.ndarray, mask: np.ndarray, row0: int, min_box: float = 0.0,
                 comps: RunComponents | None = None, hold: np.ndarray | None = None,
                 split: int = 0) -> list[Part]:
    """Polygons (pixel coordinates, x = column, y = row) of one strip, with probability sums.
    Components whose bounding box is under ``min_box`` pixels² and that touch neither of the
    strip's edge rows are left out before they are traced (``StripTracer``), and so are the
    labels ``hold``. ``comps``: the mask's components, when they are known. ``vector.touching``: a
    seed cut (uint8; 0: none): components holding two or more seeds are cut at the
    probability's valleys (``geoseg.split``)."""
    c = RunComponents.of(mask) if comps is None else comps
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
    parts = [Part(poly, float(sums[k]), int(counts[k])) for poly, k in zip(polys, ks.tolist())]
    if cut is not None:
        polys, ks = piece_polygons(cut[1], row0)
        at = np.flatnonzero(cut[1])
        piece = cut[1].ravel()[at]
        counts = np.bincount(piece)
        sums = np.bincount(piece, weights=prob.ravel()[at]) / PROB_SCALE
        parts += [Part(poly, float(sums[k]), int(counts[k])) for poly, k in zip(polys, ks.tolist())]
    return parts


def _specks(c: RunComponents, counts: np.ndarray, min_box: float) -> np.ndarray:
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


def join_parts(parts: list[Part]) -> list[Part]:
    """Union parts that share edges; probability sums and pixel counts add up. Only the
    parts that meet another are unioned, group by group (one union of every part of a
    wide scene's strip edge cost seconds); the others pass as they are."""
    if len(parts) < 2:
        return list(parts)
    out: list[Part] = []
    for members in meeting_groups(np.array([p.geom for p in parts], dtype=object)):
        out += [parts[members[0]]] if len(members) == 1 else _union([parts[i] for i in members])
    return out


def meeting_groups(geoms: np.ndarray) -> list[np.ndarray]:
    """The groups of ``geoms`` that meet one another, directly or through others (indices,
    each group in order, the groups by their first member)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = STRtree(geoms).query(geoms, predicate="intersects")
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(geoms), len(geoms)))
    _, group = connected_components(graph, directed=False)
    return np.split(np.argsort(group, kind="stable"), np.flatnonzero(np.diff(np.sort(group))) + 1)


def _union(parts: list[Part]) -> list[Part]:
    """One union of ``parts`` (a group that meets): its polygons, each with the sums of the
    parts inside it (parts touching only at a corner stay apart)."""
    merged = unary_union([p.geom for p in parts])
    geoms = list(getattr(merged, "geoms", [merged]))
    out = [Part(g, 0.0, 0) for g in geoms]
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


def strip_mask(rows: np.ndarray, r0: int, r1: int, a0: int, height: int, cut: int,
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
