"""Blend overlapping tile predictions into the scene grid, one row of tiles at a time.

Each tile's probability is multiplied by a blending window that falls towards the tile
edges and accumulated with its weight; a pixel's value is the weighted mean of every
tile that saw it, so the prediction made furthest from a tile edge counts most and no
seam shows. Tiles arrive in row-major order; when a row of tiles is done, the scene rows
that no later tile touches are final and go to ``sink``. Memory, whatever the scene's
height: across the scene's width, the margin rows a grid row carries down (floats) and the
grid row's finished rows (bytes with ``quantise``: ``round(p × quantise)``); the rest is a
tile's size — the tile being summed, the margin columns carried to the next tile, and the
sums of weights of a tile's final columns, the same for every tile but the first few and
the last. The buffers live on the model's device: on a GPU the tiles are blended where the
model made them, and only the finished rows come to the host (as bytes: a quarter of the
floats).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from geoseg.errors import InputError
from geoseg.samplers.grid import Tile, TileGrid


def _mean(n: int) -> np.ndarray:
    return np.ones(n, np.float32)


def _linear(n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.float32) + 0.5
    return np.minimum(i, n - i) / (n / 2)


def _hann(n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.float32) + 0.5
    return np.sin(np.pi * i / n) ** 2


BLEND_WINDOWS: dict[str, Callable[[int], np.ndarray]] = {"mean": _mean, "linear": _linear, "hann": _hann}


def blend_window(name: str, size: int) -> np.ndarray:
    """2-D weights ``(size, size)`` float32, positive everywhere, largest at the centre."""
    try:
        w1 = BLEND_WINDOWS[name](size)
    except KeyError:
        raise InputError(f"unknown blending window {name!r}; choose one of {', '.join(BLEND_WINDOWS)}") from None
    return np.maximum(np.outer(w1, w1), 1e-4).astype(np.float32)


Sink = Callable[[int, np.ndarray], None]  # (first scene row, rows (n, width))


class Stitcher:
    """Accumulates tiles of a ``TileGrid`` and hands finished scene rows to ``sink``.

    Call ``add`` for every tile of a grid row, left to right, then ``end_row``; rows are
    emitted in order, each exactly once, clipped to the scene, as float32 in the stitcher's
    own buffer: ``sink`` may change them but not keep them (the next rows are written there).
    With ``quantise`` (e.g. 255) they are emitted as uint8 ``round(clip(p, 0, 1) × quantise)``
    in a new array each time, which ``sink`` may keep. On a device (a GPU) the rows reach
    ``sink`` one grid row late, in a new array each time: all of them by the scene's last
    ``end_row``, or by ``flush``.

    Only a tile's worth of floats is summed at a time: a tile is added into a tile-sized
    buffer that starts from what the tiles before it left there (the margin rows that the
    grid row above carries down, the margin columns that the tile to its left carries
    across); the columns no later tile of the row reaches are then final, and their top rows
    (a stride of them) are divided by their sums of weights and written to the grid row's
    output — as bytes when quantised — while the bottom margin rows are carried down. So the
    floats that span the scene's width are the margin rows, not a tile's height of them, and
    every pixel is the same sum, in the same order, as a whole-scene accumulation.
    """

    def __init__(self, grid: TileGrid, sink: Sink, window: str = "hann", start_row: int = 0,
                 first_emitted: int = 0, quantise: float | None = None,
                 device: torch.device | str = "cpu", like: Stitcher | None = None) -> None:
        """``start_row``: the first grid row to be added (a block of a scene); rows above
        ``first_emitted`` are not emitted (they are another block's). ``device``: where the
        tiles are blended (the model's); rows reach ``sink`` on the host either way. ``like``:
        a stitcher of the same grid and window (another class's) whose window and sums of
        weights this one shares: only its sums of tiles are its own."""
        self.grid = grid
        self.sink = sink
        self.device = torch.device(device)
        self.on_host = self.device.type == "cpu"  # else the rows are made bytes on the device, whole
        size, margin = grid.size, grid.size - grid.stride  # margin: the rows (columns) a tile shares onwards
        width = grid.cols * grid.stride + 2 * grid.overlap
        # torch rather than numpy: in-place fused updates, on every core, or on the device
        self.buf = torch.zeros((size, size), device=self.device)  # the tile being added, and what it adds to
        self.below = torch.zeros((margin, width), device=self.device)  # carried down to the next grid row
        self.right = torch.zeros((size, margin), device=self.device)  # carried across to the next tile
        self.ratio = torch.empty((size, size), device=self.device)  # final sums over their weights
        if like is not None:
            self.weights, self.wsums = like.weights, like.wsums
        else:
            self.weights = torch.from_numpy(blend_window(window, grid.size)).to(self.device)
            self.wsums: dict[tuple[int, int], torch.Tensor] = {}  # by (grid rows done, column kind)
        self.quantise = quantise
        self.start = self.row = start_row  # grid row being accumulated
        self.col = 0  # the next tile's column
        self.emitted = first_emitted  # scene rows already handed to sink
        self.r0 = self.r1 = 0  # the scene rows the grid row being added finishes
        self.out: np.ndarray | torch.Tensor | None = None  # the grid row's finished rows
        self.floats: torch.Tensor | None = None  # their buffer, when handed on as floats on the host
        # from a device: the rows on their way to the host, handed on once the next grid row's work is queued
        self.pending: tuple[int, torch.Tensor, object] | None = None

    @property
    def top(self) -> int:
        """Scene row of the grid row's first row (may be negative: padding above the scene)."""
        return self.row * self.grid.stride - self.grid.overlap

    def _rows(self) -> tuple[int, int]:
        """The scene rows ``[r0, r1)`` the grid row being added finishes (maybe none)."""
        n = self.grid.size if self.row == self.grid.rows - 1 else self.grid.stride
        return max(self.top, self.emitted), min(self.top + n, self.grid.height)

    def _wsum(self, col: int) -> torch.Tensor:
        """The sums of weights over the tile ``col``'s final columns ``(size, columns)``: the
        weights of the tiles that reach them, added up across in the order the tiles come and
        down as grid rows are done (the floats a whole-scene accumulation of weights gives).
        Every column block of a grid row but the first few and the last is the same one: made
        once, for every grid row after the first few, and shared by the classes' stitchers."""
        g = self.grid
        size, s = g.size, g.stride
        reach = -(-size // s)  # grid rows (columns) that reach into one
        last = col == g.cols - 1
        kind = -1 if last else min(col, reach - 1)
        done = min(self.row - self.start, reach)
        key = (done, kind)
        if key not in self.wsums:
            x0, bw = col * s, size if last else s
            profile = torch.zeros((size, bw), device=self.device)
            for c in range(max(0, col - reach + 1), col + 1):  # the tiles reaching columns x0 … x0 + bw
                a, b = max(x0, c * s), min(x0 + bw, c * s + size)
                if a < b:
                    profile[:, a - x0 : b - x0] += self.weights[:, a - c * s : b - c * s]
            wsum = profile
            for _ in range(done):  # with the grid rows above: theirs, shifted up a stride, added in
                above = torch.zeros_like(profile)
                above[:-s] = wsum[s:]
                wsum = above.add_(profile)
            self.wsums[key] = wsum
        return self.wsums[key]

    def add(self, tile: Tile, prob: np.ndarray | torch.Tensor) -> None:
        """Accumulate one tile's probability ``(size, size)`` float32; the tiles of a grid row
        come left to right."""
        if tile.row != self.row:
            raise ValueError(f"tile of grid row {tile.row} given while stitching row {self.row}")
        if tile.col != self.col:
            raise ValueError(f"tile of grid column {tile.col} given where column {self.col} comes next")
        g, buf = self.grid, self.buf
        size, s, margin = g.size, g.stride, g.size - g.stride
        x0 = tile.col * s  # the tile's first column in the padded accumulation
        if tile.col == 0:
            self.r0, self.r1 = self._rows()
            self._begin_row()
        if margin:  # what the tiles above and to the left left here, else nothing yet
            buf[:margin] = self.below[:, x0 : x0 + size]
            if tile.col:
                buf[:, :margin] = self.right
            else:
                buf[margin:, :margin] = 0
            buf[margin:, margin:] = 0
        else:
            buf.zero_()
        buf.addcmul_(torch.as_tensor(prob, device=self.device), self.weights)
        bw = size if tile.col == g.cols - 1 else s  # the columns no later tile of the row reaches
        if margin:
            self.right.copy_(buf[:, s:])
            self.below[:, x0 : x0 + bw] = buf[s:, :bw]
        if self.r1 > self.r0:
            self._finish(x0, bw)
        self.col += 1

    def _begin_row(self) -> None:
        n, width = max(self.r1 - self.r0, 0), self.grid.width
        if self.quantise is not None and self.on_host:
            self.out = np.empty((n, width), np.uint8)  # a new array each time: sink may keep it
        elif self.on_host:  # floats in the stitcher's own buffer
            if self.floats is None or self.floats.shape[0] < n:
                self.floats = torch.empty((self.grid.size, width))
            self.out = self.floats[:n]
        else:
            self.out = torch.empty((n, width), device=self.device,
                                   dtype=torch.float32 if self.quantise is None else torch.uint8)

    def _finish(self, x0: int, bw: int) -> None:
        """Divide the final block of the tile at ``x0`` (``bw`` columns) by its sums of weights
        into the grid row's output, clipped to the scene."""
        g = self.grid
        b0, b1 = self.r0 - self.top, self.r1 - self.top
        c0, c1 = max(x0 - g.overlap, 0), min(x0 + bw - g.overlap, g.width)  # scene columns
        if c1 <= c0:
            return
        a0, a1 = c0 + g.overlap - x0, c1 + g.overlap - x0
        wsum = self._wsum(self.col)
        t = torch.div(self.buf[b0:b1, a0:a1], wsum[b0:b1, a0:a1], out=self.ratio[: b1 - b0, : a1 - a0])
        if self.quantise is None:
            self.out[:, c0:c1] = t
            return
        t = t.clamp_(0.0, 1.0).mul_(self.quantise).add_(0.5)
        if self.on_host:
            np.copyto(self.out[:, c0:c1], t.numpy(), casting="unsafe")  # numpy's cast: 4× torch's, the same bytes
        else:
            self.out[:, c0:c1] = t.to(torch.uint8)

    def end_row(self) -> None:
        """Hand on the scene rows that no later tile row reaches, and go to the next grid row."""
        if self.col != self.grid.cols:
            raise ValueError(f"grid row {self.row} ended after {self.col} of its {self.grid.cols} tiles")
        if self.r1 > self.r0:
            if self.on_host:
                self.sink(self.r0, self.out.numpy() if isinstance(self.out, torch.Tensor) else self.out)
            else:  # copied back while the device goes on
                cuda = self.device.type == "cuda"
                host = torch.empty(self.out.shape, dtype=self.out.dtype, pin_memory=cuda).copy_(
                    self.out, non_blocking=cuda)
                done = torch.cuda.Event() if cuda else None
                if done is not None:
                    done.record()
                self.flush()  # the grid row before's rows: their copy is long done
                self.pending = (self.r0, host, done)
            self.emitted = self.r1
        self.out = None
        if self.row == self.grid.rows - 1:
            self.flush()
        self.row += 1
        self.col = 0

    def flush(self) -> None:
        """Hand the rows on their way back from the device to ``sink``, once their copy is done.
        ``end_row`` hands them on a grid row late, so the device has the next row's tiles to work
        on meanwhile instead of waiting for the host; the scene's last grid row does it at once,
        and a block of rows that ends before the scene's end calls this after its last
        ``end_row``."""
        if self.pending is None:
            return
        r0, host, done = self.pending
        self.pending = None
        if done is not None:
            done.synchronize()
        self.sink(r0, host.numpy())
