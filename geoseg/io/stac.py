"""A STAC Item as a scene: its assets read as the bands of one raster, through a VRT.

``geoseg predict item.json --assets red,green,blue`` stacks three single-band COGs (one
band each, on one grid) into the bands of one scene; without ``--assets``, the item's
``visual`` asset (an RGB COG) is the scene. The item is plain JSON (a local file or an
``http(s)`` URL, read once); the assets are read where they are, with range requests,
as any remote raster (``io.open_raster``). Asset hrefs relative to the item are resolved
against it.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from geoseg.errors import InputError, first_line
from geoseg.io.raster import open_raster
from geoseg.io.remote import gdal_path, is_remote


def is_item(path: str | os.PathLike) -> bool:
    """A STAC Item by its name: ``*.json`` (not a GeoJSON of polygons, which is not a scene)."""
    return os.fspath(path).lower().split("?")[0].endswith(".json")


ITEM_DEADLINE = 120.0  # s for a remote item's JSON as a whole (each read has its own 30 s time-out too)


ITEM_MAX_BYTES = 16 << 20


def _fetch(url: str) -> bytes:
    """A remote item's bytes within ``ITEM_DEADLINE`` seconds in all, so a server that trickles
    bytes cannot hang a run; at most ``ITEM_MAX_BYTES``."""
    import time

    stop = time.monotonic() + ITEM_DEADLINE
    chunks, size = [], 0
    with urllib.request.urlopen(url, timeout=30) as fh:
        while block := fh.read1(65536):  # what has come, not a full block: the deadline is checked as it trickles
            chunks.append(block)
            size += len(block)
            if size > ITEM_MAX_BYTES:
                raise ValueError(f"over {ITEM_MAX_BYTES >> 20} MB, not a STAC Item")
            if time.monotonic() > stop:
                raise TimeoutError(f"the server took over {ITEM_DEADLINE:g} s to send it (timed out)")
    return b"".join(chunks)


def read_item(path: str | os.PathLike) -> dict:
    """A STAC Item's JSON from a file or URL (within ``ITEM_DEADLINE`` and a size limit)."""
    text = os.fspath(path)
    try:
        if text.startswith(("http://", "https://")):
            item = json.loads(_fetch(text))  # the item itself; its assets are read by GDAL
        else:
            item = json.loads(Path(text).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{text}: not a readable STAC Item ({first_line(exc)}); give an item's JSON") from None
    if not isinstance(item, dict) or item.get("type") != "Feature" or not isinstance(item.get("assets"), dict):
        raise InputError(f"{text}: not a STAC Item (a Feature with assets); give an item's JSON")
    return item


REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "az://")  # what a remote item's assets may be


def _href(item_path: str, name: str, asset, allow_local: bool) -> str:
    """Asset ``name``'s href, resolved against the item. A remote item's assets are remote too:
    an absolute path is a path on the item's server, and a ``file:``, ``zip:`` or other
    scheme that would read this machine's files is refused, unless ``allow_local`` (then
    absolute and GDAL virtual paths are this machine's)."""
    href = asset.get("href") if isinstance(asset, dict) else None
    if not isinstance(href, str) or not href.strip():
        raise InputError(f"{item_path}: asset {name!r} has no href (a link to its raster); fix the item or choose"
                         " another asset with `assets`")
    remote_item = item_path.startswith(("http://", "https://"))
    if remote_item:
        if allow_local and (os.path.isabs(href) or is_remote(href)):  # trusted: its local paths are this machine's
            return href
        resolved = href if href.startswith(REMOTE_SCHEMES) else urllib.parse.urljoin(item_path, href)
        if not resolved.startswith(REMOTE_SCHEMES) and not allow_local:
            raise InputError(f"{item_path}: asset {name!r} names {href!r}, a local or virtual path, in an item"
                             " from the network; geoseg reads only remote assets of a remote item (pass"
                             " `allow_local_assets` if you trust it)")
        return resolved
    if is_remote(href) or os.path.isabs(href):
        return href
    return str(Path(item_path).resolve().parent / href)


def item_scene(path: str | os.PathLike, assets: tuple[str, ...] | None, folder: str | os.PathLike,
               allow_local: bool = False) -> str:
    """The raster to predict for the STAC Item ``path``: its ``visual`` asset, or a VRT in
    ``folder`` stacking ``assets`` (single-band rasters on one grid) as bands, in order.
    ``allow_local``: a remote item may name local files (``_href``)."""
    text = os.fspath(path)
    item = read_item(text)
    available = item["assets"]
    names = list(assets) if assets else ["visual"]
    missing = [n for n in names if n not in available]
    if missing:
        raise InputError(f"{text}: no asset {missing[0]!r}; it has {', '.join(sorted(available))}; choose with"
                         " `assets`, e.g. `assets` red,green,blue")
    hrefs = [_href(text, n, available[n], allow_local) for n in names]
    if len(hrefs) == 1:
        return hrefs[0]
    grids, bands = [], []
    kinds = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32", "float64": "Float64"}
    for k, (name, href) in enumerate(zip(names, hrefs), start=1):
        with open_raster(href) as src:
            if src.count != 1:  # its first band alone would be read, without a word
                raise InputError(f"{text}: asset {name!r} has {src.count} bands, so it cannot be one band of a"
                                 " stack; stack one-band assets, or predict that asset alone (`assets`"
                                 f" {name})")
            grids.append((src.width, src.height, src.transform, src.crs))
            source = gdal_path(href) if is_remote(href) else os.path.abspath(href)
            nodata = f"<NoDataValue>{src.nodata!r}</NoDataValue>" if src.nodata is not None else ""
            bands.append(f'<VRTRasterBand dataType="{kinds.get(src.dtypes[0], "Float32")}" band="{k}">{nodata}'
                         f"<Description>{escape(name)}</Description><SimpleSource><SourceFilename"
                         f' relativeToVRT="0">{escape(source)}</SourceFilename><SourceBand>1</SourceBand>'
                         "</SimpleSource></VRTRasterBand>")
    if len(set(grids)) > 1:
        raise InputError(f"{text}: assets {', '.join(names)} lie on different grids (size, pixel size or CRS);"
                         " choose assets of one resolution")
    width, height, transform, crs = grids[0]
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs else ""
    geo = f"<GeoTransform>{', '.join(repr(v) for v in transform.to_gdal())}</GeoTransform>"
    out = Path(folder) / f"{Path(urllib.parse.urlparse(text).path).stem}-{'-'.join(names)}.vrt"
    out.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}{geo}{"".join(bands)}'
                   "</VRTDataset>", encoding="utf-8")
    return str(out)
