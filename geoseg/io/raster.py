"""Raster input and output: open a scene, read windows, write atomically. No torch here.

Every raster goes through rasterio, so GeoTIFF, Cloud-Optimised GeoTIFF, VRT and
plain PNG/JPEG share one path. Arrays are band-first: ``(bands, rows, cols)``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from geoseg.errors import GeosegWarning, InputError, RasterReadError, first_line
from geoseg.io.remote import is_remote, open_remote
from geoseg.io.vectors import local_utm

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".vrt")


# Divisor that brings each dtype's raw values to about [0, 1] before normalisation.
DTYPE_SCALE = {"uint8": 255.0, "uint16": 65535.0, "int16": 32767.0}


@dataclass(frozen=True)
class SceneInfo:
    """What the pipeline needs to know of a scene, without its pixels."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str | None  # None: not georeferenced, pixel coordinates
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    nodata: float | None

    @property
    def georeferenced(self) -> bool:
        return self.crs_wkt is not None


STRIP_PIXELS = 4 * 1024 * 1024  # pixels per strip read at once by the block-wise passes


def strip_rows(width: int, rows: int | None = None) -> int:
    """Rows per strip so that one strip holds about ``STRIP_PIXELS`` whatever the width."""
    return rows or max(16, STRIP_PIXELS // max(width, 1))


PROB_SCALE = 255.0  # a probability raster stores round(p * 255) as uint8


def probability_cut(threshold: float) -> int:
    """The uint8 value of a probability raster at and above which a pixel is roof."""
    return round(threshold * PROB_SCALE)


def raster_strips(src: rasterio.io.DatasetReader, rows: int | None = None,
                  bands: bool = False) -> Iterator[tuple[Window, np.ndarray]]:
    """An open raster's first band (``bands``: every band, ``(bands, rows, cols)``) as
    ``(window, rows)`` strips of about ``STRIP_PIXELS`` (``rows`` rows when given), top to
    bottom: a raster of any size in flat memory. Unless ``rows`` is given, a strip is whole
    rows of the raster's blocks (of a tiled raster), so each block is decoded once, and a
    raster written strip by strip on the same blocks gets whole blocks."""
    step = strip_rows(src.width * (src.count if bands else 1), rows)
    block = src.block_shapes[0][0] if src.block_shapes else 1
    if rows is None and block < src.height:  # tiled (a striped file's blocks are a row or a few)
        step = max(block, step // block * block)
    for r0 in range(0, src.height, step):
        win = Window(0, r0, src.width, min(step, src.height - r0))
        yield win, src.read(window=win) if bands else src.read(1, window=win)


def pixel_size_m(src: rasterio.io.DatasetReader) -> float | None:
    """A scene's pixel side in metres on the ground: the CRS's unit for a projected CRS, measured
    locally (in the UTM zone there) for a lon/lat or Web Mercator scene; None without a CRS."""
    import math

    t = src.transform
    side = math.sqrt(abs(t.a * t.e - t.b * t.d))
    if src.crs is None:
        return None
    mercator = "merc" in (src.crs.to_proj4() or "")  # its metres shrink by cos(latitude) on the ground
    if src.crs.is_projected and not mercator:
        return side * (src.crs.linear_units_factor[1] if src.crs.linear_units_factor else 1.0)
    import geopandas as gpd
    from shapely.geometry import box

    cx, cy = t * (src.width / 2, src.height / 2)
    px = box(cx, cy, cx + abs(t.a), cy + abs(t.e))
    return float(math.sqrt(gpd.GeoSeries([px], crs=src.crs).to_crs(local_utm(px, src.crs)).area.iloc[0]))


def shapely_affine(transform) -> list[float]:
    """A rasterio/affine transform as shapely's ``affine_transform`` wants it: [a, b, d, e, c, f]."""
    t = transform
    return [t.a, t.b, t.d, t.e, t.c, t.f]


def value_scale(dtype: str) -> float:
    """The divisor that maps raw values of ``dtype`` to about [0, 1] (1.0 for floats)."""
    return DTYPE_SCALE.get(str(dtype), 1.0)


def open_raster(path: str | os.PathLike) -> contextlib.AbstractContextManager[rasterio.io.DatasetReader]:
    """Open a raster for reading (a context manager), turning GDAL's errors into one actionable
    line. ``path`` is a local file, a URL (``https://``, ``s3://``, ``gs://``, ``az://``,
    ``zip://``) or a GDAL ``/vsi…/`` path (``gdal_path``); remote files are read with range
    requests, retried on transient errors (``REMOTE_ENV``)."""
    return open_remote(path) if is_remote(path) else _open_local(path)


@contextlib.contextmanager
def _open_local(path: str | os.PathLike) -> Iterator[rasterio.io.DatasetReader]:
    p = Path(path)
    if not p.exists():
        raise RasterReadError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise RasterReadError(f"{p}: is a folder, expected a raster file (GeoTIFF, VRT, PNG, JPEG)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(p)
    except RasterioIOError as exc:
        raise RasterReadError(
            f"{p}: not a readable raster ({first_line(exc)}); give a GeoTIFF, VRT, PNG or JPEG"
        ) from None
    try:
        yield src
    finally:
        src.close()


PERCENTILE_WINDOWS = 4  # a scene's band percentiles: from a 4 × 4 grid of windows (or an overview)


PERCENTILE_WINDOW = 256


def band_percentiles(src: rasterio.io.DatasetReader, bands: Sequence[int], q: tuple[float, float],
                     nodata: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-band ``q`` percentiles ``(lo, hi)`` (raw values) of a scene's valid pixels, from a
    fixed sample: an overview of at most 1024 px a side when the file has one, else a 4 × 4
    grid of 256 px windows spread over the scene (16 reads, whatever its size, the same for
    every block of it). NaN, the nodata value and masked pixels are left out; None when the
    sample holds no valid pixel."""
    side = max(src.width, src.height)
    if src.overviews(bands[0]) and side > 1024:
        f = side / 1024
        shape = (len(bands), max(1, round(src.height / f)), max(1, round(src.width / f)))
        chunks = [src.read(list(bands), out_shape=shape, masked=True)]
    else:
        w, h = min(PERCENTILE_WINDOW, src.width), min(PERCENTILE_WINDOW, src.height)
        cols = np.linspace(0, src.width - w, PERCENTILE_WINDOWS).round().astype(int)
        rows = np.linspace(0, src.height - h, PERCENTILE_WINDOWS).round().astype(int)
        places = sorted({(int(r), int(c)) for r in rows for c in cols})
        chunks = [src.read(list(bands), window=Window(c, r, w, h), masked=True) for r, c in places]
    values = []
    for chunk in chunks:
        x = np.ma.masked_invalid(chunk.astype(np.float64)).reshape(len(bands), -1)
        keep = ~np.ma.getmaskarray(x).any(0)
        if nodata is not None:
            keep &= ~np.all(x.data == nodata, axis=0)
        values.append(x.data[:, keep])
    v = np.concatenate(values, axis=1)
    if v.shape[1] == 0:
        return None
    lo, hi = np.percentile(v, q, axis=1)
    return lo, hi


def raster_files(path: str | os.PathLike) -> list[str]:
    """The local files GDAL reads for the raster at ``path`` besides ``path`` itself: a VRT's
    sources (a STAC Item's asset files, once stacked), sidecars (``.aux.xml``, ``.ovr``,
    world files). Outputs may replace none of them (``outputs.refuse_inputs_as_outputs``).
    A remote raster, or one GDAL cannot open, lists none here (its own errors come where
    it is read)."""
    if is_remote(path):
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                files = src.files
    except (rasterio.errors.RasterioIOError, OSError):
        return []
    return [f for f in files if not is_remote(f) and os.path.abspath(f) != os.path.abspath(path)]


def scene_info(src: rasterio.io.DatasetReader) -> SceneInfo:
    """Describe an open dataset; a plain PNG gets ``crs_wkt=None`` and the identity transform."""
    crs = src.crs.to_wkt() if src.crs else None
    t = src.transform
    return SceneInfo(
        path=str(src.name),
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=str(src.dtypes[0]),
        crs_wkt=crs,
        transform=(t.a, t.b, t.c, t.d, t.e, t.f),
        nodata=src.nodata,
    )


def check_bands(bands: Sequence[int] | None, count: int, path: str) -> list[int]:
    """1-based band indexes to read; all bands when ``bands`` is None."""
    if bands is None:
        return list(range(1, count + 1))
    bad = [b for b in bands if b < 1 or b > count]
    if bad:
        raise InputError(
            f"{path}: band {bad[0]} out of range; the raster has bands 1..{count}"
        )
    return list(bands)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read a whole (small) labelled image: float32 ``(bands, rows, cols)`` and its dtype."""
    with open_raster(path) as src:
        try:
            return src.read(out_dtype="float32"), str(src.dtypes[0])
        except RasterioIOError as exc:
            raise RasterReadError(f"{path}: read failed ({first_line(exc)})") from None


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a label mask as uint8 0/1 ``(rows, cols)`` from its first band.

    0/1 masks are taken as they are; anything with values above 1 (0/255,
    anti-aliased grey) is thresholded at half of 255, i.e. ``>= 128``. Grey values
    (neither 0/1 nor 0/255) are reported with a ``GeosegWarning`` (the CLI says it once).
    """
    with open_raster(path) as src:
        try:
            m = src.read(1)
        except RasterioIOError as exc:
            raise RasterReadError(f"{path}: read failed ({first_line(exc)})") from None
    if m.max(initial=0) <= 1:
        return (m > 0).astype(np.uint8)
    if np.any((m != 0) & (m != 255)):
        warnings.warn("masks with values other than 0/1/255 (anti-aliased grey) are thresholded at 128",
                      GeosegWarning, stacklevel=2)
    return (m >= 128).astype(np.uint8)


def copy_as_cog(src_path: str | os.PathLike, dst_path: str | os.PathLike) -> None:
    """Copy a raster as a Cloud-Optimised GeoTIFF (deflate, internal overviews); GDAL streams it."""
    from rasterio.shutil import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        copy(src_path, dst_path, driver="COG", compress="DEFLATE", blocksize=512, BIGTIFF="IF_SAFER")
