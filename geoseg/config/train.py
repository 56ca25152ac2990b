"""``TrainConfig``: everything a training run depends on (``geoseg train``, ``geoseg cv``),
each field with its default and help, and the recipe's constants."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from geoseg.config.fields import DEVICES, PRECISIONS, setting
from geoseg.errors import InputError

AUTO_DICE_MINUTES = 5.0  # from this training budget on, "auto" picks dice (README, Figures)
# ``geoseg train --preset original``: the original roof project's recipe, for comparison
PRESETS = {"original": dict(loss="softmax", lr_max=1e-4, lr_min=1e-5, norm="instance", encoder="unet", depth=5,
                            width=64, average=0)}
# the loss names ``train.losses.LOSSES`` implements ("auto" picks one of them: ``TrainConfig.resolved_loss``)
LOSS_NAMES = ("dice", "pixel-softmax", "softmax", "dice+ce")

# the contracting path of the U-Net: the paper's plain one, or a torchvision ResNet's (``model.ResNetUNet``)
ENCODERS = ("efficientnet-lite0", "efficientnet-lite2", "resnet18", "resnet34", "unet")
DEFAULT_DEPTH = 4  # the plain U-Net's levels when --depth is not given
RESNET_LEVELS = 6  # an encoder's levels (ResNet, EfficientNet-Lite): the input's size and 1/2 … 1/32
# a band's values mapped onto the 8-bit range an ImageNet encoder knows: training imagery that is not
# 8-bit (data.normalisation_of), and a scene of another data type than the model's training images
# (predict.scene_normalisation)
STRETCH_PERCENTILES = (1.0, 99.0)

# pixels between touching footprints taught as background by default: with it (and the loss that
# teaches it) and --split at prediction, object F1 0.482 → 0.772 on synthetic towns with terraces
# (0.211 → 0.798 on the terraced houses), area IoU 0.954 → 0.888 (bench/terraces.py, 600 steps;
# at 1200 steps 0.921, terraced houses 0.933)
CONTACT_GAP = 2


def with_class(item: str) -> tuple[str, str | None]:
    """A label file and its class from ``"roads.gpkg:road"``: ``("roads.gpkg", "road")``; a path
    with no ``:CLASS`` (or a file that exists by its whole name, a drive letter, a URL) →
    ``(path, None)``."""
    path, sep, name = item.rpartition(":")
    if not sep or not path or not name.strip() or any(c in name for c in "/\\") or os.path.exists(item):
        return item, None
    return path, name.strip()


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` in the run folder.

    ``samples_per_epoch``: random augmented tiles per epoch (default: the number of
    training images, at least 8 batches). ``time_limit``: minutes of training, after
    which the run stops cleanly. Validation: ``val_dir`` (a separate labelled folder), or
    fold ``fold`` of ``folds`` (k-fold cross-validation), or a ``val_fraction`` of the
    pairs chosen by ``seed`` (0 trains on all, with no validation). ``select_best``:
    ``model.pt`` is the epoch of best validation IoU; False keeps the last epoch (for an
    unbiased held-out score, as ``cv`` does). ``average``: when above 0, ``model.pt`` is
    instead the mean of the weights at the last ``average`` ends of a learning-rate cycle
    (stochastic weight averaging, Izmailov et al. 2018), its BatchNorm statistics measured
    again on the training tiles.
    """

    data_dir: str = setting(help="Labelled tiles (a folder of images and masks); with `labels`: scenes (a file, a"
                            " folder or a glob), read in windows.", cli=False)
    out_dir: str = setting(help="Run folder: model.pt (best on validation), last.pt, metrics.csv, config.json.",
                           section="everyday", flag="--out")
    labels: str | None = setting(None, "Building footprints (GeoPackage, GeoJSON, Shapefile, FlatGeobuf; any CRS)"
                                 " labelling `images`.", section="everyday")
    labels_layer: str | None = setting(None, "The layer of a multi-layer `labels` file.", section="data")
    labels_where: str | None = setting(None, "OGR SQL filter of the footprints, e.g. \"building IS NOT NULL\".",
                                       section="data")
    label_extent: str | None = setting(None, "Polygons where the footprints are complete; elsewhere no pixel is"
                                       " taught as background.", section="data",
                                       default_text="the footprints buffered by `extent_buffer`")
    extent_buffer: float = setting(30.0, "Metres around each footprint taken as labelled, without `label_extent`.",
                                   section="data")
    # 0.75 scored best of 0.25/0.5/0.75 (bench/train_scenes.py positives: pixel IoU 0.510 / 0.535 / 0.577 at 100 steps)
    positive_fraction: float = setting(0.75, "Share of training windows centred on a footprint (the rest uniform).",
                                       section="data")
    gsd: float | None = setting(None, "Training pixel size, metres; scenes of other sizes are resampled on read.",
                                section="data", default_text="the finest scene's")
    # footprints only: pixels of a footprint within contact_gap/2 of another are taught as background, so
    # touching roofs come apart (scenes.contacts); masks of tiles hold no instances and are used as they are
    contact_gap: int | None = setting(None, "Pixels between touching footprints taught as background, so terraced"
                                      " roofs come out apart (with `loss` pixel-softmax, which auto then picks);"
                                      " 0: off.", section="data", default_text=f"{CONTACT_GAP} with footprints")
    # more than roofs: the classes besides background (geoseg.datasets.classes)
    classes: tuple[str, ...] | None = setting(None, "Names of the classes besides background, comma-separated, in"
                                              " the order of their ids (mask value 1 = the first); with"
                                              " `class_column`, the column's values to keep.", section="data",
                                              default_text="classes.json beside the tiles, the column's values,"
                                              " or roof")
    class_column: str | None = setting(None, "The labels' column naming each polygon's class (e.g. landuse):"
                                       " polygons of a value not kept are background.", section="data")
    labels_class: str | None = setting(None, "The class of the `labels` polygons, when they have no class column.",
                                       section="data", cli=False, default_text="roof")
    class_labels: tuple[str, ...] | None = setting(None, "More label files, each with its class, as FILE:CLASS,"
                                                   " comma-separated (e.g. roads.gpkg:road,rivers.gpkg:water): their"
                                                   " polygons (lines: `line_width` wide) label `images` too.",
                                                   section="data")
    line_width: float = setting(6.0, "Metres a line of `class_labels` (a road, a river) is wide.", section="data")
    class_weights: bool = setting(False, "Weigh each class's pixels in the loss by the inverse square root of its"
                                  " share of the training labels, so rare classes count more.",
                                  section="training")
    ignore_index: int | None = setting(None, "A mask value left out of the loss (e.g. 255 for unlabelled).",
                                       section="data")
    val_labels: str | None = setting(None, "Footprints of the `val_dir` scenes.", section="data",
                                     default_text="`labels`")
    epochs: int = setting(1000, "Epochs of `samples_per_epoch` tiles (with the time limit, a bound for fast"
                          " machines).", section="training")
    batch_size: int = setting(8, "Tiles per step.", section="training")
    tile_size: int = setting(256, "Training crop side, pixels.", section="training")
    loss: str = setting("auto", "auto (dice from 5 minutes of `time_limit` on, softmax below: the best measured;"
                        " pixel-softmax with a contact gap, as footprints have by default; dice+ce with several"
                        " classes), softmax, pixel-softmax, dice or dice+ce.", section="training")
    val_fraction: float = setting(0.2, "Share of pairs (or of the labelled area) held out for validation.",
                                  section="data")
    val_dir: str | None = setting(None, "A separate labelled folder for validation (with `labels`: separate"
                                  " scenes).", section="data")
    folds: int = setting(0, "k-fold cross-validation: the number of folds (0: none).", cli=False)
    fold: int = setting(0, "The fold held out, 0 … folds − 1.", cli=False)
    seed: int = setting(0, "Seed of the split, the initial weights and the tiles.", section="training")
    device: str = setting("auto", "Where torch runs: auto picks CUDA when there is one.", section="performance",
                          choices=DEVICES)
    precision: str = setting("auto", "auto: bf16 on a CPU that has it, AMP on CUDA, else fp32.",
                             section="performance", choices=PRECISIONS)
    # the original project's 1e-4…1e-5 converges far too slowly on a CPU budget
    lr_max: float = setting(1e-3, "Top of the cyclic learning rate.", section="training")
    lr_min: float = setting(1e-4, "Bottom of the cyclic learning rate.", section="training")
    encoder_lr: float = setting(1.0, "The pretrained encoder's learning rate, as a multiple of `lr_max`/`lr_min`.",
                                section="training")
    # ImageNet-pretrained EfficientNet-Lite0: the best measured on the reference tiles at equal steps and
    # equal CPU time (docs/model-card.md); "resnet34" was the default before it
    encoder: str = setting("efficientnet-lite0", "The contracting path: EfficientNet-Lite0 or -Lite2"
                           " (ImageNet-pretrained, from an installed package), a torchvision ResNet (random weights)"
                           " or the paper's plain convolutions ('unet', sized by `depth`).", section="network",
                           choices=ENCODERS)
    pretrained: bool | None = setting(None, "Start the encoder from its ImageNet weights.", section="network",
                                      flag="--pretrained/--no-pretrained",
                                      default_text="yes for an efficientnet-lite encoder")
    depth: int | None = setting(None, "Levels of the plain U-Net (`encoder` unet; the paper: 5).", section="network",
                                default_text=str(DEFAULT_DEPTH))
    width: int = setting(16, "Filters in the plain U-Net's first level (the paper: 64), or in the last"
                         " (narrowest) decoder level with an encoder.", section="network")
    norm: str = setting("batch", "Normalisation layers.", section="network", choices=("instance", "batch", "none"))
    samples_per_epoch: int | None = setting(None, "Augmented tiles per epoch.", section="training",
                                            default_text="images, at least 8 batches")
    loader_workers: int | None = setting(None, "Processes cutting and augmenting training tiles beside the"
                                         " training loop.", section="performance",
                                         default_text="on CUDA the cores less one, at most 4; on a CPU none")
    # minutes: the pretrained Lite0 U-Net's plateau on the 2-core development CPU (docs/model-card.md)
    time_limit: float | None = setting(15.0, "Stop cleanly after this many minutes (per fold with cv); 0: no limit,"
                                       " `epochs` alone.", section="everyday")
    photometric: bool = setting(True, "Colour jitter and blur beside flips and rotation.", section="training",
                                flag="--photometric/--no-photometric")
    rotation: str = setting("any", "Rotation of the training tiles: any angle (0–360°, bilinear) or quarter turns.",
                            section="training", choices=("any", "quarter"))
    nodata: float | None = setting(None, "A value marking missing imagery in every band (e.g. 0 for blanked-out"
                                   " black): left out of the loss, and remembered by the model for predict.",
                                   section="data")
    select_best: bool = setting(True, "model.pt is the epoch of best validation IoU (else the last).", cli=False)
    average: int = setting(5, "model.pt = the mean of the weights at the last N ends of a learning-rate cycle"
                           " (every 4 epochs; stochastic weight averaging) instead of the best epoch; 0: off.",
                           section="training")
    init: str | None = setting(None, "Fine-tune from this model.pt, or 'starter' (the model shipped with geoseg):"
                               " its network, weights, band normalisation and pixel size are the start.",
                               section="everyday")
    resume: bool = setting(False, "Continue the run in `out_dir` from its last.pt.", section="everyday")
    accept_changes: bool = setting(False, "With `resume`: go on although the data, split, sampling or schedule"
                                   " differ from the run's (they are listed, and recorded in config.json).")
    overwrite: bool = setting(False, "Replace a non-empty run folder.", section="output")

    def resolved_loss(self, classes: int = 2) -> str:
        """The loss to train with: ``loss``, or for ``"auto"`` the best measured on the reference
        roof tiles for the budget (5-fold held-out IoU, README Figures): dice (with weight
        averaging) from 5 minutes of training on, plain softmax below (it led at 1.8 min).
        With ``contact_gap`` the paper's weighted cross-entropy, which weighs the gap between
        touching roofs most: trained with dice, the gap's pixels came out roof (probability
        0.990, as without the gap; ``bench/terraces.py``), as if it were not there. With more
        than two ``classes``, dice plus cross-entropy: on the synthetic five-class town at 61
        steps it scored a mean IoU of 0.627 against 0.473 (softmax) and 0.535 (dice, which
        leaves background unlearnt; docs/guides/classes.md)."""
        if self.loss != "auto":
            return self.loss
        if classes > 2:
            return "dice+ce"
        if self.gap() > 0:
            return "pixel-softmax"
        return "softmax" if self.time_limit is not None and self.time_limit < AUTO_DICE_MINUTES else "dice"

    def gap(self) -> int:
        """The contact gap to train with: ``contact_gap``, or (None) ``CONTACT_GAP`` pixels when
        learning from footprints, which hold touching roofs apart, and 0 from tiles' masks."""
        if self.contact_gap is not None:
            return self.contact_gap
        return CONTACT_GAP if self.labels and not self.class_column and not self.class_labels else 0

    def check(self) -> None:
        if self.resolved_loss() not in LOSS_NAMES:
            raise InputError(f"unknown loss {self.loss!r}; choose one of auto, {', '.join(LOSS_NAMES)}")
        for name in ("epochs", "batch_size", "tile_size"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"`val_fraction` must be in [0, 1), got {self.val_fraction}")
        if self.rotation not in ("any", "quarter"):
            raise InputError(f"`rotation` must be any or quarter, got {self.rotation!r}")
        if not 0 < self.encoder_lr <= 10:
            raise InputError(f"`encoder_lr` is a multiple of the learning rate in (0, 10], got {self.encoder_lr}")
        if not 0 < self.lr_min <= self.lr_max < math.inf:
            raise InputError(f"need 0 < `lr_min` <= `lr_max`, got {self.lr_min} and {self.lr_max}")
        if self.folds == 1 or self.folds < 0 or (self.folds and not 0 <= self.fold < self.folds):
            raise InputError(f"need `folds` >= 2 and 0 <= fold < folds, got fold {self.fold} of {self.folds}")
        if not 0.0 <= self.positive_fraction <= 1.0:
            raise InputError(f"`positive_fraction` must be in [0, 1], got {self.positive_fraction}")
        if self.gsd is not None and not 0 < self.gsd < math.inf:
            raise InputError(f"`gsd` must be a positive number of metres per pixel, got {self.gsd}")
        if self.contact_gap is not None and self.contact_gap < 0:
            raise InputError(f"`contact_gap` must be 0 (off) or a number of pixels, got {self.contact_gap}")
        if self.ignore_index is not None and not 0 <= self.ignore_index <= 255:
            raise InputError(f"`ignore_index` must be a mask value 0…255, got {self.ignore_index}")
        for item in self.class_labels or ():
            if with_class(item)[1] is None:
                raise InputError(f"`class_labels` {item!r}: give FILE:CLASS, e.g. roads.gpkg:road")
        if self.class_labels and not self.labels:
            raise InputError("`class_labels` add classes to `labels`: give `images` with `labels` too")
        if not 0 < self.line_width < math.inf:
            raise InputError(f"`line_width` must be a positive number of metres, got {self.line_width}")
        if self.labels_class is not None and (not self.labels or self.class_column or not self.labels_class.strip()):
            raise InputError("`labels_class` names the class of every `labels` polygon: give it with `labels` and"
                             " without `class_column`")
        if self.class_column is not None and not self.labels:
            raise InputError("`class_column` names the labels' column of classes: it needs `labels`")
        if self.contact_gap and (self.class_column or self.class_labels):
            raise InputError("`contact_gap` separates touching buildings of one class; leave it out with"
                             " `class_column`")
        if self.contact_gap and not self.labels:
            raise InputError("`contact_gap` separates touching footprints: it needs `images` and `labels` (masks of"
                             " tiles hold no separate roofs); leave it out for tiles")
        if not 0 <= self.extent_buffer < math.inf:
            raise InputError(f"`extent_buffer` must be a finite number of metres, 0 or more, got {self.extent_buffer}")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise InputError(f"`loader_workers` must be 0 or more, got {self.loader_workers}")
        if self.width < 1:
            raise InputError(f"`width` must be at least 1, got {self.width}")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise InputError(f"`samples_per_epoch` must be at least 1, got {self.samples_per_epoch}")
        if self.time_limit is not None and not 0 <= self.time_limit < math.inf:
            raise InputError(f"`time_limit` must be a number of minutes (0: no limit), got {self.time_limit}")
        if self.average < 0:
            raise InputError(f"`average` must be 0 (off) or a number of learning-rate cycles, got {self.average}")
        if self.resume and self.overwrite:
            raise InputError("`resume` continues a run and `overwrite` replaces it; pass one of them")
        if self.encoder not in ENCODERS:
            raise InputError(f"`encoder` must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.pretrained and not self.encoder.startswith("efficientnet") and not self.init:
            raise InputError(f"the {self.encoder} encoder has no pretrained weights in geoseg; choose `encoder`"
                             " efficientnet-lite0 (or -lite2), or leave out `pretrained`")
        if self.depth is not None and self.encoder != "unet" and not self.init:
            raise InputError(f"`depth` sets the levels of the plain U-Net; a {self.encoder} encoder has its own"
                             f" ({RESNET_LEVELS}): leave `depth` out, or add `encoder` unet")
        multiple = 2 ** (self.levels - 1)
        if self.encoder != "unet" and self.norm == "instance" and self.tile_size < 2 * multiple and not self.init:
            raise InputError(f"`tile_size` {self.tile_size} leaves one pixel at the bottom of a {self.encoder}"
                             f" encoder, which instance norm cannot normalise; use `tile_size` {2 * multiple} or more")
        if self.tile_size % multiple:
            raise InputError(
                f"`tile_size` {self.tile_size} is not a multiple of {multiple} (what a network of {self.levels}"
                f" levels needs); use e.g. {max(multiple, self.tile_size // multiple * multiple)}"
            )

    @property
    def pretrained_encoder(self) -> bool:
        """Whether the encoder starts from ImageNet weights: ``pretrained``, or (None) whenever
        the encoder has them (the EfficientNet-Lite ones). A fine-tuned run starts from its
        ``init`` model instead."""
        if self.init:
            return False
        return self.encoder.startswith("efficientnet") if self.pretrained is None else self.pretrained

    @property
    def levels(self) -> int:
        """Levels of the network: ``depth`` (4 when not given) for the plain U-Net, the ResNet's own else."""
        if self.encoder != "unet":
            return RESNET_LEVELS
        return DEFAULT_DEPTH if self.depth is None else self.depth
