"""Blend overlapping tile predictions into the scene grid, one row of tiles at a time.

Each tile's probability is multiplied by a blending window that falls towards the tile
edges and accumulated with its weight; a pixel's value is the weighted mean of every
tile that saw it, so the prediction made furthest from a tile edge counts most and no
seam shows. Tiles arrive in row-major order; when a row of tiles is done, the scene rows
that no later tile touches are final and go to ``sink`` — memory is a buffer of ``tile
size`` × ``scene width`` floats for the weighted sums and as many for the sums of weights
as grid rows reach into one plus one (three with the default overlap), and one for the
rows handed on, whatever the scene's height. With ``quantise`` the rows are handed on as
bytes (``round(p × quantise)``), made a few rows at a time while they are in the cache. The
buffers live on the model's device: on a GPU the tiles are blended where the model made
them, and only the finished rows come to the host (as bytes: a quarter of the floats).
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


QUANTISE_CHUNK_BYTES = 2 << 20  # rows made bytes this many float bytes at a time (8192 wide: 64 rows,


# 0.17-0.26 → 0.10-0.14 s per 67 MP on one core against the whole band in one pass per step: it stays in the cache)


class Stitcher:
    """Accumulates tiles of a ``TileGrid`` and hands finished scene rows to ``sink``.

    Call ``add`` for every tile of a grid row, then ``end_row``; rows are emitted in
    order, each exactly once, clipped to the scene, as float32 in the stitcher's own
    buffer: ``sink`` may change them but not keep them (the next rows are written there).
    With ``quantise`` (e.g. 255) they are emitted as uint8 ``round(clip(p, 0, 1) × quantise)``
    in a new array each time, which ``sink`` may keep. On a device (a GPU) the rows reach
    ``sink`` one grid row late, in a new array each time: all of them by the scene's last
    ``end_row``, or by ``flush``.
    """

    def __init__(self, grid: TileGrid, sink: Sink, window: str = "hann", start_row: int = 0,
                 first_emitted: int = 0, quantise: float | None = None,
                 device: torch.device | str = "cpu", like: Stitcher | None = None) -> None:
        """``start_row``: the first grid row to be added (a block of a scene); rows above
        ``first_emitted`` are not emitted (they are another block's). ``device``: where the
        tiles are blended (the model's); rows reach ``sink`` on the host either way. ``like``:
        a stitcher of the same grid and window (another class's) whose window and sums of
        weights this one shares: only its accumulator is its own."""
        self.grid = grid
        self.sink = sink
        self.device = torch.device(device)
        self.on_host = self.device.type == "cpu"  # else the rows are made bytes on the device, whole
        width = grid.cols * grid.stride + 2 * grid.overlap
        # torch rather than numpy: in-place fused updates, on every core, or on the device
        self.acc = torch.zeros((grid.size, width), device=self.device)
        if like is not None:
            self.weights, self.wsums = like.weights, like.wsums
        else:
            self.weights = torch.from_numpy(blend_window(window, grid.size)).to(self.device)
            # every grid row has the same tiles across, so their weights add up to the same
            # profile, and the rows a grid row shares with the rows above it add theirs: the sums
            # of weights are known before any tile comes, the same for every grid row once as
            # many rows as reach into one are done (added in the order tiles come: the same floats)
            profile = torch.zeros((grid.size, width), device=self.device)
            for c in range(grid.cols):
                profile[:, c * grid.stride : c * grid.stride + grid.size] += self.weights
            s = grid.stride
            self.wsums = [profile]  # by grid rows done since ``start_row``
            for _ in range(-(-grid.size // s)):
                wsum = torch.zeros_like(profile)
                wsum[:-s] = self.wsums[-1][s:]
                self.wsums.append(wsum.add_(profile))
        self.quantise = quantise
        # the rows handed to ``sink`` each time; quantised on the host, the few rows being made bytes
        chunk = grid.size if quantise is None or not self.on_host else max(
            1, min(grid.size, QUANTISE_CHUNK_BYTES // (4 * grid.width)))
        self.rows = torch.empty((chunk, grid.width), device=self.device)
        self.start = self.row = start_row  # grid row being accumulated
        self.emitted = first_emitted  # scene rows already handed to sink
        # from a device: the rows on their way to the host, handed on once the next grid row's work is queued
        self.pending: tuple[int, torch.Tensor, object] | None = None

    @property
    def top(self) -> int:
        """Scene row of the buffer's first row (may be negative: padding above the scene)."""
        return self.row * self.grid.stride - self.grid.overlap

    def add(self, tile: Tile, prob: np.ndarray | torch.Tensor) -> None:
        """Accumulate one tile's probability ``(size, size)`` float32."""
        if tile.row != self.row:
            raise ValueError(f"tile of grid row {tile.row} given while stitching row {self.row}")
        c0 = tile.col_off + self.grid.overlap
        prob = torch.as_tensor(prob, device=self.device)
        self.acc[:, c0 : c0 + self.grid.size].addcmul_(prob, self.weights)

    def end_row(self) -> None:
        """Emit the scene rows that no later tile row reaches, and shift the buffers."""
        s = self.grid.stride
        if self.row == self.grid.rows - 1:
            self._emit(self.grid.size)
            self.flush()
        else:
            self._emit(s)
            self.acc[:-s] = self.acc[s:].clone()
            self.acc[-s:] = 0
        self.row += 1

    def _emit(self, n: int) -> None:
        r0 = max(self.top, self.emitted)
        r1 = min(self.top + n, self.grid.height)
        if r1 <= r0:
            return
        b0, b1 = r0 - self.top, r1 - self.top
        c0 = self.grid.overlap
        wsum = self.wsums[min(self.row - self.start, len(self.wsums) - 1)]
        acc, wsum = self.acc[b0:b1, c0 : c0 + self.grid.width], wsum[b0:b1, c0 : c0 + self.grid.width]
        if not self.on_host:  # made bytes on the device and copied back while it goes on
            rows = torch.div(acc, wsum, out=self.rows[: b1 - b0])
            if self.quantise is not None:
                rows = rows.clamp_(0.0, 1.0).mul_(self.quantise).add_(0.5).to(torch.uint8)
            cuda = self.device.type == "cuda"
            host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=cuda).copy_(rows, non_blocking=cuda)
            done = torch.cuda.Event() if cuda else None
            if done is not None:
                done.record()
            self.flush()  # the grid row before's rows: their copy is long done
            self.pending = (r0, host, done)
        elif self.quantise is None:
            self.sink(r0, torch.div(acc, wsum, out=self.rows[: b1 - b0]).numpy())
        else:
            out = np.empty((b1 - b0, self.grid.width), np.uint8)
            n = self.rows.shape[0]
            for k in range(0, b1 - b0, n):  # each step of a few rows while they are in the cache
                t = torch.div(acc[k : k + n], wsum[k : k + n], out=self.rows[: min(n, b1 - b0 - k)])
                t = t.clamp_(0.0, 1.0).mul_(self.quantise).add_(0.5)
                np.copyto(out[k : k + n], t.numpy(), casting="unsafe")  # numpy's cast: 4× torch's, the same bytes
            self.sink(r0, out)
        self.emitted = r1

    def flush(self) -> None:
        """Hand the rows on their way back from the device to ``sink``, once their copy is done.
        ``_emit`` hands them on a grid row late, so the device has the next row's tiles to work
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
