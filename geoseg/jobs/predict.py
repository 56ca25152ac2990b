"""The ``geoseg predict`` job: scenes → roof polygons on disk, with the outputs around them.

``run_predict`` checks every output before any work (never an input, never an existing
file unless asked), predicts each scene with the engine (``predict.engine.predict_rows``) in
this process or on a Dask cluster (``predict.dask_engine``), traces the probability rows into
polygons as they come (``vector.stream``), merges scenes that overlap (``vector.merge``), writes the
layer (``outputs.export``) with its style and a preview PNG, and publishes every output together
(``outputs.atomic.OutputSet``), so a failure or Ctrl-C leaves nothing partial and nothing of the
user's replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from geoseg.config import TileOptions, VectorizeOptions, split_for
from geoseg.errors import InputError
from geoseg.io.raster import (
    SceneInfo,
    copy_as_cog,
    open_raster,
    probability_cut,
    raster_files,
    raster_strips,
)
from geoseg.io.stac import is_item, item_scene
from geoseg.io.windows import BlockRowWriter, resampled_vrt
from geoseg.jobs.areas import checked_scene_info, clip_to_area, cut_to_area, footprint
from geoseg.models import checkpoint
from geoseg.models.checkpoint import Checkpoint
from geoseg.outputs.atomic import OutputSet, check_output, refuse_inputs_as_outputs, scratch_dir
from geoseg.outputs.export import VectorWriter, vector_format
from geoseg.outputs.style import class_layer_qml, qml_path, style_qml, write_qml
from geoseg.predict.engine import GDAL_CACHE_BYTES, predict_rows
from geoseg.predict.resample import model_grid
from geoseg.runtime import resolve_device, trace_threads, trace_workers
from geoseg.vector.classes import ClassStreams, class_cuts, class_ids
from geoseg.vector.merge import SceneMerger
from geoseg.vector.stream import PolygonStream
from geoseg.vector.table import PolygonTable


@dataclass(frozen=True)
class PredictResult:
    """What ``run_predict`` wrote: the polygons' file and count, the other outputs, the first scene's facts."""

    out: Path
    count: int
    prob: Path | None
    preview: Path | None
    scene: SceneInfo  # the first scene
    scenes: int = 1
    split: float = 0.0  # the seed probability touching roofs were cut apart from (0: not cut)
    classes: tuple[str, ...] = ("background", "roof")  # the model's classes, background first


def preview_path(out: str | os.PathLike) -> Path:
    """The preview PNG written beside ``out``: ``roofs.preview.png`` for ``roofs.geojson``."""
    p = Path(out)
    return p.with_name(p.stem + ".preview.png")


def write_mask(prob_path: str | os.PathLike, mask_path: str | os.PathLike, threshold: float,
               colours: tuple[str, ...] | None = None, cuts: np.ndarray | None = None) -> None:
    """The roof mask (uint8 0/1, tiled GeoTIFF like ``prob_path``) at ``threshold``, by strips;
    of a multi-class probability (a band per class but background), each pixel's class id
    (``vector.classes.class_ids``, with the classes' ``cuts``) with ``colours`` as the raster's
    colour table."""

    cut = probability_cut(threshold)
    with open_raster(prob_path) as src:
        several = src.count > 1
        profile = {**src.profile, "count": 1, "compress": "deflate", **({} if several else {"nbits": 1})}
        profile.pop("zstd_level", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = rasterio.open(mask_path, "w", **profile)
        with dst:
            if several:
                for win, strip in raster_strips(src, bands=True):
                    dst.write(class_ids(strip, cuts)[None], window=win)
                if colours:
                    dst.write_colormap(1, {i: tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) + (255,)
                                           for i, c in enumerate(colours)})
            else:
                for win, strip in raster_strips(src):
                    dst.write((strip >= cut).astype(np.uint8)[None], window=win)


@dataclass(frozen=True)
class Outputs:
    """What ``geoseg predict`` writes: the polygons ``out`` (``.geojson``: RFC 7946; ``.gpkg``:
    the scene's CRS, its style embedded), and beside them a QGIS style ``NAME.qml`` (GeoJSON),
    a ``NAME.preview.png`` (``preview``, one scene), the stitched probability ``prob`` (uint8,
    p × 255) and the thresholded ``mask`` (uint8 0/1) as tiled GeoTIFFs (Cloud-Optimised with
    ``cog``). ``overwrite``: replace existing files of these names."""

    out: Path
    prob: Path | None = None
    mask: Path | None = None
    cog: bool = False
    preview: bool = True
    overwrite: bool = False
    split_layers: bool = False  # a multi-class model's polygons: a GeoPackage layer per class

    def __post_init__(self) -> None:
        for name in ("out", "prob", "mask"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        vector_format(self.out)

    def files(self, scenes: int) -> dict[str, Path]:
        """Every file written for ``scenes`` scenes, by the option that names it."""
        named = {"`out`": self.out, "`prob_out`": self.prob, "`mask_out`": self.mask,
                 "the preview": preview_path(self.out) if self.preview and scenes == 1 else None,
                 "the style": qml_path(self.out) if vector_format(self.out) == "GeoJSON" else None}
        return {k: v for k, v in named.items() if v is not None}


def run_predict(scene: str | os.PathLike | list, model_path: str | os.PathLike | None, out: str | os.PathLike | Outputs,
                tiles: TileOptions = TileOptions(), vector: VectorizeOptions = VectorizeOptions(),
                progress: bool = False, cluster=None, area=None,
                assets: tuple[str, ...] | None = None, read_also: tuple = (),
                allow_local_assets: bool = False) -> PredictResult:
    """``geoseg predict``: scenes → roof polygons in ``out`` (a path, or ``Outputs`` for the
    files beside it), predicted with ``tiles`` and traced with ``vector``.

    ``scene`` may be a list of scenes: their polygons go into one layer (in the first
    scene's CRS for a GeoPackage), merged where the scenes overlap (``vector.merge``).
    ``cluster`` (``predict.dask_engine.ClusterOptions``) predicts the scenes, or blocks of a single
    scene, as tasks on a Dask cluster; the output is the same. The probability, the mask and
    the preview are for a single scene. Every output is checked before any work starts and
    written under a temporary name; all are published together at the end, so a failure or
    Ctrl-C leaves nothing partial and nothing of the user's replaced. ``area`` (``read_area``):
    only the windows of each scene that meet it are read and predicted (from a remote file,
    only their bytes), and the polygons are clipped to it; a scene it misses is skipped. A
    STAC Item's JSON (a file or a URL) is a scene too (``stac``): its ``visual`` asset, or
    ``assets`` stacked as bands. ``read_also``: ``(role, path)`` of other files the caller
    read for this run (the ``--aoi`` file), which no output may replace, as the scenes, the
    files GDAL reads for them (a VRT's sources, a STAC Item's assets) and the model.
    ``allow_local_assets``: an item from the network may name local files and GDAL virtual
    paths as its assets (refused by default).
    """
    outputs = out if isinstance(out, Outputs) else Outputs(Path(out))
    scenes = [scene] if isinstance(scene, (str, os.PathLike)) else list(scene)
    model_path = checkpoint.resolve(model_path)  # None: the starter model
    if assets and not any(is_item(s) for s in scenes):
        raise InputError("`assets` picks the assets of a STAC Item; give the item's JSON as the scene")
    read = [("the model", model_path), *(("a scene", s) for s in scenes), *read_also]
    if not any(is_item(s) for s in scenes):
        return _run_predict(scenes, model_path, outputs, tiles, vector, progress, cluster, area, read)
    with tempfile.TemporaryDirectory(prefix="geoseg-stac-") as items:  # the items' band stacks (VRTs)
        scenes = [item_scene(s, assets, items, allow_local_assets) if is_item(s) else s for s in scenes]
        return _run_predict(scenes, model_path, outputs, tiles, vector, progress, cluster, area, read)


def _run_predict(scenes: list, model_path, outputs: Outputs, tiles: TileOptions, vector: VectorizeOptions,
                 progress: bool, cluster, area, read: list) -> PredictResult:
    if not scenes:
        raise InputError("no scene given; pass one or more rasters")
    if len(scenes) > 1 and (outputs.prob or outputs.mask):
        raise InputError("`prob_out` and `mask_out` take a single scene; run them one scene at a time")
    if len(set(map(os.path.abspath, scenes))) != len(scenes):
        raise InputError("a scene is given twice; pass each scene once")
    files = outputs.files(len(scenes))
    # every file the run reads, however it was reached: a VRT's sources, a STAC Item's assets, sidecars
    read = [*read, *((f"a file that scene {s} reads", f) for s in scenes for f in raster_files(s))]
    refuse_inputs_as_outputs(files.items(), read)
    for p in files.values():
        check_output(p, outputs.overwrite)
    ckpt = checkpoint.load(model_path)
    vector = split_for(vector, ckpt.contact_gap)
    if outputs.split_layers and ckpt.model.classes == 2:
        raise InputError(f"{model_path}: a model of roofs alone writes one layer; leave out `split_layers`")
    class_cuts(ckpt.classes, vector.class_thresholds)  # the names and the model checked before any work
    if cluster is not None and ckpt.model.classes > 2:
        raise InputError(f"{model_path}: a model of {ckpt.model.classes} classes predicts in one process; leave out"
                         " `workers` and `scheduler`")
    infos = [checked_scene_info(s, outputs.out, several=len(scenes) > 1) for s in scenes]
    crs = rasterio.crs.CRS.from_wkt(infos[0].crs_wkt) if infos[0].crs_wkt else None
    merger = SceneMerger([footprint(i, crs) for i in infos], crs) if len(scenes) > 1 else None
    with OutputSet(outputs.overwrite) as publisher:
        with contextlib.ExitStack() as stack:
            # a bounded GDAL block cache: by default it takes 5 % of RAM and grows with the scene
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES))
            tmpdir = Path(stack.enter_context(scratch_dir(outputs.out.parent)))
            if area is not None:  # each scene cut to the area of interest (a VRT of its window)
                scenes, infos = cut_to_area(scenes, area, tmpdir)
                merger = SceneMerger([footprint(i, crs) for i in infos], crs) if len(scenes) > 1 else None
            colour = dict(zip(ckpt.classes, ckpt.colours))
            style = ((lambda name: class_layer_qml(colour.get(name, "#ffc800"))) if outputs.split_layers
                     else style_qml(ckpt.classes, ckpt.colours))
            writer = stack.enter_context(VectorWriter(outputs.out, crs, outputs.overwrite, outputs=publisher,
                                                      layer="roofs" if ckpt.model.classes == 2 else "classes",
                                                      style=style, layer_by="class" if outputs.split_layers else None))
            tmp = {what: publisher.add(p) for what, p in files.items() if what != "`out`"}
            _write_outputs(stack, writer, tmp, tmpdir, scenes, ckpt, tiles, vector, infos[0], merger, outputs,
                           progress, cluster, area)
        publisher.publish()  # all outputs appear together, or none
    return PredictResult(outputs.out, writer.count, outputs.prob, files.get("the preview"), infos[0], len(scenes),
                         vector.split, ckpt.classes)


def _write_outputs(stack: contextlib.ExitStack, writer: VectorWriter, tmp: dict[str, Path], tmpdir: Path,
                   scenes: list, ckpt: Checkpoint, tiles: TileOptions, vector: VectorizeOptions, info: SceneInfo,
                   merger, outputs: Outputs, progress: bool, cluster, area=None) -> None:
    """Predict ``scenes`` and write every output under its temporary name (``tmp``, by option)."""
    prob_out, mask_out, cog = outputs.prob, outputs.mask, outputs.cog
    png, qml = tmp.get("the preview"), tmp.get("the style")
    report = _reporter(progress and len(scenes) > 1)
    prob_dst = None
    if cluster is None:
        source = _local_polygons(scenes, ckpt, tiles, vector, tmpdir, progress, report,
                                 prob=bool(prob_out), portable=bool(prob_out) and not cog, mask=bool(mask_out))
        stack.callback(source.close)  # on an error, before the GDAL environment above is left
    else:
        if prob_out or mask_out:  # the blocks' probability rows are gathered here
            prob_dst = _prob_raster(tmpdir / "prob.tif", info)
            stack.callback(prob_dst.close)
        prob_rows = BlockRowWriter(prob_dst) if prob_dst is not None else None
        source = _cluster_polygons(stack, cluster, scenes, ckpt, tiles, vector, prob_rows, progress, report)
    from geoseg.outputs.preview import Preview

    picture = None  # made once the scene has been read without error
    next_id = 1
    for k, chunk in source:  # PolygonTables (GeoDataFrames from a cluster)
        if png and picture is None:
            picture = Preview(scenes[0])
        if area is not None or merger is not None:  # the frame's spatial operations
            chunk = chunk.frame() if isinstance(chunk, PolygonTable) else chunk
            if area is not None:
                chunk = clip_to_area(chunk, area)
            if merger is not None:
                chunk = merger.add(chunk.to_crs(merger.crs) if chunk.crs != merger.crs else chunk, k)
        if merger is None:  # ids run on over the chunks (blocks of a scene each count from 1)
            chunk = chunk if isinstance(chunk, PolygonTable) else PolygonTable.of(chunk)
            next_id = chunk.number(next_id)
        writer.write(chunk)
        if picture is not None:
            picture.draw(chunk)
    if merger is not None:
        writer.write(merger.finish())
    if prob_dst is not None:  # the blocks' probability rows, gathered: close, then derive the mask
        prob_rows.close()
        prob_dst.close()
        if mask_out:
            write_mask(tmpdir / "prob.tif", tmpdir / "mask.tif", vector.threshold, ckpt.colours,
                       class_cuts(ckpt.classes, vector.class_thresholds))
    if png:
        (picture or Preview(scenes[0])).save(png)
    if qml:
        write_qml(qml, ckpt.classes, ckpt.colours)
    for name, option in (("prob.tif", "`prob_out`"), ("mask.tif", "`mask_out`")):
        if option in tmp:
            if cog:
                copy_as_cog(tmpdir / name, tmp[option])
            else:
                shutil.move(tmpdir / name, tmp[option])


def _cluster_polygons(stack: contextlib.ExitStack, cluster, scenes: list, ckpt: Checkpoint, tiles: TileOptions,
                      vector: VectorizeOptions, prob_rows: BlockRowWriter | None, progress: bool, report):
    """``(scene index, polygon chunk)`` computed on a Dask cluster (connected for the
    stack's life): a task per scene, or per block of a single scene, whose probability
    rows then go to ``prob_rows`` when it is given."""
    from geoseg.predict.dask_engine import block_polygons, connect, scene_polygons

    client = stack.enter_context(connect(cluster))
    if len(scenes) > 1:
        return scene_polygons(client, scenes, ckpt, tiles, vector, cluster, report)
    sink = None if prob_rows is None else prob_rows.write
    return block_polygons(client, scenes[0], ckpt, tiles, vector, cluster, sink, _reporter(progress))


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


def _local_polygons(scenes: list, ckpt: Checkpoint, tiles: TileOptions, vector: VectorizeOptions, tmpdir: Path,
                    progress: bool, report, prob: bool, portable: bool, mask: bool):
    """``(scene index, polygon chunk)``, scene after scene, predicted in this process: the
    rows the model finishes are traced as they come (``PolygonStream``), so no probability
    raster is written unless it is kept; the last scene's probability (and mask) then stay
    in ``tmpdir`` as prob.tif (mask.tif)."""
    device = resolve_device(tiles.device)
    if vector.trace_workers is None:
        vector = replace(vector, trace_workers=trace_workers(device))
    if vector.trace_threads is None:
        vector = replace(vector, trace_threads=trace_threads(device))
    for k, path in enumerate(scenes):
        if report:
            report(f"scene {k + 1}/{len(scenes)}: {path}")
        work = model_grid(path, ckpt, tmpdir, tiles.gsd)  # the scene at the model's pixel size
        stream = (ClassStreams(work, ckpt.classes, vector, Path(path).name) if ckpt.model.classes > 2
                  else PolygonStream(work, vector, Path(path).name))
        chunks: list = []
        prob_path = tmpdir / "prob.tif" if prob or mask else None
        model_prob = tmpdir / "prob-model-grid.tif" if prob_path and work != path else prob_path
        # a probability raster that is only read back (for the mask or a COG) is written fast; a kept one portably
        rows = predict_rows(work, ckpt, model_prob, tiles, progress,
                            compress="deflate" if portable and model_prob == prob_path else "zstd",
                            rows_out=lambda row0, block, s=stream, c=chunks: c.append(s.feed(row0, block)),
                            name=str(path))
        with contextlib.closing(rows):  # closed here, should the consumer stop, not by the collector
            try:
                for _ in rows:  # a grid row of tiles done: hand its polygons on
                    yield from ((k, chunk) for chunk in chunks)
                    chunks.clear()
            except BaseException:
                stream.abandon()
                raise
        yield k, stream.close()
        if model_prob != prob_path:  # back on the scene's own grid
            on_scene_grid(model_prob, path, prob_path, tmpdir)
        if mask:
            write_mask(prob_path, tmpdir / "mask.tif", vector.threshold, ckpt.colours,
                       class_cuts(ckpt.classes, vector.class_thresholds))


def on_scene_grid(prob: Path, scene: str | os.PathLike, out: Path, tmpdir: Path) -> None:
    """Write ``out``: the probability raster ``prob`` (on the model's grid) resampled onto the
    grid of ``scene`` (bilinear), as a tiled GeoTIFF, block by block."""
    from rasterio.shutil import copy

    with open_raster(scene) as src:
        width, height = src.width, src.height
    vrt = resampled_vrt(prob, tmpdir / "prob-on-scene-grid.vrt", width, height, "bilinear")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        copy(vrt, out, driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="deflate",
             BIGTIFF="IF_SAFER")
