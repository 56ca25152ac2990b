"""The tile grid over a scene: frozen values and pure functions, and the one place where
the default tile size and margin are chosen (``choose_tile``, ``choose_grid``).

A grid of tiles of ``size`` pixels whose cores (the tile less ``overlap`` pixels
on each side) tile the scene exactly. The first tile starts ``overlap`` pixels
before the scene, so every scene pixel lies at least ``overlap`` pixels inside
some tile; windows that reach past the scene are padded by the reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geoseg.errors import InputError


@dataclass(frozen=True)
class Tile:
    """One tile: its grid position and its window in scene pixels (may reach outside)."""

    row: int
    col: int
    row_off: int
    col_off: int
    size: int


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``size`` px with ``overlap`` px margins over a ``height`` × ``width`` scene."""

    height: int
    width: int
    size: int
    overlap: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise InputError(f"empty scene ({self.width} x {self.height} px); give a raster with pixels")
        if self.overlap < 0 or 2 * self.overlap >= self.size:
            raise InputError(
                f"overlap {self.overlap} px does not fit tile size {self.size} px;"
                f" use 0 <= overlap < {self.size // 2}"
            )

    @property
    def stride(self) -> int:
        """Distance between tile origins, which is also the side of each tile's core."""
        return self.size - 2 * self.overlap

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.stride)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.stride)

    def tile(self, row: int, col: int) -> Tile:
        return Tile(
            row=row,
            col=col,
            row_off=row * self.stride - self.overlap,
            col_off=col * self.stride - self.overlap,
            size=self.size,
        )

    def row_tiles(self, row: int) -> list[Tile]:
        """The tiles of one grid row, left to right (row-major order reuses GDAL's block cache)."""
        return [self.tile(row, c) for c in range(self.cols)]

    def __len__(self) -> int:
        return self.rows * self.cols

    @property
    def cost(self) -> float:
        """Pixels computed per scene pixel: (size / stride)² for the interior."""
        return (self.size / self.stride) ** 2


DEFAULT_TILE = 512  # px: fastest per pixel on the development CPUs (``bench/speed.py``)


DEFAULT_MARGIN = 32  # px a tile shares with each neighbour: 1.31× the scene computed at 512 px, no seam


def choose_tile(multiple: int, tile_size: int | None = None, overlap: int | None = None,
                fixed_tile: int | None = None, scene_side: int | None = None) -> tuple[int, int]:
    """``(tile side, margin)`` in pixels for a model whose input must be a multiple of
    ``multiple``. The tile: ``tile_size`` if given, else ``fixed_tile`` (a model whose output
    depends on the tile, trained on that size), else ``DEFAULT_TILE`` but no larger than a
    scene of longest side ``scene_side`` needs. The margin: ``overlap`` if given, else
    ``DEFAULT_MARGIN`` or an eighth of the tile, whichever is smaller."""
    if tile_size is not None:
        tile = tile_size
    elif fixed_tile is not None:
        tile = fixed_tile
    elif scene_side is not None:
        margin = DEFAULT_MARGIN if overlap is None else overlap
        tile = max(min(DEFAULT_TILE, -(-(scene_side + 2 * margin) // multiple) * multiple), multiple)
    else:
        tile = DEFAULT_TILE
    if tile < 1 or tile % multiple:
        raise InputError(f"`tile_size` {tile} must be a positive multiple of {multiple} for this model")
    return tile, min(DEFAULT_MARGIN, tile // 8) if overlap is None else overlap


def choose_grid(height: int, width: int, multiple: int, tile_size: int | None = None, overlap: int | None = None,
                fixed_tile: int | None = None) -> TileGrid:
    """The grid a ``height`` × ``width`` scene is predicted on (``choose_tile``)."""
    tile, margin = choose_tile(multiple, tile_size, overlap, fixed_tile, max(height, width))
    return TileGrid(height, width, tile, margin)
