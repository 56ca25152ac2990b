"""Labelled tiles: finding image/mask pairs, loading them, and torch datasets over them.

A data folder holds images and masks matched by file stem, in ``images/`` +
``masks/`` or in the original roof project's ``train_X/`` + ``train_Y/``; PNG,
JPEG or GeoTIFF. Masks may be 0/1, 0/255 or anti-aliased grey (thresholded at 128).
Labelled sets are small (tens to hundreds of tiles) and are held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from geoseg.datasets.classes import ClassSpec
from geoseg.datasets.normalisation import Normalisation, normalisation_of
from geoseg.datasets.weightmap import unet_weight_map
from geoseg.errors import InputError, warnings_said_once
from geoseg.io.raster import IMAGE_SUFFIXES, open_raster, read_image, read_mask, value_scale
from geoseg.io.vectors import read_polygons

LAYOUTS = (("images", "masks"), ("train_X", "train_Y"))


@dataclass(frozen=True)
class Pair:
    """A labelled image: the image file and its mask (a raster, or ``None`` with vector labels)."""

    image: Path
    mask: Path


@dataclass(frozen=True)
class Sample:
    """One labelled image in memory: ``image`` float32 ``(C, H, W)`` scaled to about [0, 1],
    ``mask`` uint8 ``(H, W)`` 0/1, ``weight`` float32 ``(H, W)`` or None, ``valid`` bool
    ``(H, W)`` (False where the image has no data) or None."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    weight: np.ndarray | None
    valid: np.ndarray | None = None


def _rasters(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def find_pairs(data_dir: str | Path) -> list[Pair]:
    """Image/mask pairs of a data folder, sorted by name; every image needs its mask."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; give a folder with images/ and masks/")
    for img_name, mask_name in LAYOUTS:
        if (root / img_name).is_dir() and (root / mask_name).is_dir():
            images, masks = _rasters(root / img_name), _rasters(root / mask_name)
            break
    else:
        layouts = " or ".join(f"{a}/ + {b}/" for a, b in LAYOUTS)
        raise InputError(f"{root}: expected sub-folders {layouts} with images and masks matched by name")
    if not images:
        raise InputError(f"{root / img_name}: no images (.png, .jpg, .tif); add labelled tiles")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise InputError(
            f"{images[missing[0]]}: has no mask named {missing[0]}.* in {root / mask_name}"
            f" ({len(missing)} image(s) without masks); add the masks or remove the images"
        )
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise InputError(
            f"{masks[orphans[0]]}: mask with no image named {orphans[0]}.* in {root / img_name};"
            " add the image or remove the mask"
        )
    return [Pair(images[k], masks[k]) for k in sorted(images)]


VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")


def find_vector_pairs(images_dir: str | Path, labels: str | Path) -> list[Pair]:
    """Every raster of ``images_dir`` paired with one vector file of roof polygons."""
    root, lab = Path(images_dir), Path(labels)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; give the folder of images the polygons label")
    if not lab.is_file():
        raise InputError(f"{lab}: no such file; give a .gpkg or .geojson of roof polygons")
    if lab.suffix.lower() not in VECTOR_SUFFIXES:
        raise InputError(f"{lab}: not a vector file; use one of {', '.join(VECTOR_SUFFIXES)}")
    images = _rasters(root)
    if not images:
        raise InputError(f"{root}: no images (.png, .jpg, .tif); add the scenes or tiles the polygons label")
    return [Pair(p, lab) for _, p in sorted(images.items())]


def rasterize_labels(polygons, image_path: Path, values: np.ndarray | None = None) -> np.ndarray:
    """Roof polygons burnt onto an image's grid as uint8 0/1 (or each its class id of
    ``values``), reprojected to its CRS."""
    from rasterio import features

    from geoseg.io.raster import open_raster

    with open_raster(image_path) as src:
        crs, transform, shape = src.crs, src.transform, (src.height, src.width)
    if (crs is None) != (polygons.crs is None):
        raise InputError(f"{image_path}: the image and the label polygons must both have a CRS, or neither")
    geoms = polygons.to_crs(crs).geometry if crs is not None else polygons.geometry
    values = np.ones(len(geoms), np.uint8) if values is None else values
    shapes = [(g, int(v)) for g, v in zip(geoms, values) if g is not None and not g.is_empty and v > 0]
    if not shapes:
        return np.zeros(shape, np.uint8)
    return features.rasterize(shapes, out_shape=shape, transform=transform, dtype="uint8")


def read_label(pair: Pair, polygons: dict | None = None, spec: ClassSpec = ClassSpec()
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """A pair's label as uint8 ``(rows, cols)`` (0/1 for roofs, class ids with ``spec``'s
    classes) and where it counts (None: everywhere; False at ``spec.ignore``): its mask
    raster, or its vector file's polygons burnt onto the image's grid (with their class
    column's ids). ``polygons``: a cache of vector files already read, by path (one file
    labels many images)."""
    if pair.mask.suffix.lower() not in VECTOR_SUFFIXES:
        if not spec.reads_ids:
            return read_mask(pair.mask), None
        with open_raster(pair.mask) as src:
            return spec.mask_ids(src.read(1), pair.mask)
    polygons = {} if polygons is None else polygons
    if pair.mask not in polygons:
        polygons[pair.mask] = read_polygons(pair.mask)
        if not len(polygons[pair.mask]):
            raise InputError(f"{pair.mask}: holds no polygons; give a file of roof (building) polygons")
    frame = polygons[pair.mask]
    values = spec.vector_ids(frame, pair.mask) if spec.column else None
    return rasterize_labels(frame, pair.image, values), None


def load_samples(pairs: list[Pair], weight_maps: bool = False, nodata: float | None = None,
                 spec: ClassSpec = ClassSpec()) -> tuple[list[Sample], float]:
    """Read every pair; return the samples and the value scale of their dtype.

    A pair's mask is a raster, or a vector file whose polygons are rasterised onto the
    image's grid. ``nodata``: pixels where every band equals it are left out of the loss.
    All images must share band count and dtype, and each mask must match its image's size.
    A warning raised by many pairs (grey masks) is said once.
    """
    with warnings_said_once():
        return _load_samples(pairs, weight_maps, nodata, spec)


def _load_samples(pairs: list[Pair], weight_maps: bool, nodata: float | None,
                  spec: ClassSpec) -> tuple[list[Sample], float]:
    samples: list[Sample] = []
    bands = dtype = None
    vectors: dict[Path, object] = {}
    for pair in pairs:
        image, dt = read_image(pair.image)
        mask, labelled = read_label(pair, vectors, spec)
        if mask.shape != image.shape[1:]:
            raise InputError(
                f"{pair.mask}: mask is {mask.shape[1]} x {mask.shape[0]} px but its image is"
                f" {image.shape[2]} x {image.shape[1]} px; masks must match their images"
            )
        if bands is None:
            bands, dtype = image.shape[0], dt
        elif image.shape[0] != bands or dt != dtype:
            raise InputError(
                f"{pair.image}: {image.shape[0]} band(s) of {dt}, but {pairs[0].image} has {bands} of"
                f" {dtype}; give images of one band count and type"
            )
        scale = value_scale(dt)
        weight = unet_weight_map(mask) if weight_maps else None
        valid = None if nodata is None else ~np.all(image == nodata, axis=0)
        finite = np.isfinite(image)
        if not finite.all():  # NaN and ±inf are missing data: left out of the loss and the statistics
            image[~finite] = 0
            valid = finite.all(axis=0) if valid is None else valid & finite.all(axis=0)
        if labelled is not None:  # the mask's ignored value counts nowhere
            valid = labelled if valid is None else valid & labelled
        samples.append(Sample(pair.image.stem, image / scale, mask, weight, valid))
    return samples, value_scale(dtype or "uint8")


def refuse_unlearnable(samples: list[Sample], source: str, vector: bool) -> None:
    """Raise ``InputError`` when the masks teach nothing: no roof pixel in any of them, or
    nothing but roof. One empty mask among others is a legitimate negative tile."""
    roof = total = 0
    for s in samples:
        m = s.mask if s.valid is None else s.mask[s.valid]
        roof += int((m > 0).sum())
        total += int(m.size)
    if roof == 0:
        if vector:
            raise InputError(f"{source}: its polygons cover none of the training images; check that they show the"
                             " same place and that the label file's CRS is right")
        raise InputError(f"{source}: every mask is empty (no roof pixel), so nothing can be learnt; check the"
                         " masks (roof 1 or 255 on 0)")
    if roof == total:
        raise InputError(f"{source}: every mask is roof everywhere, so nothing can be learnt; check the masks"
                         " (roof 1 or 255 on 0), or add tiles with ground")


def make_item(image: np.ndarray, mask: np.ndarray, valid: np.ndarray, weight: np.ndarray, transform,
              mean: torch.Tensor, std: torch.Tensor) -> dict[str, torch.Tensor]:
    """A training or validation item from arrays: ``image`` float ``(C, H, W)`` scaled to about
    [0, 1], ``mask`` 0/1, ``valid`` and ``weight`` float ``(H, W)``; augmented by ``transform``
    (image and masks together), then normalised. Dicts of ``image`` float32 ``(C, H, W)``,
    ``target`` int64, ``valid`` and ``weight`` float32 ``(H, W)``."""
    out = (
        tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))),
        tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64))),
        tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32))),
        tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))),
    )
    if transform is not None:
        out = transform(out)
    img, tgt, val, wgt = out
    return {
        "image": ((img.as_subclass(torch.Tensor) - mean) / std).float(),
        "target": tgt.as_subclass(torch.Tensor).long(),
        "valid": val.as_subclass(torch.Tensor).float(),
        "weight": wgt.as_subclass(torch.Tensor).float(),
    }


def _pad_to(a: np.ndarray, h: int, w: int, mode: str) -> np.ndarray:
    ph, pw = h - a.shape[-2], w - a.shape[-1]
    if ph <= 0 and pw <= 0:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, max(ph, 0)), (0, max(pw, 0))]
    return np.pad(a, pad, mode=mode) if mode != "constant" else np.pad(a, pad)


class TileDataset(Dataset):
    """Training or validation tiles from samples held in memory.

    Training (``transform`` given): each item is a random ``tile_size`` crop of a sample
    (reflection-padded when the sample is smaller; padding is marked invalid), augmented.
    ``length`` items make one epoch, cycling through the samples.
    Validation (``transform`` None): each item is one whole sample, padded to a multiple
    of ``multiple``.

    Items are dicts: ``image`` float32 ``(C, H, W)`` normalised, ``target`` int64 ``(H, W)``,
    ``valid`` float32 ``(H, W)``, ``weight`` float32 ``(H, W)``.
    """

    def __init__(self, samples, norm: Normalisation, tile_size: int, multiple: int,
                 transform=None, length: int | None = None) -> None:
        self.samples = samples
        self.mean = torch.tensor(norm.mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(norm.std, dtype=torch.float32)[:, None, None]
        self.tile_size = tile_size
        self.multiple = multiple
        self.transform = transform
        self.length = length or len(samples)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.samples[i % len(self.samples)]
        weight = s.weight if s.weight is not None else np.ones_like(s.mask, dtype=np.float32)
        valid = np.ones_like(s.mask, dtype=np.float32) if s.valid is None else s.valid.astype(np.float32)
        image, mask = s.image, s.mask
        if self.transform is None:
            m = self.multiple
            h, w = -(-mask.shape[0] // m) * m, -(-mask.shape[1] // m) * m
        else:
            h = w = self.tile_size
            image, mask, valid, weight = self._crop(image, mask, valid, weight)
        image = _pad_to(image, h, w, "reflect")
        mask, valid, weight = (_pad_to(a, h, w, "constant") for a in (mask, valid, weight))
        return make_item(image, mask, valid, weight, self.transform, self.mean, self.std)

    def _crop(self, *arrays):
        h, w = arrays[1].shape
        t = self.tile_size
        r = int(torch.randint(0, max(h - t, 0) + 1, ()).item())
        c = int(torch.randint(0, max(w - t, 0) + 1, ()).item())
        return tuple(a[..., r : r + t, c : c + t] for a in arrays)


def band_statistics(samples: list[Sample], scale: float, stretch: bool = False) -> Normalisation:
    """The band normalisation of the samples' valid pixels (after scaling): per-band mean and
    standard deviation, or with ``stretch`` the pretrained encoder's range (``normalisation_of``)."""
    def pixels():
        for s in samples:
            x = s.image.reshape(s.image.shape[0], -1)
            yield x if s.valid is None else x[:, s.valid.reshape(-1)]  # the imagery, not its nodata fill

    return normalisation_of(pixels(), samples[0].image.shape[0], scale,
                            "every pixel of the training images is nodata or NaN; check `nodata` and the images",
                            stretch)
