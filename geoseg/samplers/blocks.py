"""The spatial hold-out of labelled scenes: the labelled area cut into blocks, whole blocks held
out for validation with a gap of one tile around them, and the fixed windows that tile them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import shapely
import torch
from shapely.geometry import box

from geoseg.errors import InputError

BLOCK_TILES = 4  # a validation block is this many training tiles a side, at most
MIN_BLOCKS = 16  # ... and at least one tile, so that a scene's labelled area makes about this many blocks


class Labelled(Protocol):
    """What the split needs of a labelled scene (``datasets.scenes.LabelledScene``): its size in
    its own pixels, its labelled area in them, and its pixels per training pixel."""

    width: int
    height: int
    extent: shapely.Geometry
    factor: float


@dataclass
class Zones:
    """Where a scene trains and validates, in its pixels: ``train`` (window centres and loss
    pixels of training windows) and ``val`` (held-out pixels), disjoint with a gap."""

    train: shapely.Geometry
    val: shapely.Geometry
    val_blocks: list


def spatial_split(scenes: list[Labelled], tile: int, val_fraction: float, seed: int, folds: int = 0,
                  fold: int = 0) -> list[Zones]:
    """Hold out whole blocks of the labelled area for validation, in runs of neighbours, with a gap
    of one tile around them."""
    blocks = []  # (scene, block box, labelled area in training pixels²)
    for k, s in enumerate(scenes):
        # blocks of four tiles a side, smaller (down to one tile) where the labelled area would make few
        labelled = s.extent.area / s.factor ** 2
        side = max(tile, min(BLOCK_TILES * tile, int(math.sqrt(labelled / MIN_BLOCKS)))) * s.factor
        for r in np.arange(0, s.height, side):
            for c in np.arange(0, s.width, side):
                b = box(c, r, min(c + side, s.width), min(r + side, s.height))
                a = s.extent.intersection(b).area / s.factor ** 2
                if a > 0:
                    blocks.append((k, b, a))
    if not blocks:
        return [Zones(shapely.Polygon(), shapely.Polygon(), []) for _ in scenes]
    # held-out blocks are taken in runs of neighbours (row by row, scene after scene), so the gaps around
    # them cost little training area: fold k is the k-th run; a hold-out starts at a block chosen by ``seed``
    n = len(blocks)
    if folds:
        if n < folds:
            raise InputError(f"the labelled area makes {n} block(s), too few for {folds} folds; use fewer folds"
                             " or label a larger area")
        held = set(range(fold * n // folds, (fold + 1) * n // folds))
    elif val_fraction > 0:
        if n < 2:
            raise InputError("the labelled area is one block, too small to hold part of it out; label a larger"
                             " area, give `val_dir` with other scenes, or pass `val_fraction` 0")
        total, held, got = sum(a for *_, a in blocks), set(), 0.0
        start = int(torch.randint(n, (), generator=torch.Generator().manual_seed(seed)))
        for i in [(start + j) % n for j in range(n)]:
            if got >= val_fraction * total or len(held) == n - 1:
                break
            held.add(i)
            got += blocks[i][2]
    else:
        held = set()
    zones = []
    for k, s in enumerate(scenes):
        mine = [blocks[i][1] for i in sorted(held) if blocks[i][0] == k]
        val = shapely.union_all(mine) if mine else shapely.Polygon()
        gap = shapely.buffer(val, tile * s.factor, cap_style="square", join_style="mitre") if mine else val
        zones.append(Zones(train=s.extent.difference(gap), val=s.extent.intersection(val), val_blocks=mine))
    return zones


def validation_windows(scenes: list[Labelled], zones: list[Zones], tile: int) -> list[tuple[int, float, float]]:
    """Fixed windows tiling each held-out block (``(scene, row, col)``), those that hold
    held-out labelled pixels."""
    out = []
    for k, (s, z) in enumerate(zip(scenes, zones)):
        side = tile * s.factor
        for b in z.val_blocks:
            x0, y0, x1, y1 = b.bounds
            for r in np.arange(y0, y1, side):
                for c in np.arange(x0, x1, side):
                    if z.val.intersects(box(c, r, c + side, r + side)):
                        out.append((k, float(r), float(c)))
    return out
