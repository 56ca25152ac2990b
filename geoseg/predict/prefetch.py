"""Reading ahead: grid rows of tiles read in a thread while the model runs, and windows moved
to the device (page-locked on CUDA)."""

from __future__ import annotations

import queue
import threading

import numpy as np
import torch

from geoseg.runtime import (
    cores,
)

PREFETCH_CORES = 8  # a CPU reads ahead from this many cores (measured on 2 only: no gain)


def use_prefetch(choice: bool | None, device: torch.device) -> bool:
    """Whether tiles are read in a thread ahead of the model: asked (True/False), or by
    device and cores. On CUDA the GPU runs while the thread decodes the next tiles (given a
    second core: on one, the switching cost more than it hid, ``bench/beside.py``); on a
    CPU the model keeps every core busy: on 2 cores the thread gained nothing beyond the
    noise (8192² scene 10.2 → 10.1 s, ``bench/speed.py --prefetch``), the decoding it
    hides being paid by the model's cores, so a CPU reads ahead from 8 cores (untried)."""
    if choice is not None:
        return choice
    return cores() >= (2 if device.type == "cuda" else PREFETCH_CORES)


class Prefetch:
    """Runs an iterator in a thread one item ahead of its consumer; re-raises the
    iterator's error in the consumer; ``close()`` stops the thread (the consumer stopped
    early, Ctrl-C). The iterator's I/O must release the GIL (GDAL reads do)."""

    def __init__(self, items, depth: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="geoseg-read", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items) -> None:
        try:
            for item in items:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((False, exc))
        finally:
            if hasattr(items, "close"):
                items.close()

    def __iter__(self):
        while True:
            more, item = self._queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


READ_BYTES = 64 << 20  # a read covers as many tiles of a row as fit in this (measured: fewer, wider reads are faster)


def read_groups(tiles: list, bytes_per_tile: int) -> list[list]:
    """A grid row's tiles in runs that are read at once, each at most ``READ_BYTES``."""
    n = max(1, READ_BYTES // bytes_per_tile)
    return [tiles[i : i + n] for i in range(0, len(tiles), n)]


def host_pixels(data: np.ndarray, device: torch.device) -> torch.Tensor:
    """A window's pixels ``(bands, rows, columns)`` as a tensor on the host in a type torch
    normalises (``as_tensor_type``): for the CPU a view of ``data``; for CUDA a page-locked
    copy, which copies to the GPU while it works (raw pixels: for 8-bit imagery a quarter of
    the bytes of the model's float input)."""
    pixels = torch.from_numpy(as_tensor_type(data))
    if device.type != "cuda":
        return pixels
    return torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True).copy_(pixels)


def as_tensor_type(a: np.ndarray) -> np.ndarray:
    """Pixels that normalise to float32 in torch as they are (uint8, int8, int16, float32);
    others (uint16, uint32, float64…) as float32."""
    return a if a.dtype in (np.uint8, np.int8, np.int16, np.float32) else a.astype(np.float32)
