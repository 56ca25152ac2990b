"""Raster input and output: open a scene, read windows, write atomically. No torch here.

Every raster goes through rasterio, so GeoTIFF, Cloud-Optimised GeoTIFF, VRT and
plain PNG/JPEG share one path. Arrays are band-first: ``(bands, rows, cols)``.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from geoseg.errors import GeosegWarning, InputError, RasterReadError, first_line

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


def raster_strips(src: rasterio.io.DatasetReader, rows: int | None = None) -> Iterator[tuple[Window, np.ndarray]]:
    """An open raster's first band as ``(window, rows)`` strips of about ``STRIP_PIXELS``
    (``rows`` rows when given), top to bottom: one band of any size in flat memory."""
    step = strip_rows(src.width, rows)
    for r0 in range(0, src.height, step):
        win = Window(0, r0, src.width, min(step, src.height - r0))
        yield win, src.read(1, window=win)


def local_utm(geometry, crs):
    """The UTM zone (WGS 84) at the centre of ``geometry`` (in ``crs``): where areas are in
    square metres and right angles are right angles, for a geographic scene."""
    import geopandas as gpd

    return gpd.GeoSeries([geometry], crs=crs).estimate_utm_crs()


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


def resampled_vrt(path: str | os.PathLike, out: str | os.PathLike, width: int | None = None, height: int | None = None,
                  resampling: str = "bilinear", window: Window | None = None) -> Path:
    """Write ``out``: a GDAL VRT of the raster ``path`` (its ``window``, default the whole) at
    ``width`` × ``height`` pixels (default: the window's) over the same extent and CRS (band
    types and nodata kept), read through GDAL's resampling on the fly, window by window: the
    scene cut or at another pixel size, with nothing held or copied, and from a remote file
    only the bytes of what is read."""
    from xml.sax.saxutils import escape

    from affine import Affine

    src_path = gdal_path(path) if is_remote(path) else os.path.abspath(os.fspath(path))
    with open_raster(path) as src:
        win = window or Window(0, 0, src.width, src.height)
        width, height = width or int(win.width), height or int(win.height)
        t, crs = src.window_transform(win), src.crs
        kinds = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
                 "float32": "Float32", "float64": "Float64"}
        rect = f'xOff="{int(win.col_off)}" yOff="{int(win.row_off)}" xSize="{int(win.width)}" ySize="{int(win.height)}"'
        bands = []
        for b in range(1, src.count + 1):
            value = src.nodatavals[b - 1]
            nodata = f"<NoDataValue>{value!r}</NoDataValue>" if value is not None else ""
            bands.append(
                f'<VRTRasterBand dataType="{kinds.get(src.dtypes[b - 1], "Float32")}" band="{b}">{nodata}'
                f'<SimpleSource resampling="{resampling}"><SourceFilename relativeToVRT="0">{escape(src_path)}'
                f'</SourceFilename><SourceBand>{b}</SourceBand><SrcRect {rect}/>'
                f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/></SimpleSource></VRTRasterBand>')
    scaled = t * Affine.scale(win.width / width, win.height / height)
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs else ""
    geo = f"<GeoTransform>{', '.join(repr(v) for v in scaled.to_gdal())}</GeoTransform>"
    Path(out).write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}{geo}{"".join(bands)}'
                         "</VRTDataset>", encoding="utf-8")
    return Path(out)


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
    return _open_remote(path) if is_remote(path) else _open_local(path)


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


URL_SCHEMES = {"http://": "/vsicurl/http://", "https://": "/vsicurl/https://", "s3://": "/vsis3/",
               "gs://": "/vsigs/", "az://": "/vsiaz/", "zip://": "/vsizip/"}
# reading remote files: retries with back-off for transient HTTP errors (429, 5xx), an open that lists
# no folder, GDAL's own cache of the bytes read, merged range requests, and blocks decoded on one thread:
# measured on a 128 px-block COG read whole, GDAL's decoding threads fetched the same blocks again
# (1.0-2.6x the file's bytes from run to run with 2 threads; 1.0x with one, tests/test_remote.py)
REMOTE_ENV = {"GDAL_HTTP_MAX_RETRY": 4, "GDAL_HTTP_RETRY_DELAY": 0.5, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
              "VSI_CACHE": "TRUE", "GDAL_HTTP_MULTIRANGE": "YES", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
              "GDAL_HTTP_TIMEOUT": 60, "GDAL_NUM_THREADS": 1,
              # a server that trickles bytes: a transfer under 1 KB/s for 30 s is dropped (and retried), so no
              # read hangs without limit; the request as a whole has GDAL_HTTP_TIMEOUT
              "GDAL_HTTP_LOW_SPEED_TIME": 30, "GDAL_HTTP_LOW_SPEED_LIMIT": 1024}


def is_remote(path: str | os.PathLike) -> bool:
    """A URL or a GDAL virtual file system path: never checked or globbed as a local file."""
    text = os.fspath(path)
    return text.startswith("/vsi") or any(text.startswith(s) for s in URL_SCHEMES)


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


def gdal_path(path: str | os.PathLike) -> str:
    """The path GDAL opens for ``path``: URLs become ``/vsicurl/``, ``/vsis3/``, ``/vsigs/``,
    ``/vsiaz/`` or ``/vsizip/`` paths (credentials from the usual environment variables, as
    rasterio and GDAL read them); anything else is returned as it is."""
    text = os.fspath(path)
    for scheme, vsi in URL_SCHEMES.items():
        if text.startswith(scheme):
            rest = text[len(scheme):]
            if scheme == "zip://":  # zip://archive.zip!inner/path
                archive, _, inner = rest.partition("!")
                rest = f"{archive}/{inner.lstrip('/')}" if inner else archive
            return vsi + rest
    return text


def _http_status(url: str) -> str:
    """The status a server answers for the first byte of ``url`` ("206", "500"), or "" when it
    cannot be had in 10 s; asked only to name the cause of a failed read."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=0-0"}), timeout=10) as r:
            return str(r.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (OSError, ValueError):
        return ""


def _remote_problem(path, exc: BaseException) -> str:
    """One line for a failed remote open or read: the cause (a status code, a time-out, a
    transfer that stalled), for a URL; for a local GDAL virtual path (``/vsizip/``) what is
    missing."""
    text, cause = "", exc
    while cause is not None:  # rasterio chains GDAL's own messages behind its own
        text, cause = f"{text} {cause}", cause.__cause__ or cause.__context__
    path = os.fspath(path).removeprefix("/vsicurl/")
    if not any(path.startswith(s) for s in URL_SCHEMES if s != "zip://"):
        return f"{path}: cannot be read ({first_line(exc)}); check that the archive and the file in it exist"
    found = re.search(r"HTTP (?:response )?(?:error )?code ?:? ?(\d{3})", text)
    status = found[1] if found else ""
    if not status and path.startswith(("http://", "https://")):
        status = _http_status(path)  # GDAL's read errors do not carry the status: ask once
    if status.startswith("5"):
        return f"{path}: the server failed (HTTP {status}); try again later, or check the server"
    if status == "404" or "No such file" in text or "does not exist" in text:
        return f"{path}: not found on the server (HTTP 404); check the URL"
    if status in ("401", "403") or "AccessDenied" in text or "credentials" in text.lower():
        return f"{path}: access denied (HTTP 401/403); check the URL or the credentials in the environment"
    if any(w in text.lower() for w in ("timed out", "timeout", "too slow")) or \
            (not status and path.startswith(("http://", "https://"))):
        return f"{path}: the server did not answer in time; check the network or try again"
    if status.startswith("2"):  # the server is there and answers, but the transfer broke off
        return (f"{path}: the server sent the data too slowly or broke off (HTTP {status}, then the read failed);"
                " check the network or try again")
    return f"{path}: not a readable remote raster (HTTP {status}: {first_line(exc)}); check the URL"


@contextlib.contextmanager
def _open_remote(path: str | os.PathLike) -> Iterator[rasterio.io.DatasetReader]:
    with rasterio.Env(**REMOTE_ENV):  # for the dataset's whole life: its reads are remote too
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                src = rasterio.open(gdal_path(path))
        except rasterio.errors.RasterioError as exc:
            raise RasterReadError(_remote_problem(path, exc)) from None
        try:
            yield src
        finally:
            src.close()


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


def read_window(
    src: rasterio.io.DatasetReader,
    row_off: int,
    col_off: int,
    height: int,
    width: int,
    bands: Sequence[int],
    with_valid: bool = False,
    nodata: float | None = None,
    dtype: str | None = "float32",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a window that may reach past the scene edge, padding by reflection.

    Returns ``(pixels, valid)``: pixels ``(len(bands), height, width)`` in raw units, as
    ``dtype`` (None: the file's own type); ``valid`` bool ``(height, width)`` (False on padding, nodata
    and NaN/±inf, which are read as 0) when ``with_valid``, else None. ``nodata``: a value that marks
    missing pixels (where every band equals it) on top of the file's own nodata and masks. A plain
    read padded with numpy is several times faster than rasterio's ``boundless=True``.
    """
    r0, c0 = max(row_off, 0), max(col_off, 0)
    r1, c1 = min(row_off + height, src.height), min(col_off + width, src.width)
    if r1 <= r0 or c1 <= c0:
        raise InputError(f"{src.name}: window at row {row_off}, col {col_off} lies outside the scene")
    data, valid, _ = _read_inside(src, Window(c0, r0, c1 - c0, r1 - r0), bands, with_valid, nodata, dtype)
    return _padded(data, valid, (r0 - row_off, row_off + height - r1), (c0 - col_off, col_off + width - c1))


def _read_inside(src: rasterio.io.DatasetReader, win: Window, bands: Sequence[int], with_valid: bool,
                 nodata: float | None, dtype: str | None, out: np.ndarray | None = None,
                 valid_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """``read_window``'s pixels and valid mask of a window inside the scene, unpadded; into
    ``out`` and ``valid_out`` (views of the right shapes) when given. The third value: every
    pixel is known valid without looking at the mask (no mask, no nodata value in the first
    band, no NaN)."""
    whole = True
    try:
        data = src.read(list(bands), window=win, out_dtype=dtype, out=out)
        valid = None
        if with_valid:
            if all(f == [MaskFlags.all_valid] for f in src.mask_flag_enums):  # no mask to read: all valid
                valid = np.ones(data.shape[1:], bool) if valid_out is None else valid_out
                valid[...] = True
            else:
                valid = np.greater(src.dataset_mask(window=win), 0, out=valid_out)
                whole = False
        # a pixel is missing where every band holds the nodata value: none can be where the first
        # band never does (two reductions of one band, not a compare of every band: 8192² RGB 0.042 → 0.004 s)
        if valid is not None and nodata is not None and (
                data.dtype.kind not in "iu" or data[0].min() <= nodata <= data[0].max()):
            missing = data[0] == nodata
            for band in data[1:]:
                missing &= band == nodata
            valid &= ~missing
            whole = False
        if data.dtype.kind == "f":  # NaN and ±inf are missing data too: no roof there, and not fed on
            finite = np.isfinite(data)
            if not finite.all():
                data[~finite] = 0
                whole = False
                if valid is not None:
                    valid &= finite.all(axis=0)
    except RasterioIOError as exc:
        where = f"rows {win.row_off}-{win.row_off + win.height}, cols {win.col_off}-{win.col_off + win.width}"
        if is_remote(src.name) and "/vsizip/" not in src.name:  # the network's cause, not a damaged file
            raise RasterReadError(f"read failed at {where}: {_remote_problem(src.name, exc)}") from None
        raise RasterReadError(f"{src.name}: read failed at {where} ({first_line(exc)}); the file may be truncated"
                              " or a VRT source missing") from None
    return data, valid, whole


def _padded(data: np.ndarray, valid: np.ndarray | None, rows: tuple[int, int], cols: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels padded by reflection (``rows``, ``cols``: before and after), valid by False."""
    if not any(rows + cols):
        return data, valid
    data = np.pad(data, ((0, 0), rows, cols), mode="symmetric")
    if valid is not None:
        valid = np.pad(valid, (rows, cols), mode="constant", constant_values=False)
    return data, valid


ROW_BAND_MAX_ROWS = 1024  # a file's blocks taller than this are read to the rows needed, not to their end


class RowBands:
    """Windows of fixed columns going down a scene, each pixel read and decoded once.

    Overlapping windows read one by one decode the blocks they share again unless GDAL's
    block cache holds them (an 8192² deflate scene in 512-row windows 480 rows apart: 0.98
    s with no cache, 0.73 s with 128 MB, 0.65 s without overlap; a block row of a very wide
    scene can outgrow any cache). This keeps the rows that the next window shares with the
    last, and reads only the rows below them, to the end of the file's block row, so every
    block is decoded once whatever the cache (from a remote file GDAL's own cache already
    fetched each once). ``window`` takes windows in order of
    ``row_off`` and returns what ``read_window`` returns for them, padded by reflection
    past the scene's edges; the arrays it returns are never written again (a thread ahead
    of the model may keep reading). Memory: the window's rows and at most one block row
    more, at these columns. The columns past the scene's edges are mirrored once, as rows
    are read, not per window.
    """

    def __init__(self, src: rasterio.io.DatasetReader, col_off: int, width: int, bands: Sequence[int],
                 with_valid: bool = False, nodata: float | None = None, dtype: str | None = "float32") -> None:
        self.src, self.bands, self.with_valid, self.nodata = src, list(bands), with_valid, nodata
        self.dtype = dtype or src.dtypes[self.bands[0] - 1]
        self.col_off, self.width = col_off, width
        self.c0, self.c1 = max(col_off, 0), min(col_off + width, src.width)
        if self.c1 <= self.c0:
            raise InputError(f"{src.name}: windows at col {col_off} lie outside the scene")
        block = src.block_shapes[0][0] if src.block_shapes else 1
        self.block = block if 1 <= block <= ROW_BAND_MAX_ROWS else 1
        self.left, self.right = self.c0 - col_off, col_off + width - self.c1  # columns of padding
        self.top = 0  # scene row of the buffers' first row
        # the buffers hold the padding columns too: only a grid's first and last rows are padded on a read
        self.data = np.empty((len(self.bands), 0, width), self.dtype)
        self.valid = np.empty((0, width), bool) if with_valid else None
        self.whole_rows = np.empty(0, bool)  # rows whose pixels in the scene are known valid

    def window(self, row_off: int, height: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``read_window(src, row_off, col_off, height, width, …)`` from the rows kept and read."""
        src = self.src
        r0, r1 = max(row_off, 0), min(row_off + height, src.height)
        if r1 <= r0:
            raise InputError(f"{src.name}: window at row {row_off}, col {self.col_off} lies outside the scene")
        if r0 < self.top:
            raise ValueError(f"windows must go down the scene: row {r0} after row {self.top}")
        bottom = self.top + self.data.shape[1]
        if r1 > bottom:
            self._extend(r0, r1)
        data = self.data[:, r0 - self.top : r1 - self.top]
        valid = None if self.valid is None else self.valid[r0 - self.top : r1 - self.top]
        return _padded(data, valid, (r0 - row_off, row_off + height - r1), (0, 0))

    def whole(self, row_off: int, height: int) -> bool:
        """Whether every pixel of the scene in the last ``window(row_off, height)`` is valid, as
        the reads knew without looking (no mask, no nodata, no NaN): then its ``valid`` is False
        only on the padding past the scene's edges."""
        r0, r1 = max(row_off, 0), min(row_off + height, self.src.height)
        return bool(self.whole_rows[r0 - self.top : r1 - self.top].all())

    def _extend(self, r0: int, r1: int) -> None:
        """New buffers holding rows ``r0`` to at least ``r1``: the rows kept copied, the rest read
        to the end of their block row (the old buffers stay as they are for their readers)."""
        src, bottom = self.src, self.top + self.data.shape[1]
        start = max(r0, bottom)  # the first row to read
        stop = min(-(-r1 // self.block) * self.block, src.height)
        keep = max(bottom - r0, 0)
        data = np.empty((len(self.bands), keep + stop - start, self.width), self.dtype)
        valid = None if self.valid is None else np.empty(data.shape[1:], bool)
        if keep:
            data[:, :keep] = self.data[:, r0 - self.top :]
            if valid is not None:
                valid[:keep] = self.valid[r0 - self.top :]
        inside = slice(self.left, self.width - self.right)
        win = Window(self.c0, start, self.c1 - self.c0, stop - start)
        whole = _read_inside(src, win, self.bands, self.with_valid, self.nodata, self.dtype,
                             out=data[:, keep:, inside], valid_out=None if valid is None else valid[keep:, inside])[2]
        self.whole_rows = np.concatenate([self.whole_rows[r0 - self.top :], np.full(stop - start, whole)])
        new = data[:, keep:]
        if max(self.left, self.right) <= self.c1 - self.c0:  # mirrored at the scene's edges
            n = self.c1 - self.c0
            new[:, :, : self.left] = new[:, :, self.left : 2 * self.left][:, :, ::-1]
            new[:, :, self.left + n :] = new[:, :, self.left + n - self.right : self.left + n][:, :, ::-1]
        else:  # a scene narrower than the padding
            new[...] = np.pad(new[:, :, inside], ((0, 0), (0, 0), (self.left, self.right)), mode="symmetric")
        if valid is not None:
            valid[keep:, : self.left] = valid[keep:, self.width - self.right :] = False
        self.data, self.valid, self.top = data, valid, start - keep


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


def read_polygons(path: str | os.PathLike, repair: bool = True, layer: str | None = None, where: str | None = None):
    """Read a vector file of polygons (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, anything
    OGR reads) as a GeoDataFrame, empty and missing geometries dropped. ``layer``: the layer
    of a multi-layer file; ``where``: an OGR SQL filter (``"building IS NOT NULL"``).
    ``repair``: invalid polygons (self-intersecting rings, bow-ties) are made valid
    (``shapely.make_valid``, keeping their polygonal parts), and how many were is said once
    in a ``GeosegWarning``."""
    import geopandas as gpd
    import shapely

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; give a .geojson or .gpkg of polygons")
    try:
        with warnings.catch_warnings():  # a GeoPackage with QGIS styles holds a `layer_styles` table too
            warnings.filterwarnings("ignore", message="More than one layer found")
            gdf = gpd.read_file(p, layer=layer, where=where)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        what = f"with layer {layer!r} and filter {where!r} " if (layer or where) else ""
        raise InputError(f"{p}: not a readable vector file {what}({first_line(exc, 100)})") from None
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].reset_index(drop=True)
    gdf = _polygons_only(gdf, p)
    if gdf.crs is not None and gdf.crs.is_geographic and len(gdf):
        x0, y0, x1, y1 = gdf.total_bounds
        if not (-180 <= x0 and x1 <= 360 and -90 <= y0 and y1 <= 90):
            raise InputError(f"{p}: coordinates up to {max(abs(x0), abs(x1), abs(y0), abs(y1)):.6g} under a"
                             f" longitude/latitude CRS ({gdf.crs.to_string()}): its CRS tag is wrong (metres"
                             " tagged as degrees?); set the file's true CRS")
    if repair and len(gdf):
        bad = ~shapely.is_valid(gdf.geometry.values)
        if bad.any():
            fixed = shapely.make_valid(gdf.geometry.values[bad])
            # keep the polygonal part of what make_valid returns (a collection may hold lines)
            polygonal = ("Polygon", "MultiPolygon")
            fixed = [g if g.geom_type in polygonal else
                     shapely.union_all([x for x in getattr(g, "geoms", [g]) if x.geom_type in polygonal])
                     for g in fixed]
            geoms = gdf.geometry.values.copy()
            geoms[bad] = fixed
            gdf = gdf.set_geometry(gpd.GeoSeries(geoms, crs=gdf.crs, index=gdf.index))
            warnings.warn(f"{p}: {int(bad.sum())} invalid polygon(s) (self-intersecting rings) repaired",
                          GeosegWarning, stacklevel=2)
            gdf = gdf[~gdf.geometry.is_empty].reset_index(drop=True)
    return gdf


def _polygons_only(gdf, p: Path):
    """The polygons of a vector file; points and lines are not areas: a file of nothing else is
    an ``InputError`` that says so (not a CRS problem), and a few among polygons are dropped
    with a warning."""
    kinds = gdf.geometry.geom_type
    polygonal = kinds.isin(["Polygon", "MultiPolygon"])
    if polygonal.all():
        return gdf
    others = ", ".join(sorted(set(kinds[~polygonal])))
    if not polygonal.any():
        raise InputError(f"{p}: holds {others} geometries, not polygons; give polygons (buffer points and lines"
                         " into areas first, e.g. with QGIS's Buffer)")
    warnings.warn(f"{p}: {int((~polygonal).sum())} {others} geometries left out (not polygons)", GeosegWarning,
                  stacklevel=3)
    return gdf[polygonal].reset_index(drop=True)


def copy_as_cog(src_path: str | os.PathLike, dst_path: str | os.PathLike) -> None:
    """Copy a raster as a Cloud-Optimised GeoTIFF (deflate, internal overviews); GDAL streams it."""
    from rasterio.shutil import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        copy(src_path, dst_path, driver="COG", compress="DEFLATE", blocksize=512, BIGTIFF="IF_SAFER")
