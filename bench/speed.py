"""Speed: geoseg predict end to end against the bare model, and against the usual way.

    python -m bench.speed [--size 4096] [--tile 512] [--overlap 32]

On one synthetic scene, with the same weights and tile grid, in one run:
  bare     the model's forward passes over every tile of the grid (the scene's own
           pixels, read and normalised beforehand, in memory), at geoseg's batch size and
           precision, with geoseg's inference fusions: the floor of the cost (and once
           more without joining each convolution to its ReLU, to show what that saves);
  geoseg   `run_predict` end to end: read, normalise, forward, blend, write the
           probability GeoTIFF, vectorise, write GeoJSON;
  naive    the way most projects do it: rasterio `boundless=True` window reads,
           single-tile float32 forward passes, overlaps averaged into a whole-scene
           array, thresholded and vectorised with `rasterio.features.shapes`;
  torchgeo a `RasterDataset` over the scene, `GridGeoSampler` tiles of the same size
           and stride through a `DataLoader` (torchgeo's usual recipe), float32
           forward passes, overlaps averaged, thresholded and vectorised likewise;
           skipped with a note when torchgeo is not installed (`pip install torchgeo
           requests`: its 0.8.1 wheel forgets `requests`).
Prints megapixels of scene per second for each, geoseg's share of the bare throughput,
and geoseg's speed-up over the peers. Bare and geoseg run ``--repeat`` times, interleaved,
and the best of each counts (the peers, slower by far, run once). ``--prefetch`` adds
geoseg with a thread reading the tiles ahead of the model (as on CUDA and 8+ cores).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio import features
from rasterio.windows import Window

from bench._common import prepare, scene_args
from geoseg.config import TileOptions
from geoseg.io.windows import read_window
from geoseg.jobs.predict import Outputs, run_predict
from geoseg.models import checkpoint
from geoseg.models.inference import fuse_for_inference
from geoseg.runtime import autocast, resolve_device, resolve_precision, tune_allocator
from geoseg.samplers.grid import TileGrid


def scene_tiles(scene, state, tile, overlap, batch, device) -> list[torch.Tensor]:
    """Every tile of the grid, normalised, in batches, channels-last on ``device``: the bare
    model's input, read before any timing (padded at the edges by reflection, as geoseg does)."""
    norm = state.norm
    mean = torch.tensor(norm.mean)[:, None, None]
    std = torch.tensor(norm.std)[:, None, None]
    with rasterio.open(scene) as src:
        grid = TileGrid(src.height, src.width, tile, overlap)
        tiles = [t for r in range(grid.rows) for t in grid.row_tiles(r)]
        x = [(torch.from_numpy(read_window(src, t.row_off, t.col_off, tile, tile, src.indexes)[0]) / norm.scale
              - mean) / std for t in tiles]
    return [torch.stack(x[i : i + batch]).to(device).contiguous(memory_format=torch.channels_last)
            for i in range(0, len(x), batch)]


def bare_forward(batches, state, precision, onednn: bool = True) -> float:
    """Seconds for the forward passes (and the roof probability) over ``batches``; ``onednn``
    False: without joining each convolution to its ReLU."""
    device = batches[0].device
    precision = resolve_precision(precision, device)
    model, _ = checkpoint.build_model(state, device)
    model = fuse_for_inference(model, onednn=onednn).to(memory_format=torch.channels_last)
    with torch.no_grad(), autocast(device, precision):
        model(batches[0])  # warm-up
        t = time.perf_counter()
        for x in batches:
            model(x).float().softmax(1)[:, 1].cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t


def naive(scene, state, tile, overlap, out) -> float:
    """Window reads with boundless=True, one fp32 tile at a time, mean of overlaps in memory."""
    model, _ = checkpoint.build_model(state, "cpu")
    model.eval()
    norm = state.norm
    mean = torch.tensor(norm.mean)[:, None, None]
    std = torch.tensor(norm.std)[:, None, None]
    t = time.perf_counter()
    with rasterio.open(scene) as src:
        acc = np.zeros((src.height, src.width), np.float32)
        cnt = np.zeros((src.height, src.width), np.float32)
        stride = tile - 2 * overlap
        for r in range(-overlap, src.height, stride):
            for c in range(-overlap, src.width, stride):
                a = src.read(window=Window(c, r, tile, tile), boundless=True, fill_value=0).astype(np.float32)
                x = ((torch.from_numpy(a) / norm.scale - mean) / std)[None]
                with torch.no_grad():
                    p = model(x).softmax(1)[0, 1].numpy()
                r0, c0 = max(r, 0), max(c, 0)
                r1, c1 = min(r + tile, src.height), min(c + tile, src.width)
                acc[r0:r1, c0:c1] += p[r0 - r : r1 - r, c0 - c : c1 - c]
                cnt[r0:r1, c0:c1] += 1
        mask = (acc / cnt >= 0.5).astype(np.uint8)
        shapes = [g for g, v in features.shapes(mask, mask=mask > 0, transform=src.transform)]
    del shapes
    return time.perf_counter() - t


def with_torchgeo(scene, state, tile, overlap) -> float:
    """torchgeo's recipe: RasterDataset + GridGeoSampler + DataLoader, float32, mean of overlaps."""
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    class Scene(RasterDataset):
        filename_glob = Path(scene).name
        is_image = True

    model, _ = checkpoint.build_model(state, "cpu")
    model.eval()
    norm = state.norm
    mean = torch.tensor(norm.mean)[None, :, None, None]
    std = torch.tensor(norm.std)[None, :, None, None]
    t = time.perf_counter()
    data = Scene(paths=str(Path(scene).parent))
    loader = DataLoader(data, batch_size=1, sampler=GridGeoSampler(data, size=tile, stride=tile - 2 * overlap),
                        collate_fn=stack_samples)
    with rasterio.open(scene) as src:
        h, w, tr = src.height, src.width, src.transform
    acc = np.zeros((h, w), np.float32)
    cnt = np.zeros((h, w), np.float32)
    with torch.no_grad():
        for batch in loader:
            p = model((batch["image"] / norm.scale - mean) / std).softmax(1)[:, 1].numpy()
            for prob, (xs, ys, _) in zip(p, batch["bounds"]):
                # torchgeo 0.8 lets the last tiles run past the scene (filled with zeros): clip them
                c, r = round((xs.start - tr.c) / tr.a), round((ys.stop - tr.f) / tr.e)
                r0, c0, r1, c1 = max(r, 0), max(c, 0), min(r + prob.shape[0], h), min(c + prob.shape[1], w)
                acc[r0:r1, c0:c1] += prob[r0 - r : r1 - r, c0 - c : c1 - c]
                cnt[r0:r1, c0:c1] += 1
    mask = (acc / np.maximum(cnt, 1) >= 0.5).astype(np.uint8)
    shapes = [g for g, v in features.shapes(mask, mask=mask > 0, transform=tr)]
    del shapes
    return time.perf_counter() - t


def main() -> None:
    ap = scene_args(__doc__, size=4096, tile=512, precision="auto")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="bare and geoseg runs, interleaved; the best of each counts")
    ap.add_argument("--skip-peers", action="store_true", help="only bare and geoseg")
    ap.add_argument("--prefetch", action="store_true",
                    help="also geoseg with its tiles read in a thread ahead of the model (on by itself on CUDA"
                    " and 8+ cores), interleaved with the rest")
    args = ap.parse_args()
    model, scene = prepare(args)
    state = checkpoint.load(model)
    mp = args.size**2 / 1e6
    tune_allocator()  # as geoseg does: the bare floor gets the same allocator
    batches = scene_tiles(scene, state, args.tile, args.overlap, args.batch, resolve_device("auto"))
    bare, ours, plain, ahead = [], [], [], []
    for _ in range(args.repeat):  # interleaved, best of each: the machine's noise hits both alike
        bare.append(bare_forward(batches, state, args.precision))
        plain.append(bare_forward(batches, state, args.precision, onednn=False))
        for prefetch, times in ((None, ours), (True, ahead)):
            if prefetch and not args.prefetch:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                r = run_predict(scene, model, Outputs(Path(tmp) / "roofs.geojson", preview=False),
                                TileOptions(tile_size=args.tile, overlap=args.overlap, batch_size=args.batch,
                                            precision=args.precision, prefetch=prefetch))
                times.append(time.perf_counter() - t)
    del batches
    print("runs, s: bare " + " ".join(f"{t:.1f}" for t in bare) + ", geoseg " + " ".join(f"{t:.1f}" for t in ours)
          + ", bare unjoined " + " ".join(f"{t:.1f}" for t in plain))
    bare, ours, plain = min(bare), min(ours), min(plain)
    grid = TileGrid(args.size, args.size, args.tile, args.overlap)
    print(f"scene {args.size}² px ({mp:.1f} MP), tile {args.tile}, overlap {args.overlap} "
          f"(computes {grid.cost:.2f}× the scene), batch {args.batch}, precision {args.precision}, "
          f"{torch.get_num_threads()} threads")
    print(f"bare forward   {bare:7.1f} s  {mp / bare:6.2f} MP/s")
    print(f"  (the same with convolution and ReLU as two operations: {plain:.1f} s, {mp / plain:.2f} MP/s; "
          f"joined {plain / bare:.2f}× faster)")
    print(f"geoseg predict {ours:7.1f} s  {mp / ours:6.2f} MP/s  = {100 * bare / ours:.1f} % of bare  "
          f"({r.count} polygons)")
    print(f"  beside the model: MP / (geoseg − bare) = {mp / max(ours - bare, 1e-9):.1f} MP/s"
          " (bench/beside.py measures it with a stand-in for the model)")
    if torch.cuda.is_available():  # the bare forward is the GPU's whole work in geoseg's run
        print(f"  GPU busy during geoseg predict: about {100 * bare / ours:.0f} % of the time (bare forward,"
              " synchronised, over geoseg's wall time)")
    if ahead:
        print(f"  with a reading thread: {min(ahead):.1f} s, {mp / min(ahead):.2f} MP/s = "
              f"{100 * bare / min(ahead):.1f} % of bare (runs " + " ".join(f"{t:.1f}" for t in ahead) + ")")
    if args.skip_peers:
        return
    nv = naive(scene, state, args.tile, args.overlap, None)
    print(f"naive loop     {nv:7.1f} s  {mp / nv:6.2f} MP/s  → geoseg is {nv / ours:.2f}× faster")
    try:
        import torchgeo  # noqa: F401
    except ImportError as e:
        print(f"torchgeo       skipped: {e} (pip install torchgeo requests)")
    else:
        tg = with_torchgeo(scene, state, args.tile, args.overlap)
        print(f"torchgeo       {tg:7.1f} s  {mp / tg:6.2f} MP/s  → geoseg is {tg / ours:.2f}× faster")


if __name__ == "__main__":
    main()
