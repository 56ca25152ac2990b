"""The typed configurations of geoseg's jobs: frozen dataclasses, each default written once.

``TrainConfig`` (``geoseg train``/``cv``), ``TileOptions`` (how a scene is cut and run)
and ``VectorizeOptions`` (probability → polygons), with the allowed devices and
precisions. The command line builds its options from these (``cli/options.py``), so a
default changes here and only here. No torch here: ``geoseg --help`` stays instant.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from geoseg.errors import InputError

AUTO_DICE_MINUTES = 5.0  # from this training budget on, "auto" picks dice (README, Figures)
# ``geoseg train --preset original``: the original roof project's recipe, for comparison
PRESETS = {"original": dict(loss="softmax", lr_max=1e-4, lr_min=1e-5, norm="instance", encoder="unet", depth=5,
                            width=64, average=0)}

# the contracting path of the U-Net: the paper's plain one, or a torchvision ResNet's (``model.ResNetUNet``)
ENCODERS = ("efficientnet-lite0", "efficientnet-lite2", "resnet18", "resnet34", "unet")
DEFAULT_DEPTH = 4  # the plain U-Net's levels when --depth is not given
RESNET_LEVELS = 6  # an encoder's levels (ResNet, EfficientNet-Lite): the input's size and 1/2 … 1/32
# a band's values mapped onto the 8-bit range an ImageNet encoder knows: training imagery that is not
# 8-bit (data.normalisation_of), and a scene of another data type than the model's training images
# (predict.scene_normalisation)
STRETCH_PERCENTILES = (1.0, 99.0)
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# pixels between touching footprints taught as background by default: with it (and the loss that
# teaches it) and --split at prediction, object F1 0.482 → 0.772 on synthetic towns with terraces
# (0.211 → 0.798 on the terraced houses), area IoU 0.954 → 0.888 (bench/terraces.py, 600 steps;
# at 1200 steps 0.921, terraced houses 0.933)
CONTACT_GAP = 2


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

    data_dir: str  # labelled tiles (images + masks); with ``labels``: scenes (a file, a folder or a glob)
    out_dir: str
    labels: str | None = None  # building footprints (any vector format) labelling the scenes of ``data_dir``
    labels_layer: str | None = None  # the layer of a multi-layer label file
    labels_where: str | None = None  # an OGR SQL filter of the footprints, e.g. "building IS NOT NULL"
    label_extent: str | None = None  # polygons where the footprints are complete; None: footprints + extent_buffer
    extent_buffer: float = 30.0  # m around each footprint taken as labelled when no label_extent is given
    # share of training windows centred on a footprint (the rest uniform): 0.75 scored best of 0.25/0.5/0.75
    # (bench/train_scenes.py positives: pixel IoU 0.510 / 0.535 / 0.577 at 100 steps)
    positive_fraction: float = 0.75
    gsd: float | None = None  # training pixel size, m; None: the finest scene's (tiles: unknown)
    # footprints only: pixels of a footprint within contact_gap/2 of another are taught as background, so
    # touching roofs come apart (scenes.contacts); masks of tiles hold no instances and are used as they are.
    # None: CONTACT_GAP with footprints, 0 with tiles (``gap``)
    contact_gap: int | None = None
    val_labels: str | None = None  # footprints of the ``val_dir`` scenes (default: ``labels``)
    epochs: int = 1000  # with the 15-minute limit, a bound for fast machines
    batch_size: int = 8
    tile_size: int = 256
    loss: str = "auto"  # "auto": the best measured for the budget (``resolved_loss``)
    val_fraction: float = 0.2
    val_dir: str | None = None
    folds: int = 0
    fold: int = 0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    lr_max: float = 1e-3  # the original project's 1e-4…1e-5 converges far too slowly on a CPU budget
    lr_min: float = 1e-4
    encoder_lr: float = 1.0  # the pretrained encoder's learning rate as a multiple of the decoder's
    # ImageNet-pretrained EfficientNet-Lite0: the best measured on the reference tiles at equal steps and
    # equal CPU time (docs/MODEL_CARD.md); "resnet34" was the default before it
    encoder: str = "efficientnet-lite0"
    pretrained: bool | None = None  # the encoder starts from its ImageNet weights; None: when it has them
    depth: int | None = None  # levels of the plain U-Net (encoder "unet"); None: DEFAULT_DEPTH
    width: int = 16
    norm: str = "batch"
    samples_per_epoch: int | None = None
    loader_workers: int | None = None  # processes preparing training tiles; None: by device (runtime.loader_workers)
    # minutes: the pretrained Lite0 U-Net's plateau on the 2-core development CPU (docs/MODEL_CARD.md); 0: none
    time_limit: float | None = 15.0
    photometric: bool = True
    rotation: str = "any"  # "any": 0–360°, "quarter": quarter turns only (augment.ROTATIONS)
    nodata: float | None = None
    select_best: bool = True
    average: int = 5
    init: str | None = None  # fine-tune from this model.pt, or "starter"; its network replaces depth/width/norm
    resume: bool = False
    accept_changes: bool = False  # with resume: go on although the data or sampling differ from the run's
    overwrite: bool = False

    def resolved_loss(self) -> str:
        """The loss to train with: ``loss``, or for ``"auto"`` the best measured on the reference
        roof tiles for the budget (5-fold held-out IoU, README Figures): dice (with weight
        averaging) from 5 minutes of training on, plain softmax below (it led at 1.8 min).
        With ``contact_gap`` the paper's weighted cross-entropy, which weighs the gap between
        touching roofs most: trained with dice, the gap's pixels came out roof (probability
        0.990, as without the gap; ``bench/terraces.py``), as if it were not there."""
        if self.loss != "auto":
            return self.loss
        if self.gap() > 0:
            return "pixel-softmax"
        return "softmax" if self.time_limit is not None and self.time_limit < AUTO_DICE_MINUTES else "dice"

    def gap(self) -> int:
        """The contact gap to train with: ``contact_gap``, or (None) ``CONTACT_GAP`` pixels when
        learning from footprints, which hold touching roofs apart, and 0 from tiles' masks."""
        if self.contact_gap is not None:
            return self.contact_gap
        return CONTACT_GAP if self.labels else 0

    def check(self) -> None:
        from geoseg.train.losses import get_loss

        get_loss(self.resolved_loss())
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


MAX_TILE = 4096  # px: a 4096² tile's first activations take 0.5–1 GiB each; larger ones may not fit


@dataclass(frozen=True)
class TileOptions:
    """How a scene is cut and run. None picks, by measurement (``bench/``): tiles of 512 px
    (the training tile size for instance-normalised models, whose output depends on the
    tile), a 32 px margin (computing 1.31× the scene at 512 px; seams stay invisible:
    99.99 % agreement with one whole-scene pass), batch 1 on a CPU (fastest on 2 cores)
    and 8 on CUDA."""

    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    blend: str = "hann"
    device: str = "auto"
    precision: str = "auto"
    bands: tuple[int, ...] | None = None
    nodata: float | None = None  # None: the value the model was trained with, if any
    tta: bool = False  # average the 8 flips and quarter turns of each tile (8× the compute)
    compile: bool = False  # torch.compile the model: pays from about 230 MP of scene (``CompiledModel``)
    prefetch: bool | None = None  # read tiles in a thread ahead of the model; None: by device and cores
    decode_threads: int | None = None  # GDAL's threads decoding a read's blocks; None: by device and cores
    gsd: float | None = None  # the scene's pixel size, m, where it cannot say (PNG tiles); None: measured

    def __post_init__(self) -> None:
        for name in ("tile_size", "batch_size", "decode_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"`{name}` must be at least 1, got {value}; leave it out for the"
                                 " default")
        if self.tile_size is not None and self.tile_size > MAX_TILE:
            raise InputError(f"`tile_size` {self.tile_size} is over the largest tile geoseg runs ({MAX_TILE} px: a"
                             " tile's activations must fit in memory); leave it out for 512 px")
        if self.gsd is not None and not 0 < self.gsd < math.inf:
            raise InputError(f"`gsd` must be a positive number of metres per pixel, got {self.gsd}")
        if self.overlap is not None and self.overlap < 0:
            raise InputError(f"`overlap` must be 0 or more pixels, got {self.overlap}")


@dataclass(frozen=True)
class VectorizeOptions:
    """threshold: probability at or above which a pixel is roof.
    min_area: drop polygons smaller than this, in m² (pixels² for an ungeoreferenced scene);
    None: 20 pixels' area. simplify: tolerance in metres (pixels); None: one pixel side;
    0: keep the pixel outline. strip_rows: rows per strip read at once; None: about
    4 M pixels' worth, so memory does not grow with the scene's width either.
    split: touching roofs cut apart at the probability's valleys, each roof seeded where
    p ≥ this (``geoseg.split``); 0: never; None: as the model was trained
    (``split_for``: ``SPLIT_SEED`` for a model taught contacts with ``--contact-gap``, else never).
    fill_holes: fill holes under this area, m² (pixels²); 0: none; None: pinholes, under
    ``FILL_HOLES_PX`` pixels' area and at most ``FILL_HOLES_M2``."""

    threshold: float = 0.5
    min_area: float | None = None
    fill_holes: float | None = None
    simplify: float | None = None
    opening: float = 0.0  # radius of a morphological opening, m (pixels): splits roofs joined by a bridge
    regularize: bool = False
    strip_rows: int | None = None
    trace_workers: int | None = None  # processes tracing strips beside the main one; 0: none; None: by device
    trace_threads: int | None = None  # threads tracing beside the prediction; 0: none; None: by device and cores
    split: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"`threshold` must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.split not in (None, 0) and not self.threshold < self.split < 1.0:
            raise InputError(f"`split` must be 0 (off) or a probability above `threshold` ({self.threshold}) and"
                             f" below 1, got {self.split}")
        for name in ("trace_workers", "trace_threads"):
            if (getattr(self, name) or 0) < 0:
                raise InputError(f"`{name}` must be 0 or more, got {getattr(self, name)}")
        for name in ("min_area", "simplify", "fill_holes", "opening"):  # metres or m²: finite, 0 or more
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                raise InputError(f"`{name}` must be a finite number, 0 or more, got {value}")
        if self.opening > MAX_OPENING:
            raise InputError(f"`opening` {self.opening} m would open away every roof; use at most {MAX_OPENING} m")


MAX_OPENING = 50.0  # m: an opening radius beyond any bridge between two roofs

MIN_AREA_PX = 20  # polygons under this many pixels' area are dropped unless --min-area says otherwise
# --fill-holes by default: a hole under 20 pixels' area is a pinhole of the probability (the terraced
# towns' roofs, which have no holes, held 29-49 of 0.18-1.9 m² at 0.3 m; filled, area IoU 0.888 → 0.890
# and 0.888 → 0.891, object F1 the same with the cut on), and none under 2 m² is a courtyard at any
# pixel size
FILL_HOLES_PX = 20
FILL_HOLES_M2 = 2.0
SPLIT_SEED = 0.86  # --split for a model taught contacts: the best object F1 of 0.71…0.94 on a validation town


def split_for(options: VectorizeOptions, contact_gap: int) -> VectorizeOptions:
    """``options`` with ``split`` decided: as given, or (None) ``SPLIT_SEED`` when the model
    was trained with a contact gap (its probability dips between touching roofs), else 0."""
    if options.split is not None:
        return options
    return dataclasses.replace(options, split=SPLIT_SEED if contact_gap > 0 else 0.0)
