"""Run a trained model over a scene of any size and turn the result into roof polygons.

``predict_probability`` reads the scene tile by tile (overlapping windows, row-major,
padded by reflection at the edges), runs the U-Net in batches, blends the tiles with
``Stitcher`` and writes the roof probability, block by block, to a tiled GeoTIFF
georeferenced like the scene. ``run_predict`` is the ``geoseg predict`` command:
probability → polygons (``vectorize``) → file (``export``) → preview PNG.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from geoseg import checkpoint
from geoseg.errors import GeosegWarning, InputError
from geoseg.export import VectorWriter, vector_format
from geoseg.io import (
    SceneInfo,
    check_bands,
    copy_as_cog,
    open_raster,
    read_window,
    scene_info,
    strip_rows,
    value_scale,
)
from geoseg.merge import Footprint, SceneMerger
from geoseg.model import compile_for_inference, fuse_for_inference
from geoseg.outputs import OutputSet, check_output, refuse_inputs_as_outputs, scratch_dir
from geoseg.runtime import autocast, resolve_device, resolve_precision, tune_allocator
from geoseg.stitch import Sink, Stitcher
from geoseg.style import qml_path, write_qml
from geoseg.tiling import TileGrid
from geoseg.vectorize import PROB_SCALE, PolygonStream, VectorizeOptions

GDAL_CACHE_MB = 128


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


MAX_TILE = 4096  # px: a 4096² tile's first activations take 0.5–1 GiB each; larger ones may not fit


@dataclass(frozen=True)
class TileOptions:
    """How a scene is cut and run. None picks, by measurement (``bench/``): tiles of 512 px
    (the training tile size for instance-normalised models, whose output depends on the
    tile), a 32 px margin (computing 1.31× the scene at 512 px; seams stay invisible:
    99.99 % agreement with one whole-scene pass), batch 1 on a CPU (fastest on 2 cores)
    and 8 on CUDA."""

    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    blend: str = "hann"
    device: str = "auto"
    precision: str = "auto"
    bands: tuple[int, ...] | None = None
    nodata: float | None = None  # None: the value the model was trained with, if any
    tta: bool = False  # average the 8 flips and quarter turns of each tile (8× the compute)
    compile: bool = False  # torch.compile the model: pays from about 230 MP of scene (``CompiledModel``)
    prefetch: bool | None = None  # read tiles in a thread ahead of the model; None: by device and cores

    def __post_init__(self) -> None:
        for name in ("tile_size", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}; leave it out for the"
                                 " default")
        if self.tile_size is not None and self.tile_size > MAX_TILE:
            raise InputError(f"--tile-size {self.tile_size} is over the largest tile geoseg runs ({MAX_TILE} px: a"
                             " tile's activations must fit in memory); leave it out for 512 px")
        if self.overlap is not None and self.overlap < 0:
            raise InputError(f"--overlap must be 0 or more pixels, got {self.overlap}")


def default_tile_size(state: dict, mcfg, height: int, width: int, overlap: int | None) -> int:
    """512 px (or the training tile size for instance norm), but no larger than the scene needs."""
    trained = int(state["tile_size"])
    if mcfg.norm == "instance":
        return trained
    m = mcfg.multiple
    margin = 32 if overlap is None else overlap
    return max(min(512, -(-(max(height, width) + 2 * margin) // m) * m), m)


def predict_probability(scene: str | os.PathLike, state: dict, prob_path: str | os.PathLike,
                        options: TileOptions = TileOptions(), progress: bool = False,
                        compress: str = "deflate", tile_rows: tuple[int, int] | None = None) -> SceneInfo:
    """Write the stitched roof probability of ``scene`` to ``prob_path`` (uint8, p × 255).

    ``compress``: the GeoTIFF's compression; ``"zstd"`` (level 1) writes about 8× faster
    than deflate, for a raster that is only read back (deflate is used if GDAL lacks it).
    ``tile_rows=(i0, i1)``: only the scene rows that grid rows i0…i1−1 finish
    (``band_rows``), written as a raster of their own (georeferenced where they lie) —
    pixel for pixel what the whole-scene run writes there, as the tiles above that reach
    into them are predicted too. A block of a large scene for one task of a cluster."""
    rows = predict_rows(scene, state, prob_path, options, progress, compress, tile_rows)
    while True:
        try:
            next(rows)
        except StopIteration as done:
            return done.value


def predict_rows(scene: str | os.PathLike, state: dict, prob_path: str | os.PathLike | None,
                 options: TileOptions = TileOptions(), progress: bool = False, compress: str = "deflate",
                 tile_rows: tuple[int, int] | None = None, rows_out: Sink | None = None):
    """``predict_probability`` one grid row at a time: a generator that yields after each
    row of tiles and returns the scene's ``SceneInfo``. ``rows_out(first row, rows)``
    receives the finished probability rows (uint8, p × 255) as they are written, in order;
    ``prob_path`` None writes no raster."""
    from tqdm import tqdm

    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    tune_allocator()
    model, mcfg = checkpoint.build_model(state, device)
    if options.compile:
        model = compile_for_inference(model)
    else:
        model = fuse_for_inference(model).to(memory_format=torch.channels_last)
    norm = checkpoint.normalisation(state)
    batch = options.batch_size or (8 if device.type == "cuda" else 1)
    std = torch.tensor(norm.std, dtype=torch.float64)[:, None, None]
    gain = (1.0 / (norm.scale * std)).float().to(device)
    shift = (-torch.tensor(norm.mean, dtype=torch.float64)[:, None, None] / std).float().to(device)

    # GDAL decodes a read's blocks on as many threads as torch has (set before the file is
    # opened): the cores are idle while the model waits for its tiles
    with rasterio.Env(GDAL_NUM_THREADS=torch.get_num_threads()), open_raster(scene) as src:
        info = scene_info(src)
        tile = options.tile_size or default_tile_size(state, mcfg, src.height, src.width, options.overlap)
        if tile % mcfg.multiple:
            raise InputError(f"--tile-size {tile} must be a multiple of {mcfg.multiple} for this model")
        overlap = min(32, tile // 8) if options.overlap is None else options.overlap
        if value_scale(info.dtype) != norm.scale:
            warnings.warn(
                f"{scene}: {info.dtype} imagery, but the model was trained on imagery scaled by {norm.scale:g};"
                " predictions are only meaningful for imagery like the training images", GeosegWarning,
                stacklevel=2)
        bands = check_bands(options.bands, src.count, str(scene))
        if len(bands) != mcfg.in_channels:
            raise InputError(
                f"{scene}: {len(bands)} band(s) selected but the model was trained on {mcfg.in_channels};"
                f" pass --bands with {mcfg.in_channels} band numbers"
            )
        nodata = options.nodata if options.nodata is not None else state.get("nodata")
        # float pixels may be NaN (missing data, declared or not)
        need_valid = (nodata is not None or any(f != [MaskFlags.all_valid] for f in src.mask_flag_enums)
                      or any(np.dtype(src.dtypes[b - 1]).kind == "f" for b in bands))
        grid = TileGrid(src.height, src.width, tile, overlap)
        i0, i1 = tile_rows or (0, grid.rows)
        b0, b1 = band_rows(grid, i0, i1)
        first = first_tile_row(grid, i0)
        profile = dict(driver="GTiff", width=src.width, height=b1 - b0, count=1, dtype="uint8",
                       crs=src.crs, transform=src.window_transform(Window(0, b0, src.width, b1 - b0)),
                       tiled=True, blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = _create(prob_path, profile, compress) if prob_path is not None else None
        with dst if dst is not None else contextlib.nullcontext():
            def sink(row0: int, rows: np.ndarray) -> None:  # in place: rows are the stitcher's own copy
                t = torch.from_numpy(rows).clamp_(0.0, 1.0).mul_(PROB_SCALE).add_(0.5)
                rows = t.to(torch.uint8).numpy()
                if dst is not None:
                    dst.write(rows[None], window=Window(0, row0 - b0, src.width, rows.shape[0]))
                if rows_out is not None:
                    rows_out(row0, rows)

            stitcher = Stitcher(grid, sink, options.blend, start_row=first, first_emitted=b0)
            # pixels are read in the file's own type (float32 if the chosen bands differ in type)
            read_type = src.dtypes[bands[0] - 1] if len({src.dtypes[b - 1] for b in bands}) == 1 else "float32"
            tile_bytes = tile * grid.stride * len(bands) * np.dtype(read_type).itemsize
            bar = tqdm(total=(i1 - first) * grid.cols, desc="predict", unit="tile", leave=False,
                       disable=None if progress else True)  # None: no bar when not a terminal

            def reads():  # (grid row, a run of its tiles, their pixels, valid), row-major
                for r in range(first, i1):
                    for group in _read_groups(grid.row_tiles(r), tile_bytes):
                        # one read for a run of tiles, in the file's own type: fewer, larger GDAL requests
                        c0, t = group[0].col_off, group[0].size
                        yield (r, group, *read_window(src, group[0].row_off, c0, t, group[-1].col_off + t - c0,
                                                      bands, need_valid, nodata, read_type))

            source = Prefetch(reads()) if use_prefetch(options.prefetch, device) else reads()
            # one autocast for the scene: its cache keeps the weights cast to bfloat16/float16
            # (entered per batch, every forward pass would cast them again)
            with contextlib.closing(source), torch.no_grad(), autocast(device, precision):
                row = first
                for r, group, data, valid in source:
                    if r != row:  # a grid row is complete
                        stitcher.end_row()
                        yield row
                        row = r
                    c0, t = group[0].col_off, group[0].size
                    for i in range(0, len(group), batch):
                        chunk = group[i : i + batch]
                        cols = [slice(tl.col_off - c0, tl.col_off - c0 + t) for tl in chunk]
                        x = torch.from_numpy(np.stack([_as_tensor_type(data[:, :, c]) for c in cols]))
                        x = x.to(device).contiguous(memory_format=torch.channels_last)
                        x = torch.addcmul(shift, x, gain)  # float, (x / scale − mean) / std in one pass
                        prob = roof_probability(model, x, options.tta).cpu()
                        for tl, p, c in zip(chunk, prob, cols):
                            stitcher.add(tl, p if valid is None else p * torch.from_numpy(valid[:, c]))
                        bar.update(len(chunk))
                stitcher.end_row()
                yield row
            bar.close()
    return info


PREFETCH_CORES = 8  # a CPU reads ahead from this many cores (measured on 2 only: no gain)


def use_prefetch(choice: bool | None, device: torch.device) -> bool:
    """Whether tiles are read in a thread ahead of the model: asked (True/False), or by
    device and cores. On CUDA the GPU runs while the thread decodes the next tiles; on a
    CPU the model keeps every core busy: on 2 cores the thread gained nothing beyond the
    noise (8192² scene 10.2 → 10.1 s, ``bench/speed.py --prefetch``), the decoding it
    hides being paid by the model's cores, so a CPU reads ahead from 8 cores (untried)."""
    if choice is not None:
        return choice
    return device.type == "cuda" or (os.cpu_count() or 1) >= PREFETCH_CORES


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


def _read_groups(tiles: list, bytes_per_tile: int) -> list[list]:
    """A grid row's tiles in runs that are read at once, each at most ``READ_BYTES``."""
    n = max(1, READ_BYTES // bytes_per_tile)
    return [tiles[i : i + n] for i in range(0, len(tiles), n)]


def _as_tensor_type(a: np.ndarray) -> np.ndarray:
    """Pixels that normalise to float32 in torch as they are (uint8, int8, int16, float32);
    others (uint16, uint32, float64…) as float32."""
    return a if a.dtype in (np.uint8, np.int8, np.int16, np.float32) else a.astype(np.float32)


def roof_probability(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Roof probability ``(N, H, W)`` of a batch; with ``tta``, the mean over the eight
    symmetries of the square (flips and quarter turns), each undone on its output."""
    if not tta:
        return model(x).float().softmax(1)[:, 1]
    total = torch.zeros(x.shape[0], x.shape[2], x.shape[3], device=x.device)
    for turns in range(4):
        for flip in (False, True):
            t = torch.rot90(x, turns, (2, 3))
            t = (t.flip(3) if flip else t).contiguous(memory_format=torch.channels_last)
            p = model(t).float().softmax(1)[:, 1]
            p = p.flip(2) if flip else p
            total += torch.rot90(p, -turns, (1, 2))
    return total / 8


def _create(path, profile: dict, compress: str):
    if compress == "zstd":
        try:
            return rasterio.open(path, "w", **profile, compress="zstd", zstd_level=1)
        except rasterio.errors.RasterioIOError:  # a GDAL built without ZSTD
            pass
    return rasterio.open(path, "w", **profile, compress="deflate")


@dataclass(frozen=True)
class PredictResult:
    out: Path
    count: int
    prob: Path | None
    preview: Path | None
    scene: SceneInfo  # the first scene
    scenes: int = 1


def preview_path(out: str | os.PathLike) -> Path:
    p = Path(out)
    return p.with_name(p.stem + ".preview.png")


def write_mask(prob_path: str | os.PathLike, mask_path: str | os.PathLike, threshold: float) -> None:
    """The roof mask (uint8 0/1, tiled GeoTIFF like ``prob_path``) at ``threshold``, by strips."""
    cut = round(threshold * PROB_SCALE)
    with open_raster(prob_path) as src:
        profile = {**src.profile, "nbits": 1, "compress": "deflate"}
        profile.pop("zstd_level", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = rasterio.open(mask_path, "w", **profile)
        with dst:
            step = strip_rows(src.width)
            for r0 in range(0, src.height, step):
                win = Window(0, r0, src.width, min(step, src.height - r0))
                dst.write((src.read(1, window=win) >= cut).astype(np.uint8)[None], window=win)


def run_predict(scene: str | os.PathLike | list, model_path: str | os.PathLike, out: str | os.PathLike,
                tiles: TileOptions = TileOptions(), vector: VectorizeOptions = VectorizeOptions(),
                prob_out: str | os.PathLike | None = None, mask_out: str | os.PathLike | None = None,
                cog: bool = False, preview: bool = True, overwrite: bool = False,
                progress: bool = False, cluster=None) -> PredictResult:
    """``geoseg predict``: scene → probability raster → roof polygons in ``out``, with a QGIS
    style beside it (``roofs.qml``, also embedded in a GeoPackage) and a preview PNG.

    ``scene`` may be a list of scenes: their polygons go into one layer (in the first
    scene's CRS for a GeoPackage), merged where the scenes overlap (``merge``).
    ``cluster`` (``distributed.ClusterOptions``) predicts the scenes, or blocks of a single
    scene, as tasks on a Dask cluster; the output is the same. ``prob_out`` keeps the
    stitched probability (uint8, p × 255) and ``mask_out`` the thresholded mask, as tiled
    GeoTIFFs (Cloud-Optimised with ``cog``); both, and the preview, are for a single
    scene. Every output is checked before any work starts and written under a
    temporary name; all are renamed into place together at the end, so a failure or
    Ctrl-C leaves nothing partial and nothing of the user's replaced.
    """
    scenes = [scene] if isinstance(scene, (str, os.PathLike)) else list(scene)
    if not scenes:
        raise InputError("no scene given; pass one or more rasters")
    if len(scenes) > 1 and (prob_out or mask_out):
        raise InputError("--prob-out and --mask-out take a single scene; run them one scene at a time")
    if len(set(map(os.path.abspath, scenes))) != len(scenes):
        raise InputError("a scene is given twice; pass each scene once")
    vector_format(out)
    png = preview_path(out) if preview and len(scenes) == 1 else None
    qml = qml_path(out) if vector_format(out) == "GeoJSON" else None  # a GeoPackage embeds its style
    refuse_inputs_as_outputs(
        [("--out", out), ("--prob-out", prob_out), ("--mask-out", mask_out), ("the preview", png), ("the style", qml)],
        [("the model", model_path), *(("a scene", s) for s in scenes)])
    finals = [Path(p) for p in (out, prob_out, mask_out, png, qml) if p]
    for p in finals:
        check_output(p, overwrite)
    state = checkpoint.load(model_path)
    infos = [_scene_info(s, out, several=len(scenes) > 1) for s in scenes]
    crs = rasterio.crs.CRS.from_wkt(infos[0].crs_wkt) if infos[0].crs_wkt else None
    merger = SceneMerger([footprint(i, crs) for i in infos], crs) if len(scenes) > 1 else None
    with OutputSet(overwrite) as outs:
        with contextlib.ExitStack() as stack:
            # a bounded GDAL block cache: by default it takes 5 % of RAM and grows with the scene
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
            tmpdir = Path(stack.enter_context(scratch_dir(Path(out).parent)))
            writer = stack.enter_context(VectorWriter(out, crs, overwrite, outputs=outs))
            tmp = {p: outs.add(p) for p in finals[1:]}
            _write_outputs(stack, writer, tmp, tmpdir, scenes, state, tiles, vector, infos[0], merger, png, qml,
                           prob_out, mask_out, cog, progress, cluster)
        outs.publish()  # all outputs appear together, or none
    return PredictResult(Path(out), writer.count, Path(prob_out) if prob_out else None, png, infos[0],
                         len(scenes))


def _write_outputs(stack: contextlib.ExitStack, writer: VectorWriter, tmp: dict, tmpdir: Path, scenes: list,
                   state: dict, tiles: TileOptions, vector: VectorizeOptions, info: SceneInfo, merger, png, qml,
                   prob_out, mask_out, cog: bool, progress: bool, cluster) -> None:
    """Predict ``scenes`` and write every output under its temporary name (``tmp``)."""
    report = _reporter(progress and len(scenes) > 1)
    prob_dst = None
    if cluster is None:
        source = _local_polygons(scenes, state, tiles, vector, tmpdir, progress, report,
                                 prob=bool(prob_out), portable=bool(prob_out) and not cog, mask=bool(mask_out))
        stack.callback(source.close)  # on an error, before the GDAL environment above is left
    else:
        if prob_out or mask_out:  # the blocks' probability rows are gathered here
            prob_dst = _prob_raster(tmpdir / "prob.tif", info)
            stack.callback(prob_dst.close)
        source = _cluster_polygons(stack, cluster, scenes, state, tiles, vector, prob_dst, progress, report)
    from geoseg.preview import Preview

    picture = None  # made once the scene has been read without error
    next_id = 1
    for k, chunk in source:
        if png and picture is None:
            picture = Preview(scenes[0])
        if merger is not None:
            chunk = merger.add(chunk.to_crs(merger.crs) if chunk.crs != merger.crs else chunk, k)
        else:  # ids run on over the chunks (blocks of a scene each count from 1)
            chunk["id"] = range(next_id, next_id + len(chunk))
            next_id += len(chunk)
        writer.write(chunk)
        if picture is not None:
            picture.draw(chunk)
    if merger is not None:
        writer.write(merger.finish())
    if prob_dst is not None:  # the blocks' probability rows, gathered: close, then derive the mask
        prob_dst.close()
        if mask_out:
            write_mask(tmpdir / "prob.tif", tmpdir / "mask.tif", vector.threshold)
    if png:
        (picture or Preview(scenes[0])).save(tmp[png])
    if qml:
        write_qml(tmp[qml])
    for name, final in (("prob.tif", prob_out), ("mask.tif", mask_out)):
        if final:
            if cog:
                copy_as_cog(tmpdir / name, tmp[Path(final)])
            else:
                shutil.move(tmpdir / name, tmp[Path(final)])


def _cluster_polygons(stack: contextlib.ExitStack, cluster, scenes: list, state: dict, tiles: TileOptions,
                      vector: VectorizeOptions, prob_dst, progress: bool, report):
    """``(scene index, polygon chunk)`` computed on a Dask cluster (connected for the
    stack's life): a task per scene, or per block of a single scene, whose probability
    rows then go to ``prob_dst`` when it is given."""
    from geoseg.distributed import block_polygons, connect, scene_polygons

    client = stack.enter_context(connect(cluster))
    if len(scenes) > 1:
        return scene_polygons(client, scenes, state, tiles, vector, cluster, report)
    sink = None
    if prob_dst is not None:
        def sink(row0: int, rows: np.ndarray) -> None:
            prob_dst.write(rows[None], window=Window(0, row0, rows.shape[1], rows.shape[0]))

    return block_polygons(client, scenes[0], state, tiles, vector, cluster, sink, _reporter(progress))


def _prob_raster(path: Path, info: SceneInfo):
    """An empty probability raster on ``info``'s grid (uint8, tiled, deflate), open for writing."""
    from affine import Affine

    crs = rasterio.crs.CRS.from_wkt(info.crs_wkt) if info.crs_wkt else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, "w", driver="GTiff", width=info.width, height=info.height, count=1,
                             dtype="uint8", crs=crs, transform=Affine(*info.transform), tiled=True,
                             blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="IF_SAFER")


def _reporter(on: bool):
    if not on:
        return None
    from tqdm import tqdm

    return tqdm.write


def _local_polygons(scenes: list, state: dict, tiles: TileOptions, vector: VectorizeOptions, tmpdir: Path,
                    progress: bool, report, prob: bool, portable: bool, mask: bool):
    """``(scene index, polygon chunk)``, scene after scene, predicted in this process: the
    rows the model finishes are traced as they come (``PolygonStream``), so no probability
    raster is written unless it is kept; the last scene's probability (and mask) then stay
    in ``tmpdir`` as prob.tif (mask.tif)."""
    for k, path in enumerate(scenes):
        if report:
            report(f"scene {k + 1}/{len(scenes)}: {path}")
        stream = PolygonStream(path, vector, Path(path).name)
        chunks: list = []
        prob_path = tmpdir / "prob.tif" if prob or mask else None
        # a probability raster that is only read back (for the mask or a COG) is written fast; a kept one portably
        rows = predict_rows(path, state, prob_path, tiles, progress, compress="deflate" if portable else "zstd",
                            rows_out=lambda row0, block, s=stream, c=chunks: c.append(s.feed(row0, block)))
        with contextlib.closing(rows):  # closed here, should the consumer stop, not by the collector
            for _ in rows:  # a grid row of tiles done: hand its polygons on
                yield from ((k, chunk) for chunk in chunks)
                chunks.clear()
        yield k, stream.close()
        if mask:
            write_mask(prob_path, tmpdir / "mask.tif", vector.threshold)


def _scene_info(path: str | os.PathLike, out: str | os.PathLike, several: bool) -> SceneInfo:
    with open_raster(path) as src:
        info = scene_info(src)
    if vector_format(out) == "GeoJSON" and not info.georeferenced:
        raise InputError(
            f"{path}: has no georeference (CRS), so polygons would be in pixel coordinates;"
            " write a .gpkg instead of RFC 7946 GeoJSON"
        )
    if several and not info.georeferenced:
        raise InputError(f"{path}: has no georeference (CRS); several scenes can only be merged when"
                         " each has one, so predict it on its own")
    return info


def footprint(info: SceneInfo, crs) -> Footprint:
    """A scene's extent and pixel side in ``crs`` (edges densified, so reprojection bends them)."""
    import shapely
    from affine import Affine
    from shapely import affinity
    from shapely.geometry import box

    a, b, c, d, e, f = info.transform
    t = Affine(a, b, c, d, e, f)
    poly = affinity.affine_transform(box(0, 0, info.width, info.height), (t.a, t.b, t.d, t.e, t.c, t.f))
    pixel = float(np.hypot(t.a, t.d))
    own = rasterio.crs.CRS.from_wkt(info.crs_wkt)
    if own != crs:
        import geopandas as gpd

        dense = shapely.segmentize(poly, max(info.width, info.height) * pixel / 64)
        moved = gpd.GeoSeries([dense, box(c, f, c + pixel, f - pixel)], crs=own).to_crs(crs)
        poly, pixel = moved.iloc[0], float(np.sqrt(moved.iloc[1].area))
    return Footprint(poly, pixel)


def expand_scenes(args) -> list[Path]:
    """Scene arguments → paths: a pattern with ``*``, ``?`` or ``[`` that names no file is
    expanded (sorted), for a glob quoted from the shell."""
    import glob

    paths: list[Path] = []
    for arg in args:
        if not os.path.exists(arg) and glob.has_magic(arg):
            found = sorted(glob.glob(arg))
            if not found:
                raise InputError(f"{arg}: no file matches this pattern; check the path")
            paths += [Path(p) for p in found]
        else:
            paths.append(Path(arg))
    return paths


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` → ``(1, 2, 3)``."""
    if not text:
        return None
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise InputError(f"--bands {text!r}: give band numbers separated by commas, e.g. 1,2,3") from None
