"""A PNG of polygons drawn over the scene, to see at a glance that roofs sit on houses.

The scene is read decimated (no more than ``max_side`` pixels a side; GDAL uses
overviews when the file has them), so a preview of a huge scene costs little memory.
Predicted polygons are drawn in yellow, true polygons (when given) in cyan.
"""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
from PIL import Image, ImageDraw
from rasterio.enums import Resampling

from geoseg.io import open_raster


def _display_rgb(data: np.ndarray) -> np.ndarray:
    """Bands ``(C, H, W)`` → uint8 ``(H, W, 3)``, stretched 2–98 % per band unless already 8-bit."""
    if data.shape[0] >= 3:
        data = data[:3]
    else:
        data = np.repeat(data[:1], 3, axis=0)
    if data.dtype == np.uint8:
        return data.transpose(1, 2, 0)
    out = np.empty(data.shape, np.uint8)
    for i, band in enumerate(data.astype(np.float32)):
        lo, hi = np.percentile(band, [2, 98])
        out[i] = np.clip((band - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return out.transpose(1, 2, 0)


def render_preview(scene_path: str | os.PathLike, polygons: gpd.GeoDataFrame, out_png: str | os.PathLike,
                   truth: gpd.GeoDataFrame | None = None, max_side: int = 2048) -> None:
    """Draw ``polygons`` (and ``truth``) over the scene; both in the scene's CRS or pixel coordinates.

    Writes ``out_png`` directly: callers pass a temporary name (see ``io.atomic_output``)."""
    with open_raster(scene_path) as src:
        f = max(src.width, src.height) / max_side
        f = max(f, 1.0)
        w, h = max(1, round(src.width / f)), max(1, round(src.height / f))
        data = src.read(out_shape=(src.count, h, w), resampling=Resampling.average)
        to_px = ~src.transform if src.crs is not None else None
        sx, sy = w / src.width, h / src.height
    img = Image.fromarray(_display_rgb(data)).convert("RGB")
    draw = ImageDraw.Draw(img)
    line = max(1, round(2 / f)) if f < 2 else 1

    def rings(geom):
        for poly in getattr(geom, "geoms", [geom]):
            yield poly.exterior
            yield from poly.interiors

    for gdf, colour in ((truth, (0, 255, 255)), (polygons, (255, 230, 0))):
        if gdf is None:
            continue
        for geom in gdf.geometry:
            for ring in rings(geom):
                pts = []
                for x, y in ring.coords:
                    col, row = (x, y) if to_px is None else (
                        to_px.a * x + to_px.b * y + to_px.c, to_px.d * x + to_px.e * y + to_px.f)
                    pts.append((col * sx, row * sy))
                draw.line(pts, fill=colour, width=line)
    img.save(out_png, format="PNG")
