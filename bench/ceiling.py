"""What this machine allows the work beside the model: the decoding floor and the cores' own scaling.

    python -m bench.ceiling [--size 8192] [--model geoseg/models/weights/starter.pt]

Two figures bound what ``bench/beside.py`` can reach here, whatever geoseg does:

1. **decoding**: the scene read as ``geoseg predict`` reads it (a grid row of tiles at a
   time, margins included, through ``io.RowBands``: each block once), GDAL on one
   thread, nothing else done with the pixels. No pipeline beside the model can run faster than this on one core, and on
   ``n`` cores the rest of the work must fit in what decoding leaves:
   ``n / goal − 1 / decode`` seconds per megapixel for a goal of ``goal`` MP/s;
2. **the cores' scaling** on work that never takes Python's lock: the same decoding,
   labelling the probability's roof mask strip by strip (the components of its pixel
   runs, as the tracer finds them), and normalising and blending tiles as the engine does
   on a CPU (``predict.normalised``, ``stitch.Stitcher``: work that streams through memory
   more than it computes), run in one process and then in one process per core at once
   (throughput ratio). The pipeline's own 1 → n scaling cannot beat these. Beside them, plain
   arithmetic in the cache and streaming through memory, the same way: on the 2-core
   development machine the first scaled 1.74–2.05× and the second 1.30–1.57× (runs of
   2026-11-26, a shared and noisy machine), its cores sharing the memory's bandwidth.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench._common import prepare, scene_args  # noqa: E402


def decode(scene: str, model: str, tile: int, overlap: int, core: int | None = None, once: bool = True) -> float:
    """Seconds to read the scene as ``geoseg predict`` reads it with ``model`` (its grid, a
    grid row's tiles in ``read_groups``' runs, through ``RowBands``), GDAL on one thread."""
    import numpy as np
    import rasterio

    from geoseg.io.windows import RowBands, read_window
    from geoseg.models import checkpoint
    from geoseg.predict.prefetch import read_groups
    from geoseg.samplers.grid import choose_grid

    if core is not None:
        os.sched_setaffinity(0, {core})
    ckpt = checkpoint.load(model)
    with rasterio.Env(GDAL_NUM_THREADS=1), rasterio.open(scene) as src:
        grid = choose_grid(src.height, src.width, ckpt.model.multiple, tile, overlap, ckpt.fixed_tile)
        tile_bytes = grid.size * grid.stride * src.count * np.dtype(src.dtypes[0]).itemsize
        t0 = time.perf_counter()
        runs: dict[int, RowBands] = {}
        for r in range(grid.rows):
            for k, group in enumerate(read_groups(grid.row_tiles(r), tile_bytes)):
                c0, size = group[0].col_off, group[0].size
                width, bands = group[-1].col_off + size - c0, range(1, src.count + 1)
                if not once:  # each window read on its own: the rows it shares with the last decoded again
                    read_window(src, group[0].row_off, c0, size, width, bands, dtype=None)
                    continue
                if k not in runs:
                    runs[k] = RowBands(src, c0, width, bands, dtype=None)
                runs[k].window(group[0].row_off, size)
        return time.perf_counter() - t0


STRIP, PASSES = 512, 4  # passes: one takes a fraction of a second, too short to time among noise


def label(prob: str, core: int | None = None) -> float:
    """Seconds to label the probability's roof mask (p ≥ 0.5) in strips of ``STRIP`` rows, a pass."""
    import rasterio

    from geoseg.vector.parts import RunComponents

    if core is not None:
        os.sched_setaffinity(0, {core})
    with rasterio.open(prob) as src:
        mask = src.read(1) >= 128
    t0 = time.perf_counter()
    for _ in range(PASSES):
        for r in range(0, mask.shape[0], STRIP):
            RunComponents.of(mask[r : r + STRIP])
    return (time.perf_counter() - t0) / PASSES


def stream(width: int, tile: int, overlap: int, core: int | None = None) -> float:
    """Seconds to normalise and blend a scene ``width`` wide and ``STREAM_ROWS`` grid rows
    tall as the engine does on a CPU, one thread: each tile cut from its window, normalised
    channels-last, blended, and the rows made bytes (random pixels and probabilities)."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    import numpy as np
    import torch

    from geoseg.io.raster import PROB_SCALE
    from geoseg.predict.engine import normalised
    from geoseg.predict.stitch import Stitcher
    from geoseg.samplers.grid import TileGrid

    torch.set_num_threads(1)
    grid = TileGrid(STREAM_ROWS * (tile - 2 * overlap), width, tile, overlap)
    rng = np.random.default_rng(0)
    window = torch.from_numpy(rng.integers(0, 256, (3, tile, grid.cols * grid.stride + 2 * overlap), dtype=np.uint8))
    probs = torch.from_numpy(rng.random((4, tile, tile), dtype=np.float32))
    gain, shift = torch.full((3, 1, 1), 0.02), torch.full((3, 1, 1), -2.0)
    stitcher = Stitcher(grid, lambda r0, rows: None, quantise=PROB_SCALE)
    t0 = time.perf_counter()
    for r in range(grid.rows):
        for k, t in enumerate(grid.row_tiles(r)):
            c = t.col_off + overlap
            normalised(torch.stack([window[:, :, c : c + tile]]), shift, gain)
            stitcher.add(t, probs[k % 4])
        stitcher.end_row()
    return time.perf_counter() - t0


STREAM_ROWS = 6  # grid rows normalised and blended in ``stream``


def memory(kind: str, core: int | None = None) -> float:
    """Seconds of plain numpy work, one thread: ``"cache"`` arithmetic on an array that fits
    in a core's cache, ``"memory"`` the same streaming through arrays of 64 MB each."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    import numpy as np

    n, passes = (16 << 10, 60000) if kind == "cache" else (16 << 20, 40)
    a = np.random.default_rng(0).random(n, dtype=np.float32)
    b = np.empty_like(a)
    t0 = time.perf_counter()
    for _ in range(passes):
        np.multiply(a, np.float32(1.0001), out=b)
    return time.perf_counter() - t0


def scaling(fn, args: tuple, cores: int) -> tuple[float, float]:
    """(seconds alone on one core, throughput ratio of ``cores`` processes at once, one per core)."""
    ctx = get_context("spawn")
    with ctx.Pool(1) as pool:
        alone = min(pool.apply(fn, (*args, 0)) for _ in range(2))
    with ctx.Pool(cores) as pool:
        together = max(pool.starmap(fn, [(*args, c) for c in range(cores)]))
    return alone, cores * alone / together


def main() -> None:
    ap = scene_args(__doc__, size=8192, tile=512, precision="auto")
    args = ap.parse_args()
    model, scene = prepare(args)
    from bench.beside import stored_probability
    from geoseg.runtime import cores as usable_cores

    prob, _ = stored_probability(scene, model, args.tile, args.overlap, args.model)
    mp = args.size**2 / 1e6
    cores = usable_cores()
    seconds, ratio = scaling(decode, (str(scene), str(model), args.tile, args.overlap), cores)
    print(f"decoding the {args.size}² scene in geoseg's windows, one core: {seconds:.2f} s = {mp / seconds:.1f} MP/s;"
          f" {cores} processes at once: {ratio:.2f}× the throughput")
    with get_context("spawn").Pool(1) as pool:
        alone = min(pool.apply(decode, (str(scene), str(model), args.tile, args.overlap, 0, False)) for _ in range(2))
    print(f"  each window read on its own, as before ``RowBands``: {alone:.2f} s = {mp / alone:.1f} MP/s")
    for goal in (30, 60):
        left = cores / goal - seconds / mp
        print(f"  for {goal} MP/s beside the model on {cores} cores, everything else must take"
              f" ≤ {1e3 * left:.1f} ms of one core per MP ({left * mp:.2f} s for this scene)"
              f" with perfect overlap")
    seconds, ratio = scaling(label, (str(prob),), cores)
    print(f"labelling its roof mask in {STRIP}-row strips, one core: {seconds:.2f} s; {cores} processes at once:"
          f" {ratio:.2f}× the throughput")
    for kind in ("cache", "memory"):
        seconds, ratio = scaling(memory, (kind,), cores)
        print(f"plain arithmetic {'in the cache' if kind == 'cache' else 'streaming through memory'}, one core:"
              f" {seconds:.2f} s; {cores} processes at once: {ratio:.2f}× the throughput")
    seconds, ratio = scaling(stream, (args.size, args.tile, args.overlap), cores)
    rows = STREAM_ROWS * (args.tile - 2 * args.overlap)
    print(f"normalising and blending {args.size} × {rows} px as the engine does on a CPU, one core: {seconds:.2f} s"
          f" = {args.size * rows / 1e6 / seconds:.1f} MP/s; {cores} processes at once: {ratio:.2f}× the throughput")


if __name__ == "__main__":
    main()
