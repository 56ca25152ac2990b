"""Polygons of several classes: the probability bands of a multi-class model (one per class
but background, uint8 p × 255, as ``predict.engine.ClassBands`` hands them on) become each
pixel's class (the most probable, background included) and one ``PolygonStream`` per class
traces that class's pixels, each polygon with its ``class`` (and its mean probability of it
as ``score``). Memory stays flat: each stream holds what a roof stream does."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from geoseg.config import VectorizeOptions
from geoseg.errors import InputError
from geoseg.io.raster import probability_cut
from geoseg.vector.stream import PolygonStream
from geoseg.vector.table import PolygonTable

CLASS_ROWS = 64  # rows made class ids at a time: the working arrays stay small whatever the scene's width
# strips of a class's pixels carried down before a component is traced in parts (``vector.strips``;
# roofs: 8). Roads, water and land cover reach across the scene and end in parts whatever is carried;
# carrying them 8 strips held up to 8 strips of each class's pixels several times over: peak RSS of a
# five-class model over an 8192² town 1440 MiB with 8, 1220 with 2 (2048²: 1001), 19.1 → 20.1 s
CLASS_CARRY_STRIPS = 2


def class_cuts(names: tuple[str, ...], thresholds: tuple[tuple[str, float], ...] | None) -> np.ndarray | None:
    """Each class's cut but background's (int16, uint8 probability units) from ``thresholds``
    ``((name, p), …)``: ``round(p × 255)`` for the classes named, −1 (beat background) for the
    others; None without thresholds. An unknown name is one line naming the model's classes."""
    if not thresholds:
        return None
    if len(names) <= 2:
        raise InputError("`class_thresholds` is for models of several classes; a two-class model takes `threshold`")
    known = {name: c for c, name in enumerate(names[1:])}
    cuts = np.full(len(known), -1, np.int16)
    for name, p in thresholds:
        if name not in known:
            raise InputError(f"`class_thresholds` {name}: not a class of the model; choose of {', '.join(known)}")
        cuts[known[name]] = probability_cut(p)
    return cuts


def class_ids(bands: np.ndarray, cuts: np.ndarray | None = None) -> np.ndarray:
    """Each pixel's class id (uint8; 0: background) from ``(K − 1, rows, cols)`` uint8 bands:
    the most probable class, background's probability being what the others leave (a tie goes
    to the lower id, as ``argmax``'s). With ``cuts`` (``class_cuts``): the most probable of the
    classes that reach their own cut (the classes without one: that beat background), and
    background where none does; with no cut given this is the argmax. In uint8, ``CLASS_ROWS``
    rows at a time."""
    out = np.empty(bands.shape[1:], np.uint8)
    for r0 in range(0, bands.shape[1], CLASS_ROWS):
        b = bands[:, r0 : r0 + CLASS_ROWS]
        background = np.clip(255 - b.sum(axis=0, dtype=np.int16), 0, 255).astype(np.uint8)
        best = background if cuts is None else np.zeros_like(background)  # the winner's probability so far
        ids = np.zeros_like(best)
        for c in range(len(b)):
            better = b[c] > best
            if cuts is not None:  # and the class reaches its cut, or beats background without one
                better &= b[c] >= cuts[c] if cuts[c] >= 0 else b[c] > background
            best[better] = b[c][better]
            ids[better] = c + 1
        out[r0 : r0 + CLASS_ROWS] = ids
    return out


class ClassStreams:
    """``feed(first row, bands)`` and ``close()`` as ``PolygonStream``'s, for ``names`` (every
    class, background first): each chunk holds the polygons of every class with a ``class``
    column. A pixel belongs to its most probable class, or the most probable of those that
    reach their ``class_thresholds`` (``class_ids``; ``threshold`` is for two-class models);
    touching objects are not cut apart (``split``)."""

    def __init__(self, grid_path: str | os.PathLike, names: tuple[str, ...], options: VectorizeOptions,
                 scene_name: str | None = None) -> None:
        self.names = names
        unknown = set(options.regularize_classes or ()) - set(names[1:])
        if unknown:
            raise InputError(f"`regularize_classes` {', '.join(sorted(unknown))}: not a class of the model; choose of"
                             f" {', '.join(names[1:])}")
        self.cuts = class_cuts(names, options.class_thresholds)
        every = dataclasses.replace(options, threshold=1 / 255, split=0.0)  # any pixel of its class (≥ 1)
        squared = options.regularize_classes
        self.streams = [PolygonStream(grid_path, dataclasses.replace(
            every, regularize=options.regularize and (squared is None or name in squared)), scene_name,
            CLASS_CARRY_STRIPS) for name in names[1:]]

    def feed(self, row0: int, bands: np.ndarray) -> PolygonTable:
        """``CLASS_ROWS`` rows at a time: each class's stream holds its own copy of the rows it
        has not traced yet, and a grid row's band of every class at once would be as many
        copies of it as classes (a tenth of peak memory at 12288² with five classes)."""
        tables: list[list[PolygonTable]] = [[] for _ in self.streams]
        for r in range(0, bands.shape[1], CLASS_ROWS):
            part = bands[:, r : r + CLASS_ROWS]
            ids = class_ids(part, self.cuts)
            for c, s in enumerate(self.streams, 1):
                tables[c - 1].append(s.feed(row0 + r, np.where(ids == c, part[c - 1], 0)))
        return self._join([PolygonTable.concat(t) for t in tables])

    def close(self) -> PolygonTable:
        return self._join([s.close() for s in self.streams])

    def abandon(self) -> None:
        for s in self.streams:
            s.abandon()

    def _join(self, tables: list[PolygonTable]) -> PolygonTable:
        named = []
        for c, t in enumerate(tables, 1):
            columns = dict(t.columns)
            columns = {"id": columns.pop("id"), "class": np.full(len(t), self.names[c], dtype=object), **columns}
            named.append(PolygonTable(t.geometry, columns, t.crs))
        return PolygonTable.concat(named)
