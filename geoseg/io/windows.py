"""Windows of a scene: reads with reflection padding and a validity mask, the row bands that
prediction reads block row by block row, and resampling VRTs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from geoseg.errors import InputError, RasterReadError, first_line
from geoseg.io.raster import open_raster
from geoseg.io.remote import gdal_path, is_remote, remote_problem


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
            raise RasterReadError(f"read failed at {where}: {remote_problem(src.name, exc)}") from None
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


class BlockRowWriter:
    """Rows written down a tiled raster (``write(first row, rows)``, in order from its first
    row) in whole rows of its blocks: the rows that do not yet fill a block row are
    held here until they do, or until ``close``. A compressed block that GDAL's cache lets go
    of half written is compressed and written twice (the file keeps both); so a partial block
    row never waits in the cache, and the cache can stay small whatever the raster's width.
    Memory: under one block row of the raster."""

    def __init__(self, dst: rasterio.io.DatasetWriter) -> None:
        self.dst = dst
        self.block = dst.block_shapes[0][0]
        self.row0 = 0  # the first row held
        self.held: np.ndarray | None = None  # (bands, rows, width)

    def write(self, row0: int, rows: np.ndarray) -> None:
        """Write ``rows`` ``(bands, n, width)`` (or ``(n, width)`` of one band) from scene row ``row0``."""
        rows = rows[None] if rows.ndim == 2 else rows
        expected = self.row0 + (0 if self.held is None else self.held.shape[1])
        if row0 != expected:
            raise ValueError(f"rows from {row0} written after rows to {expected}")
        if self.held is not None:
            rows, row0 = np.concatenate([self.held, rows], axis=1), self.row0
        end = row0 + rows.shape[1]
        n = (end if end >= self.dst.height else end - end % self.block) - row0
        if n > 0:
            self.dst.write(rows[:, :n], window=Window(0, row0, rows.shape[2], n))
        n = max(n, 0)
        self.held = rows[:, n:].copy() if n < rows.shape[1] else None
        self.row0 = row0 + n

    def close(self) -> None:
        """Write the rows held."""
        if self.held is not None:
            self.dst.write(self.held, window=Window(0, self.row0, self.held.shape[2], self.held.shape[1]))
            self.held = None
