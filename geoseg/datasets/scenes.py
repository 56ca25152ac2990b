"""Training from whole scenes and building footprints, read in windows.

A user's data is an orthophoto or a few scenes (GeoTIFF, COG, VRT; any size, each in its
own CRS) and footprints from a cadastre or OpenStreetMap (any vector format, often in
lon/lat, covering part of the imagery). Nothing here holds a whole scene:

- ``LabelledScene`` opens a scene's header, brings the footprints into its pixel grid once
  (reprojected, clipped, in a spatial index) and works out where labels are known: the
  label extent (``--label-extent``, or the footprints buffered by ``extent_buffer``
  metres), where absence of a footprint means "no building". Pixels outside it are left
  out of the loss, never taught as background.
- ``spatial_split`` cuts each scene's labelled area into square blocks (four training
  tiles a side, down to one tile for a small labelled area) and holds out a run of
  neighbouring blocks for validation (``val_fraction`` of the labelled area from a block
  chosen by ``seed``, or the ``k``-th of ``folds`` runs), with a gap one tile wide around
  them where no training window may be centred: no validation pixel is ever seen in
  training.
- ``WindowDataset`` draws training windows: a share (``positive_fraction``) centred on a
  random footprint, the rest uniform over the training area; each is read with a windowed
  read, resampled to the training pixel size (``gsd``) when the scene's differs, its
  footprints rasterised from the index, and augmented as tiles are. Validation windows tile
  the held-out blocks, fixed.
- Touching footprints (terraced and semi-detached houses) are one blob in a plain mask.
  With a ``contact_gap`` of g pixels, the pixels of a footprint within g/2 of another
  footprint are taught as background: the model learns to leave a line between touching
  roofs, so they come out as separate polygons (the U-Net paper's separating background
  between touching cells; the SpaceNet winners' "contact" channel, as a gap).

Coordinates: "scene pixels" are ``(x = column, y = row)`` of a scene at its own resolution;
a window of ``tile`` training pixels covers ``tile × factor`` scene pixels, where
``factor = gsd / the scene's pixel size``.
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
import shapely
import torch
from affine import Affine
from rasterio import features
from rasterio.enums import Resampling
from rasterio.windows import Window
from scipy import ndimage
from shapely import STRtree
from shapely.geometry import box
from torch.utils.data import Dataset

from geoseg.datasets.classes import CLASS_IDS, ClassSpec, spec_for, with_class_labels
from geoseg.datasets.normalisation import Normalisation, normalisation_of
from geoseg.datasets.tiles import make_item
from geoseg.datasets.weightmap import unet_weight_map
from geoseg.errors import InputError
from geoseg.io.raster import IMAGE_SUFFIXES, open_raster, pixel_size_m, value_scale
from geoseg.io.vectors import read_polygons
from geoseg.io.windows import read_window
from geoseg.samplers.blocks import Zones


def find_scenes(spec: str | os.PathLike) -> list[str]:
    """Scenes named by ``spec``: a raster file (GeoTIFF, COG, VRT, PNG, JPEG), a folder of
    them, or a quoted glob pattern, sorted."""
    text = os.fspath(spec)
    p = Path(text)
    if p.is_dir():
        found = sorted(str(q) for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"{p}: no images (.tif, .vrt, .png, .jpg); give the scenes the footprints label")
        return found
    if p.is_file():
        return [text]
    if glob.has_magic(text):
        found = sorted(q for q in glob.glob(text) if Path(q).suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"{text}: no raster matches this pattern; check the path")
        return found
    raise InputError(f"{text}: no such file or folder; give a scene, a folder of scenes or a quoted glob")


class LabelledScene:
    """A scene's header and its labels in its own pixel grid (see the module's notes).

    ``footprints``: the footprints as a GeoDataFrame in any CRS; ``extent``: polygons where
    the labels are complete (any CRS), or None for the footprints buffered by
    ``extent_buffer`` metres; ``gsd``: the training pixel size in metres (None: the scene's
    own, for scenes without georeference)."""

    def __init__(self, path: str, footprints, extent, gsd: float | None, extent_buffer: float) -> None:
        self.path = path
        with open_raster(path) as src:
            self.height, self.width, self.count = src.height, src.width, src.count
            self.dtype, self.crs, self.transform, self.nodata = src.dtypes[0], src.crs, src.transform, src.nodata
            self.pixel = pixel_size_m(src)
        if (self.crs is None) != (footprints.crs is None):
            raise InputError(f"{path}: the scene and the footprints must both have a CRS, or neither; give"
                             " footprints with a CRS (a .prj, a GeoPackage's srs) for a georeferenced scene")
        if gsd is not None and self.pixel is None:
            self.factor = 1.0  # a scene without georeference is taken at the training pixel size
        else:
            self.factor = 1.0 if gsd is None or self.pixel is None else gsd / self.pixel
        frame = box(0, 0, self.width, self.height)
        geoms = footprints.to_crs(self.crs).geometry.values if self.crs is not None else footprints.geometry.values
        geoms = shapely.intersection(self.to_pixels(geoms), frame)
        keep = ~shapely.is_empty(geoms) & (shapely.area(geoms) > 0)
        self.footprints = geoms[keep]
        # each footprint's class id (``CLASS_IDS``, from a class column), or None: every one a roof
        self.class_ids = footprints[CLASS_IDS].to_numpy()[keep] if CLASS_IDS in footprints.columns else None
        self.index = STRtree(self.footprints)
        if extent is not None:
            area = extent.to_crs(self.crs).geometry.values if self.crs is not None else extent.geometry.values
            area = shapely.union_all(self.to_pixels(area))
        elif len(self.footprints):
            metres = extent_buffer / (self.pixel or 1.0)
            area = shapely.union_all(shapely.buffer(self.footprints, metres, quad_segs=2))
        else:
            area = shapely.Polygon()
        self.extent = shapely.intersection(area, frame)

    def to_pixels(self, geoms: np.ndarray) -> np.ndarray:
        """Geometries in the scene's CRS → its pixel coordinates (x = column, y = row), in arrays."""
        a, b, c, d, e, f = (~self.transform)[:6]
        return shapely.transform(geoms, lambda xy: np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c,
                                                                   d * xy[:, 0] + e * xy[:, 1] + f]))


def read_resampled(src, row_off: float, col_off: float, side: float, out: int, bands: list[int],
                   nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``out`` × ``out`` pixels of the scene window of ``side`` scene pixels at (row_off,
    col_off): float32 ``(bands, out, out)`` and valid bool ``(out, out)`` (False off the
    scene, on nodata and on NaN). At the scene's own resolution the window is read as
    prediction reads it (reflection padding); resampled (bilinear) otherwise."""
    if abs(side - out) < 1e-6:
        return read_window(src, int(round(row_off)), int(round(col_off)), out, out, bands, True, nodata)
    win = Window(col_off, row_off, side, side)
    data = src.read(bands, window=win, out_shape=(len(bands), out, out), boundless=True, fill_value=0,
                    resampling=Resampling.bilinear, out_dtype="float32")
    valid = src.dataset_mask(window=win, out_shape=(out, out), boundless=True) > 0
    if nodata is not None:
        valid &= ~np.all(data == nodata, axis=0)
    finite = np.isfinite(data)
    if not finite.all():
        data[~finite] = 0
        valid &= finite.all(axis=0)
    return data, valid


def _burn(geoms, transform: Affine, out: int, gap: int = 0, values: np.ndarray | None = None) -> np.ndarray:
    """Mask of the polygons (each its class id of ``values``; else 1); with ``gap``, less their
    contact pixels (``contacts``)."""
    if values is not None:
        shapes = [(g, int(v)) for g, v in zip(geoms, values) if not g.is_empty]
        if not shapes:
            return np.zeros((out, out), np.uint8)
        return features.rasterize(shapes, out_shape=(out, out), transform=transform, dtype="uint8")
    geoms = [g for g in geoms if not g.is_empty]
    if not geoms:
        return np.zeros((out, out), np.uint8)
    if gap <= 0 or len(geoms) == 1:
        return features.rasterize(((g, 1) for g in geoms), out_shape=(out, out), transform=transform, dtype="uint8")
    ids = features.rasterize(((g, k) for k, g in enumerate(geoms, 1)), out_shape=(out, out), transform=transform,
                             dtype="int32")
    return ((ids > 0) & ~contacts(ids, gap)).astype(np.uint8)


def contacts(ids: np.ndarray, gap: int) -> np.ndarray:
    """Pixels of a labelled object (``ids`` > 0) within ``gap`` // 2 pixels (at least 1, along
    rows, columns or diagonals) of another object: a line ``gap`` pixels wide between objects
    that touch, none along an object's edge with the background."""
    size = 2 * max(gap // 2, 1) + 1
    higher = ndimage.maximum_filter(ids, size=size) > ids
    lower = ndimage.minimum_filter(np.where(ids > 0, ids, np.iinfo(ids.dtype).max), size=size) < ids
    return (ids > 0) & (higher | lower)


class WindowDataset(Dataset):
    """Training windows drawn at random (``windows`` None), or fixed validation windows
    (``windows``: ``(scene, row, col)`` in scene pixels). Items as ``data.TileDataset``'s."""

    def __init__(self, scenes: list[LabelledScene], zones: list[Zones], norm: Normalisation, tile: int,
                 transform=None, length: int = 0, positive_fraction: float = 0.5, weight_maps: bool = False,
                 nodata: float | None = None, windows: list[tuple[int, float, float]] | None = None,
                 contact_gap: int = 0) -> None:
        self.scenes, self.zones, self.tile, self.contact_gap = scenes, zones, tile, contact_gap
        self.mean = torch.tensor(norm.mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(norm.std, dtype=torch.float32)[:, None, None]
        self.scale = norm.scale
        self.transform, self.positive_fraction = transform, positive_fraction
        self.weight_maps, self.nodata, self.windows = weight_maps, nodata, windows
        self.length = len(windows) if windows is not None else length
        self._open: dict[int, rasterio.io.DatasetReader] = {}
        weights = np.array([z.train.area / s.factor ** 2 for s, z in zip(scenes, zones)])
        self._weights = torch.tensor(weights / weights.sum() if weights.sum() > 0 else weights)
        self._centres = [self._footprint_centres(s, z) for s, z in zip(scenes, zones)]
        # with classes, each centre's class: a window is centred on a class drawn evenly, then on one of its
        # footprints, so a rare class is seen as often as a common one
        self._centre_classes = [self._footprint_centres(s, z, classes=True) for s, z in zip(scenes, zones)]

    @staticmethod
    def _footprint_centres(scene: LabelledScene, zone: Zones, classes: bool = False) -> np.ndarray | None:
        """The footprints' inner points in the training area ``(n, 2)``; ``classes``: their class
        ids instead (None for a scene without classes)."""
        if classes and scene.class_ids is None:
            return None
        if not len(scene.footprints) or zone.train.is_empty:
            return np.zeros((0,), np.uint8) if classes else np.zeros((0, 2))
        pts = shapely.point_on_surface(scene.footprints)
        inside = shapely.contains_xy(zone.train, shapely.get_x(pts), shapely.get_y(pts))
        if classes:
            return scene.class_ids[inside]
        return np.stack([shapely.get_x(pts), shapely.get_y(pts)], axis=1)[inside]

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        for src in self._open.values():
            src.close()
        self._open.clear()

    def _src(self, k: int):
        if k not in self._open:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._open[k] = rasterio.open(self.scenes[k].path)
        return self._open[k]

    def draw(self) -> tuple[int, float, float]:
        """A training window ``(scene, row, col)``: centred on a footprint (with a jitter of up
        to a quarter tile) with probability ``positive_fraction``, else uniform over the
        training area. Drawn from torch's random stream (seeded, and saved for --resume)."""
        k = int(torch.multinomial(self._weights, 1).item())
        zone, side = self.zones[k], self.tile * self.scenes[k].factor
        centres = self._centres[k]
        if len(centres) and float(torch.rand(())) < self.positive_fraction:
            ids = self._centre_classes[k]
            if ids is None:
                x, y = centres[int(torch.randint(len(centres), ()))]
            else:  # a class drawn evenly, then one of its footprints
                present = np.unique(ids)
                mine = np.flatnonzero(ids == present[int(torch.randint(len(present), ()))])
                x, y = centres[mine[int(torch.randint(len(mine), ()))]]
            jitter = (torch.rand(2) - 0.5).tolist()
            x, y = x + jitter[0] * side / 2, y + jitter[1] * side / 2
        else:
            x0, y0, x1, y1 = zone.train.bounds
            x = y = None
            for _ in range(8):  # 64 candidates at a time, the first inside the training area
                cand = torch.rand(64, 2).numpy() * [x1 - x0, y1 - y0] + [x0, y0]
                hit = np.flatnonzero(shapely.contains_xy(zone.train, cand[:, 0], cand[:, 1]))
                if len(hit):
                    x, y = cand[hit[0]]
                    break
            if x is None:  # a sliver of an area: its representative point
                p = shapely.point_on_surface(zone.train)
                x, y = p.x, p.y
        return k, y - side / 2, x - side / 2

    def window(self, k: int, row: float, col: float, zone) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image (scaled to about [0, 1]), mask and valid of one window; ``zone``: the pixels
        that count (training or validation area)."""
        s, t = self.scenes[k], self.tile
        side = t * s.factor
        src = self._src(k)
        bands = list(range(1, s.count + 1))
        data, valid = read_resampled(src, row, col, side, t, bands, self.nodata)
        to_scene = Affine(s.factor, 0, col, 0, s.factor, row)  # window pixel → scene pixel
        win = box(col, row, col + side, row + side)
        found = s.index.query(win, predicate="intersects")
        if s.class_ids is None:
            mask = _burn(s.footprints[found], to_scene, t, self.contact_gap)
        else:
            mask = _burn(s.footprints[found], to_scene, t, values=s.class_ids[found])
        valid &= _burn([zone.intersection(win)], to_scene, t).astype(bool)
        return data / self.scale, mask, valid

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.windows is not None:
            k, row, col = self.windows[i]
            zone = self.zones[k].val
        else:
            k, row, col = self.draw()
            zone = self.zones[k].train
        image, mask, valid = self.window(k, row, col, zone)
        weight = unet_weight_map(mask) if self.weight_maps else np.ones(mask.shape, np.float32)
        return make_item(image, mask, valid.astype(np.float32), weight, self.transform, self.mean, self.std)


def window_statistics(scenes: list[LabelledScene], zones: list[Zones], tile: int, nodata: float | None,
                      scale: float, seed: int, n: int = 64, stretch: bool = False) -> Normalisation:
    """Per-band mean and standard deviation (with ``stretch``, the pretrained encoder's range:
    ``data.normalisation_of``) over the valid pixels of ``n`` random training windows (a
    fixed seed of their own: the training stream is not touched)."""
    ds = WindowDataset(scenes, zones, Normalisation(scale, (0.0,) * scenes[0].count, (1.0,) * scenes[0].count),
                       tile, positive_fraction=0.5, nodata=nodata)
    state = torch.get_rng_state()
    torch.manual_seed(seed + 7919)

    def pixels():
        for _ in range(n):
            k, row, col = ds.draw()
            image, _, valid = ds.window(k, row, col, zones[k].train)
            yield image[:, valid]

    try:
        return normalisation_of(pixels(), scenes[0].count, scale, "the training windows hold no valid pixel (all"
                                " nodata?); check `nodata` and the scenes", stretch)
    finally:
        torch.set_rng_state(state)
        ds.close()


def load_scenes(images: str, labels: str, gsd: float | None, extent_path: str | None, extent_buffer: float,
                layer: str | None = None, where: str | None = None, classes: tuple[str, ...] | None = None,
                class_column: str | None = None, class_labels: tuple[str, ...] = (), line_width: float = 6.0,
                labels_class: str | None = None) -> tuple[list[LabelledScene], float | None, ClassSpec]:
    """The labelled scenes of ``images`` (``find_scenes``) with the footprints of ``labels``;
    returns them, the training pixel size (``gsd``, default: the finest scene's) and the
    classes (with ``class_column``: its values, or those ``classes`` keeps; else roofs, or
    ``labels_class``).
    ``class_labels``: more files as ``"FILE:CLASS"``, their lines ``line_width`` metres wide."""
    paths = find_scenes(images)
    footprints = read_polygons(labels, layer=layer, where=where)
    if not len(footprints):
        raise InputError(f"{labels}: holds no polygons{' matching `labels_where`' if where else ''}; give a file"
                         " of building footprints")
    spec = (spec_for(classes, class_column, None, None, footprints, labels) if class_column
            else ClassSpec(("background", labels_class.strip())) if labels_class else ClassSpec())
    if class_labels:  # more files, each its class: after the labels' own classes
        footprints, spec = with_class_labels(footprints, labels, spec, class_column, class_labels, line_width)
    elif class_column:
        ids = spec.vector_ids(footprints, labels)
        if not ids.any():
            raise InputError(f"{labels}: no polygon has a class of {', '.join(spec.names[1:])} in {class_column!r};"
                             " check `classes`")
        footprints = footprints.assign(**{CLASS_IDS: ids})[ids > 0]
    extent = None
    if extent_path:
        extent = read_polygons(extent_path)
        if not len(extent):
            raise InputError(f"{extent_path}: holds no polygons; give the area where the footprints are complete")
    dtypes, counts, pixels = set(), set(), []
    for p in paths:
        with open_raster(p) as src:
            dtypes.add(src.dtypes[0])
            counts.add(src.count)
            pixels.append(pixel_size_m(src))
    if len(counts) > 1 or len(dtypes) > 1:
        raise InputError(f"{images}: the scenes differ in band count or type ({sorted(counts)} bands,"
                         f" {sorted(dtypes)}); give scenes of one kind")
    known = [p for p in pixels if p is not None]
    gsd = gsd if gsd is not None else (min(known) if known else None)
    scenes = [LabelledScene(p, footprints, extent, gsd, extent_buffer) for p in paths]
    if all(s.extent.is_empty for s in scenes):
        raise InputError(f"{labels}: its polygons cover none of the training images; check that they show the same"
                         " place and that the label file's CRS is right")
    return [s for s in scenes if not s.extent.is_empty], gsd, spec


def scale_of(scenes: list[LabelledScene]) -> float:
    """The value range of the scenes' data type (255 for 8-bit), which their normalisation divides by."""
    return value_scale(scenes[0].dtype)


def say_pixel_sizes(scenes: list[LabelledScene], gsd: float | None) -> str:
    """One line on the scenes' pixel sizes and the training one."""
    if gsd is None:
        return "scenes without georeference, taken at their own pixel size"
    sizes = sorted({round(s.pixel, 3) for s in scenes if s.pixel})
    return f"training pixel size {gsd:.3g} m (scenes: {', '.join(f'{p:g}' for p in sizes)} m)"
