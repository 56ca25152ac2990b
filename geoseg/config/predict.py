"""The options of ``geoseg predict``: ``TileOptions`` (how a scene is cut and run) and
``VectorizeOptions`` (probability → polygons), each field with its default and help."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from geoseg.config.fields import DEVICES, PRECISIONS, setting
from geoseg.errors import InputError

MAX_OPENING = 50.0  # m: an opening radius beyond any bridge between two roofs

MIN_AREA_PX = 20  # polygons under this many pixels' area are dropped unless --min-area says otherwise
# --fill-holes by default: a hole under 20 pixels' area is a pinhole of the probability (the terraced
# towns' roofs, which have no holes, held 29-49 of 0.18-1.9 m² at 0.3 m; filled, area IoU 0.888 → 0.890
# and 0.888 → 0.891, object F1 the same with the cut on), and none under 2 m² is a courtyard at any
# pixel size
FILL_HOLES_PX = 20
FILL_HOLES_M2 = 2.0
SPLIT_SEED = 0.86  # --split for a model taught contacts: the best object F1 of 0.71…0.94 on a validation town



MAX_TILE = 4096  # px: a 4096² tile's first activations take 0.5–1 GiB each; larger ones may not fit


@dataclass(frozen=True)
class TileOptions:
    """How a scene is cut and run. None picks, by measurement (``bench/``): tiles of 512 px
    (the training tile size for instance-normalised models, whose output depends on the
    tile), a 32 px margin (computing 1.31× the scene at 512 px; seams stay invisible:
    99.99 % agreement with one whole-scene pass), batch 1 on a CPU (fastest on 2 cores)
    and 8 on CUDA."""

    tile_size: int | None = setting(None, "Tile side, pixels.", section="performance",
                                    default_text="512, or the training tile size")
    overlap: int | None = setting(None, "Margin each tile shares with its neighbours, pixels.",
                                  section="performance", default_text="32")
    batch_size: int | None = setting(None, "Tiles per forward pass.", section="performance",
                                     default_text="1 on a CPU, 8 on CUDA")
    blend: str = setting("hann", "Blending window of overlapping tiles.", choices=("hann", "linear", "mean"))
    device: str = setting("auto", "Where torch runs: auto picks CUDA when there is one.", section="performance",
                          choices=DEVICES)
    precision: str = setting("auto", "auto: bf16 on a CPU that has it, AMP on CUDA, else fp32.",
                             section="performance", choices=PRECISIONS)
    bands: tuple[int, ...] | None = setting(None, "Band numbers to feed the model, e.g. 1,2,3.", section="data",
                                            default_text="all")
    nodata: float | None = setting(None, "A value marking missing imagery in every band: no roofs there.",
                                   section="data", default_text="the value the model was trained with")
    tta: bool = setting(False, "Test-time augmentation: average the 8 flips and quarter turns of each tile (8x"
                        " slower).")
    compile: bool = setting(False, "torch.compile the model: its forward pass about 1.2x faster after 3 s (13 s the"
                            " first time on a machine) of compiling; pays from about 230 MP of scene.",
                            section="performance")
    prefetch: bool | None = setting(None, "Read tiles in a thread ahead of the model.", section="performance",
                                    flag="--prefetch/--no-prefetch", default_text="on CUDA and on CPUs of 8+ cores")
    decode_threads: int | None = setting(None, "GDAL threads decoding the scene's blocks.", section="performance",
                                         default_text="on CUDA every core, on a CPU torch's threads")
    gsd: float | None = setting(None, "The scene's pixel size, metres, where it cannot say (PNG, JPEG); a scene of"
                                " another size than the model's is resampled to it.", section="data",
                                default_text="from its georeference")

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

    threshold: float = setting(0.5, "Roof probability cut.", section="everyday")
    min_area: float | None = setting(None, "Drop polygons under this area, m².", section="everyday",
                                     default_text=f"{MIN_AREA_PX} pixels' area")
    fill_holes: float | None = setting(None, "Fill holes under this area, m²; 0: none.", section="post-processing",
                                       default_text=f"pinholes, under {FILL_HOLES_PX} pixels' area and at most"
                                       f" {FILL_HOLES_M2:g} m²")
    simplify: float | None = setting(None, "Simplification tolerance, metres; 0: none.", section="post-processing",
                                     default_text="one pixel")
    opening: float = setting(0.0, "Radius of a morphological opening of the mask, metres: splits roofs joined by a"
                             " thin bridge.", section="post-processing")
    regularize: bool = setting(False, "Snap outlines to right angles along each roof's dominant direction.",
                               section="everyday")
    regularize_classes: tuple[str, ...] | None = setting(None, "With a model of several classes: the classes"
                                                         " `regularize` squares (buildings, not fields),"
                                                         " comma-separated.", section="post-processing",
                                                         default_text="every class")
    class_thresholds: tuple[tuple[str, float], ...] | None = setting(
        None, "With a model of several classes: the probability a class must reach, NAME=P comma-separated (e.g."
        " road=0.3,water=0.6); a pixel takes the most probable class that reaches its own (the classes not named:"
        " that beat background), background if none does.", section="post-processing",
        default_text="each pixel its most probable class")
    strip_rows: int | None = setting(None, "Rows traced at once.", cli=False, default_text="about 4 M pixels' worth")
    trace_workers: int | None = setting(None, "Processes tracing polygons beside the model.", section="performance",
                                        default_text="none on a CPU, where the model keeps every core busy; on CUDA"
                                        " the cores less two, at most 4")
    trace_threads: int | None = setting(None, "Threads tracing polygons beside the prediction.",
                                        section="performance",
                                        default_text="none on one core; one on a CPU; on CUDA the cores, at most 4")
    split: float | None = setting(None, "Cut touching roofs (terraces, semi-detached pairs) apart at the"
                                  " probability's valleys, seeding each roof where the probability is at least"
                                  " this; 0: off.", section="post-processing",
                                  default_text=f"{SPLIT_SEED:g} for a model trained with a contact gap, else off")

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"`threshold` must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.split not in (None, 0) and not self.threshold < self.split < 1.0:
            raise InputError(f"`split` must be 0 (off) or a probability above `threshold` ({self.threshold}) and"
                             f" below 1, got {self.split}")
        for name, p in self.class_thresholds or ():
            if not 0.0 < p < 1.0:
                raise InputError(f"`class_thresholds` {name}={p}: a probability must be between 0 and 1 (exclusive)")
        for name in ("trace_workers", "trace_threads"):
            if (getattr(self, name) or 0) < 0:
                raise InputError(f"`{name}` must be 0 or more, got {getattr(self, name)}")
        for name in ("min_area", "simplify", "fill_holes", "opening"):  # metres or m²: finite, 0 or more
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                raise InputError(f"`{name}` must be a finite number, 0 or more, got {value}")
        if self.opening > MAX_OPENING:
            raise InputError(f"`opening` {self.opening} m would open away every roof; use at most {MAX_OPENING} m")


def split_for(options: VectorizeOptions, contact_gap: int) -> VectorizeOptions:
    """``options`` with ``split`` decided: as given, or (None) ``SPLIT_SEED`` when the model
    was trained with a contact gap (its probability dips between touching roofs), else 0."""
    if options.split is not None:
        return options
    return dataclasses.replace(options, split=SPLIT_SEED if contact_gap > 0 else 0.0)
