"""``StripTracer``: probability rows in, polygons out, a strip at a time; a component that
reaches a strip's lower edge is carried into the next, so every roof is traced whole."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from geoseg.io.raster import probability_cut, strip_rows
from geoseg.vector.parts import Part, RunComponents, join_parts, set_aside, strip_mask, strip_parts

CARRY_STRIPS = 8  # a component reaching further above a strip's end than this many strips is traced in parts


@dataclass
class StripWork:
    """A strip ready to trace: probability and roof mask of raster rows ``top``…``r1``, where
    the rows above ``r0`` hold only the components carried down from the strips before;
    ``hold``: the labels (of ``RunComponents.of(mask)``) carried on into the next strip, not
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

    def split(self, parts: list[Part]) -> tuple[list[Part], list[Part]]:
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
    ``carry_strips``: instead of ``CARRY_STRIPS`` (fewer for land cover, whose roads and
    fields reach across the scene: carrying them only defers their parts).
    """

    def __init__(self, height: int, width: int, threshold: float = 0.5, rows: int | None = None,
                 opening_px: int = 0, min_box: float = 0.0, split_seed: float | None = None,
                 carry_strips: int | None = None) -> None:
        self.height, self.step, self.radius, self.min_box = height, strip_rows(width, rows), opening_px, min_box
        self.carry_strips = CARRY_STRIPS if carry_strips is None else carry_strips
        self.cut = probability_cut(threshold)
        self.valleys = 0 if split_seed is None else probability_cut(split_seed)
        self.held: np.ndarray | None = None  # raster rows top… in hand
        self.top = 0
        self.r0 = 0  # the next strip's first row
        self.carry: tuple[int, np.ndarray, np.ndarray] | None = None  # (first row, probability, mask) carried
        self.split = False  # a component has been traced in parts: later strips' top parts may join it
        self.open_parts: list[Part] = []

    def feed(self, row0: int, rows: np.ndarray) -> list[Part]:
        done: list[Part] = []
        for strip, comps in self.strips(row0, rows, labelled=True):
            parts = strip_parts(strip.prob, strip.mask, strip.top, self.min_box, comps, strip.hold, strip.valleys)
            edge, inner = strip.split(parts)
            done += self.settle(strip, edge) + inner
        return done

    def strips(self, row0: int, rows: np.ndarray, labelled: bool = False):
        """Take a row block; yield each strip it completes (``StripWork``; with ``labelled``,
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
            strip, comps = self._carried(*strip_mask(self.held[a0 - self.top : a1 - self.top], r0, r1, a0,
                                                       self.height, self.cut, self.radius), r0, r1)
            yield (strip, comps) if labelled else strip
            self.r0 = r1
            drop = max(r1 - halo, 0) - self.top
            self.held, self.top = self.held[drop:], self.top + drop

    def _carried(self, prob: np.ndarray, mask: np.ndarray, r0: int, r1: int) -> tuple[StripWork, RunComponents]:
        """Strip r0…r1 below the pixels carried into it; the components that reach its last
        row are carried on (unless they reach too far up: then they are traced in parts)."""
        top = r0
        if self.carry is not None:
            top, carried_prob, carried_mask = self.carry
            prob, mask = np.concatenate([carried_prob, prob]), np.concatenate([carried_mask, mask])
        c = RunComponents.of(mask)
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
                if r1 - (top + first) <= self.carry_strips * self.step:
                    hold, self.carry = ids, (top + first, prob[first:], c.mask(runs, first))
                else:
                    self.split = True
        return StripWork(prob, mask, top, r0, r1, self.height, hold, raw_top, self.valleys), c

    def close(self) -> list[Part]:
        if self.r0 < self.height:
            raise ValueError(f"rows {self.r0}…{self.height} of the raster were never handed over")
        rest, self.open_parts = self.open_parts, []
        return [p.whole() for p in rest]

    def settle(self, strip: StripWork, parts: list[Part]) -> list[Part]:
        """A strip's edge parts (``StripWork.split``) joined with the open ones they touch;
        returns those done (the joined ones first), keeps the rest open."""
        r0, r1 = strip.r0, strip.r1
        fresh, touching = [], []
        for part in parts:
            (touching if part.geom.bounds[1] <= r0 else fresh).append(part)
        open_parts = [set_aside(p) for p in self.open_parts] if touching else self.open_parts
        candidates = join_parts(open_parts + touching) if open_parts and touching else open_parts + touching
        done, self.open_parts = [], []
        for part in candidates + fresh:
            if r1 < self.height and part.geom.bounds[3] >= r1:
                self.open_parts.append(part)
            else:
                done.append(part.whole())
        return done
