"""The typed configurations of geoseg's jobs: frozen dataclasses whose fields carry their
default, type and help (``fields.setting``), so a default changes here and only here and the
command line builds its options from them. No torch here: ``geoseg --help`` stays instant.

``TrainConfig`` (``geoseg train``/``cv``), ``TileOptions`` (how a scene is cut and run) and
``VectorizeOptions`` (probability → polygons)."""

from geoseg.config.fields import DEVICES, PRECISIONS, SECTIONS, default_of, meta, setting
from geoseg.config.predict import (
    FILL_HOLES_M2,
    FILL_HOLES_PX,
    MAX_OPENING,
    MAX_TILE,
    MIN_AREA_PX,
    SPLIT_SEED,
    TileOptions,
    VectorizeOptions,
    split_for,
)
from geoseg.config.train import (
    AUTO_DICE_MINUTES,
    CONTACT_GAP,
    DEFAULT_DEPTH,
    ENCODERS,
    LOSS_NAMES,
    PRESETS,
    RESNET_LEVELS,
    STRETCH_PERCENTILES,
    TrainConfig,
    with_class,
)

__all__ = [
    "AUTO_DICE_MINUTES", "CONTACT_GAP", "DEFAULT_DEPTH", "DEVICES", "ENCODERS", "FILL_HOLES_M2", "FILL_HOLES_PX",
    "LOSS_NAMES", "MAX_OPENING", "MAX_TILE", "MIN_AREA_PX", "PRECISIONS", "PRESETS", "RESNET_LEVELS", "SECTIONS",
    "SPLIT_SEED", "STRETCH_PERCENTILES", "TileOptions", "TrainConfig", "VectorizeOptions", "default_of", "meta",
    "setting", "split_for", "with_class",
]
