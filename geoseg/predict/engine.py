"""The prediction engine: a trained model over a scene of any size, tile by tile.

``predict_rows`` reads the scene tile by tile (overlapping windows, row-major, padded
by reflection at the edges; ``samplers.grid.choose_grid``), runs the U-Net in batches, blends
the tiles with ``Stitcher`` and hands on the finished probability rows as they come
(and writes them, block by block, to a tiled GeoTIFF georeferenced like the scene when
asked); ``predict_probability`` runs it to the end. The ``geoseg predict`` job around it
(outputs, polygons, several scenes, a cluster) is ``jobs.predict``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable

import numpy as np
import rasterio
import torch
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from geoseg.config import STRETCH_PERCENTILES, TileOptions
from geoseg.datasets.normalisation import Normalisation
from geoseg.errors import GeosegWarning, InputError
from geoseg.io.raster import PROB_SCALE, SceneInfo, band_percentiles, check_bands, open_raster, scene_info, value_scale
from geoseg.io.windows import BlockRowWriter, RowBands
from geoseg.models.checkpoint import Checkpoint
from geoseg.models.inference import compile_for_inference, fuse_for_inference
from geoseg.predict.prefetch import Prefetch, host_pixels, read_groups, use_prefetch
from geoseg.predict.stitch import Sink, Stitcher
from geoseg.runtime import (
    autocast,
    decode_threads,
    host_threads,
    resolve_device,
    resolve_precision,
    torch_threads,
    tune_allocator,
)
from geoseg.samplers.grid import TileGrid, choose_grid

# GDAL's block cache while geoseg predicts: bounded (by default it takes 5 % of RAM), and in bytes:
# rasterio hands GDAL_CACHEMAX to GDALSetCacheMax64, so a small integer is bytes, not megabytes (128
# was 128 bytes, no cache at all: a decimated read of a pixel-interleaved scene decoded every block
# once per band). Small, as nothing needs more: ``RowBands`` decodes each block of the scene once and
# keeps what the next window shares, ``BlockRowWriter`` writes whole block rows, and the preview and
# the block-wise passes read windows of a few MB. A cache is filled before it is emptied: at 128 MB
# it was the largest part of the growth of peak memory with the scene (K = 5, 2048² → 12288²: 919 →
# 1191 MiB; 926 → 1056 MiB at 16 MB, the same speed)
GDAL_CACHE_BYTES = 16 << 20


def band_rows(grid: TileGrid, i0: int, i1: int) -> tuple[int, int]:
    """Scene rows ``[start, stop)`` that grid rows ``i0…i1−1`` finish (see ``Stitcher``)."""
    start = 0 if i0 == 0 else i0 * grid.stride - grid.overlap
    stop = grid.height if i1 >= grid.rows else i1 * grid.stride - grid.overlap
    return start, min(stop, grid.height)


def first_tile_row(grid: TileGrid, i0: int) -> int:
    """The first grid row whose tiles reach the rows that grid row ``i0`` finishes."""
    start = band_rows(grid, i0, i0 + 1)[0]
    r = i0
    while r > 0 and (r - 1) * grid.stride - grid.overlap + grid.size > start:
        r -= 1
    return r


def predict_probability(scene: str | os.PathLike, ckpt: Checkpoint, prob_path: str | os.PathLike,
                        options: TileOptions = TileOptions(), progress: bool = False,
                        compress: str = "deflate", tile_rows: tuple[int, int] | None = None) -> SceneInfo:
    """Write the stitched roof probability of ``scene`` to ``prob_path`` (uint8, p × 255).

    ``compress``: the GeoTIFF's compression; ``"zstd"`` (level 1) writes about 8× faster
    than deflate, for a raster that is only read back (deflate is used if GDAL lacks it).
    ``tile_rows=(i0, i1)``: only the scene rows that grid rows i0…i1−1 finish
    (``band_rows``), written as a raster of their own (georeferenced where they lie) —
    pixel for pixel what the whole-scene run writes there, as the tiles above that reach
    into them are predicted too. A block of a large scene for one task of a cluster."""
    rows = predict_rows(scene, ckpt, prob_path, options, progress, compress, tile_rows)
    while True:
        try:
            next(rows)
        except StopIteration as done:
            return done.value


def scene_normalisation(norm: Normalisation, src, bands: list[int], nodata: float | None,
                        scene: str) -> Normalisation:
    """The model's band normalisation for a scene: ``norm`` itself when the scene's data type
    is the training images' (a scene of the same sensor), else the scene's own 1st–99th
    percentiles per band (``io.band_percentiles``) mapped onto the range the model learnt
    from: 0 … 1 after scaling for 8-bit training imagery, ``mean − std·127/128 … mean + std``
    otherwise (a pretrained encoder's stretch, ``datasets.normalisation.normalisation_of``). So a 16-bit or
    float scene reaches a model trained on 8-bit photographs (the starter) as a stretched
    8-bit rendering of itself, as its 16-bit training renderings did; said once."""
    dtype = src.dtypes[bands[0] - 1]
    if value_scale(dtype) == norm.scale:
        return norm
    sampled = band_percentiles(src, bands, STRETCH_PERCENTILES, nodata)
    if sampled is None:  # nothing valid to measure (all nodata): nothing will be predicted either
        warnings.warn(f"{scene}: {dtype} imagery with no valid pixel in the sampled windows; the model's own"
                      " scaling is used", GeosegWarning, stacklevel=3)
        return norm
    lo, hi = sampled
    mean, std = np.array(norm.mean), np.array(norm.std)
    a, b = (np.zeros_like(mean), np.ones_like(mean)) if norm.scale == 255.0 else (mean - std * 127 / 128, mean + std)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    k = span / (b - a)  # raw units per unit of the training range
    warnings.warn(f"{scene}: {dtype} imagery, the model was trained on {'8-bit' if norm.scale == 255.0 else 'other'}"
                  f" imagery: each band's {STRETCH_PERCENTILES[0]:g}–{STRETCH_PERCENTILES[1]:g} % percentile range"
                  f" ({', '.join(f'{x:.4g}–{y:.4g}' for x, y in zip(lo, hi))}) is stretched onto its range",
                  GeosegWarning, stacklevel=3)
    return Normalisation(scale=1.0, mean=tuple((lo + (mean - a) * k).tolist()), std=tuple((std * k).tolist()))


def predict_rows(scene: str | os.PathLike, ckpt: Checkpoint, prob_path: str | os.PathLike | None,
                 options: TileOptions = TileOptions(), progress: bool = False, compress: str = "deflate",
                 tile_rows: tuple[int, int] | None = None, rows_out: Sink | None = None, name: str | None = None):
    """``predict_probability`` one grid row at a time: a generator that yields after each
    row of tiles and returns the scene's ``SceneInfo``. ``rows_out(first row, rows)``
    receives the finished probability rows (uint8, p × 255) as they are written, in order;
    ``prob_path`` None writes no raster. ``name``: the scene as the user gave it, for the
    messages (``scene`` may be geoseg's own resampling VRT of it)."""
    from tqdm import tqdm

    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    tune_allocator()
    model, mcfg = ckpt.build(device), ckpt.model
    if options.compile:
        model = compile_for_inference(model)
    else:
        model = fuse_for_inference(model).to(memory_format=torch.channels_last)
    batch = options.batch_size or (8 if device.type == "cuda" else 1)

    # GDAL decodes a read's blocks on threads (set before the file is opened): on a CPU as many as
    # torch has (the cores are idle while the model waits for its tiles), on CUDA every core
    with torch_threads(host_threads(device)), rasterio.Env(
            GDAL_NUM_THREADS=options.decode_threads or decode_threads(device) or torch.get_num_threads()), \
            open_raster(scene) as src:
        info = scene_info(src)
        grid = choose_grid(src.height, src.width, mcfg.multiple, options.tile_size, options.overlap, ckpt.fixed_tile)
        shown = name or str(scene)
        bands = check_bands(options.bands, src.count, shown)
        if options.bands is None and len(bands) == 1 < mcfg.in_channels:  # a grey scene as grey in every band
            bands = bands * mcfg.in_channels
            warnings.warn(f"{shown}: one band, fed as grey to the model's {mcfg.in_channels} (`bands`"
                          f" {','.join(['1'] * mcfg.in_channels)})", GeosegWarning, stacklevel=2)
        if len(bands) != mcfg.in_channels:
            raise InputError(
                f"{shown}: {len(bands)} band(s) selected but the model was trained on {mcfg.in_channels};"
                f" pass `bands` with {mcfg.in_channels} band numbers"
            )
        nodata = options.nodata if options.nodata is not None else ckpt.nodata
        norm = scene_normalisation(ckpt.norm, src, bands, nodata, shown)
        std = torch.tensor(norm.std, dtype=torch.float64)[:, None, None]
        gain = (1.0 / (norm.scale * std)).float().to(device)
        shift = (-torch.tensor(norm.mean, dtype=torch.float64)[:, None, None] / std).float().to(device)
        # float pixels may be NaN (missing data, declared or not)
        need_valid = (nodata is not None or any(f != [MaskFlags.all_valid] for f in src.mask_flag_enums)
                      or any(np.dtype(src.dtypes[b - 1]).kind == "f" for b in bands))
        i0, i1 = tile_rows or (0, grid.rows)
        b0, b1 = band_rows(grid, i0, i1)
        first = first_tile_row(grid, i0)
        bands_out = mcfg.classes - 1  # the probability of each class but background: one band for roofs
        profile = dict(driver="GTiff", width=src.width, height=b1 - b0, count=bands_out, dtype="uint8",
                       crs=src.crs, transform=src.window_transform(Window(0, b0, src.width, b1 - b0)),
                       tiled=True, blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = _create(prob_path, profile, compress) if prob_path is not None else None
        with dst if dst is not None else contextlib.nullcontext():
            writer = BlockRowWriter(dst) if dst is not None else None

            def sink(row0: int, rows: np.ndarray) -> None:  # uint8, p × 255; (classes, rows, cols) for classes
                if writer is not None:
                    writer.write(row0 - b0, rows)
                if rows_out is not None:
                    rows_out(row0, rows)

            # the tiles blended on the model's device: from a GPU only finished rows come back, as bytes;
            # a stitcher per class but background, their rows joined as bands
            joined = ClassBands(bands_out, sink)
            sinks = [sink] if bands_out == 1 else [joined.part(c) for c in range(bands_out)]
            stitchers: list[Stitcher] = []
            for s in sinks:  # the classes' stitchers share the window and its sums of weights
                stitchers.append(Stitcher(grid, s, options.blend, start_row=first, first_emitted=b0,
                                          quantise=PROB_SCALE, device=device,
                                          like=stitchers[0] if stitchers else None))
            # pixels are read in the file's own type (float32 if the chosen bands differ in type)
            read_type = src.dtypes[bands[0] - 1] if len({src.dtypes[b - 1] for b in bands}) == 1 else "float32"
            tile_bytes = grid.size * grid.stride * len(bands) * np.dtype(read_type).itemsize
            total = (i1 - first) * grid.cols
            bar = tqdm(total=total, desc="predict", unit="tile", leave=False,
                       disable=None if progress else True)  # None: no bar when not a terminal
            done, said = 0, -1  # tiles predicted, and the percentage said last (GEOSEG_PROGRESS=lines)

            def reads():  # (grid row, a run of its tiles, their pixels ready for the device, valid), row-major
                runs: dict[int, RowBands] = {}  # every grid row has the same runs of columns
                for r in range(first, i1):
                    for k, group in enumerate(read_groups(grid.row_tiles(r), tile_bytes)):
                        # one window for a run of tiles, in the file's own type: fewer, larger GDAL
                        # requests; the rows it shares with the row above are not read again
                        c0, t = group[0].col_off, group[0].size
                        if k not in runs:
                            runs[k] = RowBands(src, c0, group[-1].col_off + t - c0, bands, need_valid, nodata,
                                               read_type)
                        data, valid = runs[k].window(group[0].row_off, t)
                        if runs[k].whole(group[0].row_off, t):  # no pixel of the scene missing: no tile masked
                            valid = None
                        yield r, group, host_pixels(data, device), valid

            # windows are read (and staged) in a thread ahead of the model when it pays; a
            # window (a grid row's tiles) at a time: handing tiles over one by one between
            # Python threads cost more than the work they moved
            source = Prefetch(reads()) if use_prefetch(options.prefetch, device) else reads()
            # one autocast for the scene: its cache keeps the weights cast to bfloat16/float16
            # (entered per batch, every forward pass would cast them again)
            with contextlib.closing(source), torch.no_grad(), autocast(device, precision):
                row = first
                for r, group, pixels, valid in source:
                    if r != row:  # a grid row is complete
                        for stitcher in stitchers:
                            stitcher.end_row()
                        yield row
                        row = r
                    # the window to the device at once (on CUDA from page-locked memory: copied while
                    # the GPU works), cut into tiles and normalised there
                    pixels = pixels.to(device, non_blocking=True)
                    c0, t = group[0].col_off, group[0].size
                    for i in range(0, len(group), batch):
                        chunk = group[i : i + batch]
                        cols = [slice(tl.col_off - c0, tl.col_off - c0 + t) for tl in chunk]
                        x = normalised(torch.stack([pixels[:, :, c] for c in cols]), shift, gain)
                        prob = class_probability(model, x, options.tta)  # stays on the device
                        for tl, p, c in zip(chunk, prob, cols):
                            if valid is not None and not valid[:, c].all():  # the tile holds missing pixels
                                p = p * torch.from_numpy(valid[:, c]).to(p.device)
                            for stitcher, band in zip(stitchers, p):
                                stitcher.add(tl, band)
                        bar.update(len(chunk))
                        done += len(chunk)
                        said = say_progress(done, total, said)
                for stitcher in stitchers:
                    stitcher.end_row()
                    stitcher.flush()  # rows still on their way back from a device (a block's last)
                if writer is not None:
                    writer.close()
                yield row
            bar.close()
    return info


def say_progress(done: int, total: int, said: int) -> int:
    """With ``GEOSEG_PROGRESS=lines`` (as the QGIS plugin runs geoseg), a ``progress N%`` line on
    stderr each time the whole percentage grows; returns the percentage said last."""
    if os.environ.get("GEOSEG_PROGRESS") != "lines" or not total:
        return said
    percent = 100 * done // total
    if percent > said:
        import sys

        print(f"progress {percent}%", file=sys.stderr, flush=True)
    return max(percent, said)


def normalised(x: torch.Tensor, shift: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Raw pixels ``(N, bands, H, W)`` as the model's input: float, ``(x / scale − mean) / std``
    (``gain``, ``shift``), written channels-last with no copy before it: in one pass on a GPU,
    band by band on a CPU (1.6× faster there than one pass across the two layouts; the same
    floats)."""
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device, memory_format=torch.channels_last)
    if x.device.type != "cpu":
        return torch.addcmul(shift, x, gain, out=out)
    for k in range(x.shape[1]):
        torch.addcmul(shift[k], x[:, k], gain[k], out=out[:, k])
    return out


def class_probability(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      tta: bool = False) -> torch.Tensor:
    """The probability of each class but background ``(N, K − 1, H, W)`` of a batch; with
    ``tta``, the mean over the eight symmetries of the square (flips and quarter turns), each
    undone on its output."""
    if not tta:
        return model(x).float().softmax(1)[:, 1:]
    total = None
    for turns in range(4):
        for flip in (False, True):
            t = torch.rot90(x, turns, (2, 3))
            t = (t.flip(3) if flip else t).contiguous(memory_format=torch.channels_last)
            p = model(t).float().softmax(1)[:, 1:]
            p = p.flip(3) if flip else p
            p = torch.rot90(p, -turns, (2, 3))
            total = p if total is None else total + p
    return total / 8


def roof_probability(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Roof probability ``(N, H, W)`` of a batch of a two-class model (``class_probability``)."""
    return class_probability(model, x, tta)[:, 0]


class ClassBands:
    """Joins the rows of one ``Stitcher`` per class (each blends one class's probability) into
    ``(K − 1, rows, cols)`` uint8 bands for ``sink``, once every class has delivered them: the
    stitchers see the same tiles in the same order, so their rows come in the same order. Each
    class's rows are copied in as they come (and let go by their stitcher): the classes' rows
    are held once, not twice."""

    def __init__(self, classes: int, sink: Sink) -> None:
        self.classes, self.sink = classes, sink
        self.parts: dict[int, tuple[np.ndarray, set[int]]] = {}  # first row: (the bands, classes still to come)

    def part(self, c: int) -> Sink:
        """The sink of class ``c``'s stitcher (0: the first class after background)."""
        def got(row0: int, rows: np.ndarray) -> None:
            if row0 not in self.parts:
                self.parts[row0] = np.empty((self.classes, *rows.shape), rows.dtype), set(range(self.classes))
            bands, missing = self.parts[row0]
            bands[c] = rows
            missing.discard(c)
            if not missing:
                del self.parts[row0]
                self.sink(row0, bands)
        return got


def _create(path, profile: dict, compress: str):
    if compress == "zstd":
        try:
            return rasterio.open(path, "w", **profile, compress="zstd", zstd_level=1)
        except rasterio.errors.RasterioIOError:  # a GDAL built without ZSTD
            pass
    return rasterio.open(path, "w", **profile, compress="deflate")
