"""Pixel-edge polygons of a label image, in whole-array numpy operations.

``label_polygons(labels)`` gives the outline of every 4-connected component of a label
image (``scipy.ndimage.label``'s output: 0 background, 1…n components) as a shapely
polygon along the pixels' edges, with its holes: the polygons GDAL's polygonize
(``rasterio.features.shapes`` with ``connectivity=4``) writes for it, vertex for vertex,
without building a Python object per coordinate.

How: every boundary between a roof and a background pixel is a unit edge, directed so
that the roof lies on its left (x to the right, y down). Consecutive unit edges of one
direction along a row or column line make a *run*; runs alternate horizontal and
vertical around every ring, so a ring's vertices are its runs' starts. Each run is
followed by the run that starts where it ends. Where two roof pixels meet only at a
corner (a saddle) two runs start there: the outline keeps to its own pixel when the
two belong to different components (they are separate polygons), and turns to the
other pixel when they are one component (the ring then touches a hole at that point,
as GDAL writes it: a valid polygon). Runs form cycles, one per ring; each ring is
ordered by pointer jumping (``log₂`` of the longest ring's length steps over all runs at
once) from its top-left vertex, where GDAL starts it. Exteriors turn one way and holes
the other (signed area).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import shapely


def label_polygons(labels: np.ndarray, row0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(polygons, their labels)`` of a label image (``H × W`` integers, 0 background,
    components 4-connected), in pixel coordinates (x = column, y = ``row0`` + row): one
    polygon per label present, ordered by label."""
    labels = np.asarray(labels)
    runs = pixel_runs(labels > 0)
    return run_polygons(*runs, labels[runs.row, runs.start], labels.shape, row0)


class PixelRuns(NamedTuple):
    """Maximal runs of roof pixels along the rows of a mask, in row-major order."""

    row: np.ndarray
    start: np.ndarray  # first column
    stop: np.ndarray  # column after the last


def pixel_runs(on: np.ndarray) -> PixelRuns:
    """The runs of True along the rows of a boolean image: one pass over the image (all
    that follows is over the runs alone)."""
    height, width = on.shape[0], on.shape[1] + 1
    edged = np.zeros((height, width + 1), dtype=bool)  # a False column either side: every run starts and ends
    edged[:, 1:-1] = on
    # starts and ends alternate (2.3× ``np.diff`` with ``prepend`` and ``append``, the same runs)
    change = np.flatnonzero(edged[:, 1:] != edged[:, :-1])
    return PixelRuns(change[0::2] // width, change[0::2] % width, change[1::2] % width)


def run_polygons(row: np.ndarray, start: np.ndarray, stop: np.ndarray, label: np.ndarray,
                 shape: tuple[int, int], row0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``label_polygons`` of an image of ``shape`` given as its pixel runs (``pixel_runs``, in
    row-major order) and the label of each (positive; components 4-connected)."""
    if not len(row):
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    sx, sy, ex, ey, label, succ = _runs(row, start, stop, label, shape)
    n = len(succ)
    ring, first = _cycles(succ, sy.astype(np.int64) * (shape[1] + 1) + sx)
    pos, size = _positions(succ, first)
    # signed area (shoelace, over the runs in any order): exteriors, with the roof on their
    # left in y-down coordinates, are negative
    area = np.bincount(ring, weights=sx.astype(np.float64) * ey - ex.astype(np.float64) * sy)
    hole = area > 0
    ring_label = label[first]
    by = np.lexsort((hole, ring_label))  # rings by label, each polygon's exterior first
    offset = np.empty(len(by), dtype=np.int64)
    offset[by] = np.r_[0, np.cumsum(size[by] + 1)[:-1]]  # each ring closed by its first vertex again
    coords = np.empty((n + len(by), 2), dtype=np.float64)
    at = offset[ring] + pos
    coords[at, 0], coords[at, 1] = sx, sy + row0
    coords[offset + size] = coords[offset]
    poly_labels, owner = np.unique(ring_label[by], return_inverse=True)
    if np.count_nonzero(~hole) != len(poly_labels):  # cannot happen for 4-connected components
        raise RuntimeError("a component with other than one exterior ring")
    rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(by)), size[by] + 1))
    return shapely.polygons(rings, indices=owner), poly_labels


def _segments(line: np.ndarray, x0: np.ndarray, x1: np.ndarray, width: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where on each row line the pixel runs above (``line`` = their row + 1) are and the
    runs below (their row) are not, and the other way round: the sorted keys (line × width
    + x) of the steps; the coverage on the step after each (1: above alone, 2: below alone,
    0 or 3 otherwise); and the runs above and below covering it (the last run opened of
    each: runs are numbered in row-major order and do not overlap within a row). Each of
    the two run lists is in row-major order, so the merge sort only interleaves two sorted
    halves."""
    n = len(line)
    key = np.empty(4 * n, dtype=np.int64)
    key[0 : 2 * n : 2], key[1 : 2 * n : 2] = (line + 1) * width + x0, (line + 1) * width + x1  # above
    key[2 * n :: 2], key[2 * n + 1 :: 2] = line * width + x0, line * width + x1  # below
    step = np.zeros(4 * n, dtype=np.int8)
    step[0 : 2 * n : 2], step[1 : 2 * n : 2], step[2 * n :: 2], step[2 * n + 1 :: 2] = 1, -1, 2, -2
    opened = np.full((2, 4 * n), -1, dtype=np.int64)
    opened[0, 0 : 2 * n : 2] = opened[1, 2 * n :: 2] = np.arange(n)
    order = np.argsort(key, kind="stable")
    above, below = np.maximum.accumulate(opened[:, order], axis=1)
    return key[order], np.cumsum(step[order], dtype=np.int8), above, below


def _vertical(column: np.ndarray, row: np.ndarray, height: int) -> tuple[np.ndarray, ...]:
    """Unit edges on column lines (``column``, ``row``), one per pixel run, merged into maximal
    runs down each line, in column-major order: (column, first row, row after, the pixel
    run of the first edge)."""
    key = column * height + row
    order = np.argsort(key)
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1] + 1])
    ends = np.r_[starts[1:], len(key)] - 1
    return key[starts] // height, key[starts] % height, key[ends] % height + 1, order[starts]


EAST, WEST, SOUTH, NORTH = range(4)


RIGHT_OF = np.array([SOUTH, NORTH, WEST, EAST], dtype=np.int8)  # the right turn from each heading (y down)


def _runs(r: np.ndarray, a: np.ndarray, b: np.ndarray, run_label: np.ndarray, shape: tuple[int, int]):
    """Every run of boundary edges of the image whose pixel runs (row ``r``, columns ``a`` to
    ``b``) are labelled ``run_label``: start and end vertex (x, y), the label on its left,
    and the run that follows it."""
    height, width = shape[0] + 1, shape[1] + 1  # vertices down and across
    # horizontal runs on row line i (between pixel rows i − 1 and i): east with the roof above,
    # west below, in row-major order of their starts; vertical runs on column line j: south with
    # the roof on the right, north with it on the left, in column-major order of their starts
    key, cover, above, below = _segments(r, a, b, width)
    gap = key[1:] > key[:-1]
    at = np.flatnonzero(gap & (cover[:-1] == 1))
    i, c0, c1 = key[at] // width, key[at] % width, key[at + 1] % width
    east = (c0, i, c1, i, run_label[above[at]], key[at])
    at = np.flatnonzero(gap & (cover[:-1] == 2))
    i, c0, c1 = key[at] // width, key[at] % width, key[at + 1] % width
    west = (c1, i, c0, i, run_label[below[at]], i * width + c1)
    j, r0, r1, run = _vertical(a, r, height)  # the pixel right of the line starts a pixel run
    south = (j, r0, j, r1, run_label[run], j * height + r0)
    j, r0, r1, run = _vertical(b, r, height)  # the pixel left of the line ends one
    north = (j, r1, j, r0, run_label[run], j * height + r1)
    parts = (east, west, south, north)
    sx, sy, ex, ey, label = (np.concatenate(a) for a in zip(*[p[:5] for p in parts]))
    heading = np.repeat(np.arange(4, dtype=np.int8), [len(p[0]) for p in parts])
    base = np.cumsum([0] + [len(p[0]) for p in parts])

    def starting(k: int, key: np.ndarray) -> np.ndarray:
        """Index of the run of heading ``k`` that starts at each vertex ``key`` (−1: none)."""
        keys = parts[k][5]
        at = np.searchsorted(keys, key).clip(max=max(len(keys) - 1, 0))
        found = keys[at] == key if len(keys) else np.zeros(len(key), dtype=bool)
        return np.where(found, base[k] + at, -1)

    succ = np.empty(len(sx), dtype=np.int64)
    for this, turns in (((EAST, WEST), (SOUTH, NORTH)), ((SOUTH, NORTH), (EAST, WEST))):
        runs = np.arange(base[this[0]], base[this[1] + 1])  # H runs are followed by V runs and back
        key = ex[runs] * height + ey[runs] if turns[0] == SOUTH else ey[runs] * width + ex[runs]
        a, b = starting(turns[0], key), starting(turns[1], key)
        two = (a >= 0) & (b >= 0)  # a saddle: two roof pixels meet at a corner
        nxt = np.where(a >= 0, a, b)
        if two.any():
            a, b, own = a[two], b[two], label[runs[two]]
            # one component: turn right, onto the other pixel; two: keep to the run's own pixel
            pick_b = np.where(label[a] == label[b], heading[b] == RIGHT_OF[heading[runs[two]]], label[b] == own)
            nxt[two] = np.where(pick_b, b, a)
        succ[runs] = nxt
    return sx, sy, ex, ey, label, succ


def _cycles(succ: np.ndarray, vertex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cycles of the permutation ``succ`` (the rings): each run's ring (0…), and each
    ring's first run: the one starting at its top-left vertex (least ``vertex`` key, the
    row-major index of the run's start), where GDAL starts a ring."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(succ)
    graph = csr_matrix((np.ones(n, dtype=np.int8), succ, np.arange(n + 1)), shape=(n, n))
    count, ring = connected_components(graph, directed=True, connection="strong")
    low = np.full(count, np.iinfo(np.int64).max)
    np.minimum.at(low, ring, vertex * n + np.arange(n))  # unique: ties at a vertex go to the lower run
    return ring, low % n


def _positions(succ: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each run's place in its ring counted from the ring's ``first`` run, and each ring's
    length (indexed like ``first``): pointer jumping towards the first runs, which only
    the runs not yet there take part in (``log₂`` of the longest ring's length rounds)."""
    n = len(succ)
    sink = np.zeros(n, dtype=bool)
    sink[first] = True
    dist = np.where(sink, 0, 1)  # runs from each run to the one ``jump`` points at
    jump = np.where(sink, np.arange(n), succ)
    active = np.flatnonzero(~sink[jump])
    while len(active):
        ahead = jump[active]
        dist[active] += dist[ahead]
        jump[active] = jump[ahead]
        active = active[~sink[jump[active]]]
    size = dist[succ[first]] + 1
    ring_size = np.zeros(n, dtype=np.int64)
    ring_size[first] = size
    own = ring_size[jump]  # every run's jump ends at its ring's first run
    return (own - dist) % own, size
