"""What a training run learns from, whatever the user has: ``load_training_data(config)``.

Two kinds of source, one value for the training loop (``TrainingData``):

- labelled tiles (``DATA_DIR`` with images and masks): small, held in memory
  (``data.load_samples``), split by whole tiles (``train.split_pairs``);
- scenes and footprints (``--images`` with ``--labels``): any size, read in windows
  (``scenes``), split spatially into blocks with a gap, the footprints rasterised per
  window. This also serves images labelled by one vector file.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shapely
from torch.utils.data import Dataset

from geoseg.config import TrainConfig
from geoseg.datasets import scenes as sc
from geoseg.datasets.classes import ClassSpec, spec_for
from geoseg.datasets.normalisation import Normalisation
from geoseg.datasets.tiles import (
    Pair,
    Sample,
    TileDataset,
    band_statistics,
    find_pairs,
    find_vector_pairs,
    load_samples,
    refuse_unlearnable,
)
from geoseg.errors import InputError
from geoseg.io.vectors import read_polygons
from geoseg.samplers import blocks

MAX_VAL_WINDOWS = 64  # validation windows of a scene run, at most (a fixed random choice): one epoch's check


@dataclass
class TrainingData:
    """The data of a run, ready for the loop. ``train(norm, multiple, transform, length)``
    and ``val(norm, multiple)`` make its datasets (items as ``data.make_item``'s);
    ``preview``: a few validation samples to draw with their predictions, in the validation
    dataset's order. ``gsd``: the training pixel size in metres (None: unknown)."""

    bands: int
    scale: float
    norm: Normalisation
    train_names: list[str]
    val_names: list[str]
    per_epoch: int  # training samples an epoch when the config does not say
    train: Callable[..., Dataset]
    val: Callable[..., Dataset] | None
    preview: list[Sample] = field(default_factory=list)
    gsd: float | None = None
    about: str = ""  # one line on what the run learns from
    classes: ClassSpec = field(default_factory=ClassSpec)  # background and the classes learnt
    class_pixels: np.ndarray | None = None  # training label pixels by class (K,), for class weights
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


def split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle ``range(n)`` with ``seed``; hold out ``round(n * fraction)`` (at least 1 if asked)."""
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    k = 0 if fraction <= 0 else min(max(1, round(n * fraction)), n - 1)
    return sorted(idx[k:]), sorted(idx[:k])


def kfold(n: int, folds: int, fold: int, seed: int) -> tuple[list[int], list[int]]:
    """Training and held-out indexes of fold ``fold`` of ``folds`` (sizes differ by at most one)."""
    if n < folds:
        raise InputError(f"{n} labelled pairs cannot make {folds} folds; use `folds` {max(2, n)} or add pairs")
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    held = sorted(idx[fold::folds])
    return sorted(set(idx) - set(held)), held


def split_pairs(config: TrainConfig) -> tuple[list[Pair], list[Pair]]:
    """``(training, validation)`` labelled pairs of ``config``: its validation folder, its fold, or a seeded share."""
    pairs = find_vector_pairs(config.data_dir, config.labels) if config.labels else find_pairs(config.data_dir)
    if config.val_dir:
        return pairs, find_pairs(config.val_dir)
    if config.folds:
        tr, va = kfold(len(pairs), config.folds, config.fold, config.seed)
    else:
        if config.val_fraction > 0 and len(pairs) < 2:
            raise InputError(
                f"{config.data_dir}: one labelled pair cannot be split; add pairs or pass `val_fraction` 0")
        tr, va = split(len(pairs), config.val_fraction, config.seed)
    return [pairs[i] for i in tr], [pairs[i] for i in va]


def load_training_data(config: TrainConfig, weight_maps: bool) -> TrainingData:
    """Tiles when ``config.labels`` is None, else scenes and footprints (see the module)."""
    return _scene_data(config, weight_maps) if config.labels else _tile_data(config, weight_maps)


def _tile_data(config: TrainConfig, weight_maps: bool) -> TrainingData:
    train_pairs, val_pairs = split_pairs(config)
    frame = read_polygons(config.labels) if config.labels and config.class_column and not config.classes else None
    spec = spec_for(config.classes, config.class_column, config.ignore_index, config.data_dir, frame, config.labels)
    train_samples, scale = load_samples(train_pairs, weight_maps, config.nodata, spec)
    refuse_unlearnable(train_samples, config.data_dir, vector=False)
    val_samples, _ = load_samples(val_pairs, weight_maps, config.nodata, spec) if val_pairs else ([], scale)
    if val_samples and val_samples[0].image.shape[0] != train_samples[0].image.shape[0]:
        raise InputError(f"{config.val_dir}: band count differs from {config.data_dir}; give matching images")

    def train(norm, multiple, transform, length):
        return TileDataset(train_samples, norm, config.tile_size, multiple, transform=transform, length=length)

    def val(norm, multiple):
        return TileDataset(val_samples, norm, config.tile_size, multiple)

    norm = band_statistics(train_samples, scale, config.pretrained_encoder)
    return TrainingData(bands=train_samples[0].image.shape[0], scale=scale, norm=norm,
                        train_names=[p.image.name for p in train_pairs], val_names=[p.image.name for p in val_pairs],
                        per_epoch=len(train_samples), train=train, val=val if val_samples else None,
                        preview=val_samples, gsd=config.gsd, classes=spec,
                        class_pixels=sum(np.bincount((s.mask if s.valid is None else s.mask[s.valid]).ravel(),
                                                     minlength=spec.k)[: spec.k] for s in train_samples),
                        about=f"{len(train_samples)} training and {len(val_samples)} validation tiles"
                              + (f"; classes {', '.join(spec.names[1:])}" if spec.k > 2 else ""))


def _scene_data(config: TrainConfig, weight_maps: bool) -> TrainingData:
    scenes, gsd, spec = sc.load_scenes(config.data_dir, config.labels, config.gsd, config.label_extent,
                                       config.extent_buffer, config.labels_layer, config.labels_where,
                                       config.classes, config.class_column, config.class_labels or (),
                                       config.line_width, config.labels_class)
    tile = config.tile_size
    if config.val_dir:  # separate validation scenes, labelled by --val-labels (or the same file)
        val_scenes, _, _ = sc.load_scenes(config.val_dir, config.val_labels or config.labels, gsd,
                                          config.label_extent, config.extent_buffer, config.labels_layer,
                                          config.labels_where, spec.names[1:] if config.class_column else None,
                                          config.class_column, config.class_labels or (), config.line_width,
                                          config.labels_class)
        zones = blocks.spatial_split(scenes, tile, 0.0, config.seed)
        val_zones = [blocks.Zones(train=shapely.Polygon(), val=s.extent, val_blocks=[s.extent.envelope])
                     for s in val_scenes]
    else:
        zones = blocks.spatial_split(scenes, tile, config.val_fraction, config.seed, config.folds, config.fold)
        val_scenes, val_zones = scenes, zones
    if sum(len(sc.WindowDataset._footprint_centres(s, z)) for s, z in zip(scenes, zones)) == 0:
        raise InputError(f"{config.labels}: no footprint lies in the training area (outside the held-out blocks);"
                         " a model cannot learn roofs from it: label more of the scenes or pass `val_fraction` 0")
    if any(s.count != scenes[0].count for s in val_scenes):
        raise InputError(f"{config.val_dir}: band count differs from {config.data_dir}; give matching scenes")
    scale = sc.scale_of(scenes)
    norm = sc.window_statistics(scenes, zones, tile, config.nodata, scale, config.seed,
                                stretch=config.pretrained_encoder)
    windows = blocks.validation_windows(val_scenes, val_zones, tile)
    if len(windows) > MAX_VAL_WINDOWS:
        pick = np.random.default_rng(config.seed).choice(len(windows), MAX_VAL_WINDOWS, replace=False)
        windows = [windows[i] for i in sorted(pick)]
    made: list[sc.WindowDataset] = []

    def train(norm, multiple, transform, length):
        ds = sc.WindowDataset(scenes, zones, norm, tile, transform=transform, length=length,
                              positive_fraction=config.positive_fraction, weight_maps=weight_maps,
                              nodata=config.nodata, contact_gap=config.gap())
        made.append(ds)
        return ds

    def val(norm, multiple):
        ds = sc.WindowDataset(val_scenes, val_zones, norm, tile, weight_maps=weight_maps, nodata=config.nodata,
                              windows=windows, contact_gap=config.gap())
        made.append(ds)
        return ds

    preview = []
    if windows:
        probe = val(norm, 1)
        for k, row, col in windows[:4]:
            image, mask, valid = probe.window(k, row, col, val_zones[k].val)
            preview.append(Sample(f"{k}", image, mask, None, valid))
    data = TrainingData(bands=scenes[0].count, scale=scale, norm=norm, train_names=[s.path for s in scenes],
                        val_names=[s.path for s in val_scenes] if config.val_dir else [], per_epoch=64,
                        train=train, val=val if windows else None, preview=preview, gsd=gsd, classes=spec,
                        class_pixels=_footprint_pixels(scenes, zones, spec.k),
                        about=f"{len(scenes)} scene(s), {sum(len(s.footprints) for s in scenes)} footprints,"
                              f" {len(windows)} validation windows; {sc.say_pixel_sizes(scenes, gsd)}")
    data.closers.append(lambda: [ds.close() for ds in made])
    return data


def _footprint_pixels(scenes: list, zones: list, k: int) -> np.ndarray:
    """Training pixels by class of footprints (their area inside the training zones; the rest of
    those zones background), for class weights."""
    pixels = np.zeros(k)
    for s, z in zip(scenes, zones):
        inside = shapely.area(shapely.intersection(s.footprints, z.train)) / s.factor ** 2
        ids = s.class_ids if s.class_ids is not None else np.ones(len(inside), np.uint8)
        counts = np.bincount(ids, weights=inside, minlength=k)[:k]
        counts[0] = max(z.train.area / s.factor ** 2 - counts[1:].sum(), 0.0)
        pixels += counts
    return pixels
