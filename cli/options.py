"""Options shared by the commands, built once from the typed configs (``geoseg.config``).

Each option's default is read from its dataclass field, so it is written in one place;
only the help text lives here. Torch is not imported (``geoseg --help`` stays instant).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import click

from geoseg.config import (
    CONTACT_GAP,
    DEFAULT_DEPTH,
    DEVICES,
    ENCODERS,
    FILL_HOLES_M2,
    FILL_HOLES_PX,
    MIN_AREA_PX,
    PRECISIONS,
    PRESETS,
    SPLIT_SEED,
    TileOptions,
    TrainConfig,
    VectorizeOptions,
)


def default(cls, name: str):
    """The default of field ``name`` of the dataclass ``cls``."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def field_option(cls, name: str, help: str, *flags: str, **kw) -> Callable:
    """A click option for ``cls.name``, its default taken from the field (None: no default shown)."""
    value = default(cls, name)
    flags = flags or (f"--{name.replace('_', '-')}",)
    if isinstance(value, bool) and "is_flag" not in kw:
        kw["is_flag"] = True
    if value is not None:
        kw.setdefault("default", value)
        kw.setdefault("show_default", True)
    elif "type" not in kw and "is_flag" not in kw and not any("/" in f for f in flags):
        kw["type"] = {"tile_size": int, "overlap": int, "batch_size": int, "decode_threads": int}.get(name, float)
    return click.option(*flags, name, help=help, **kw)


def options(*decorators: Callable) -> Callable:
    """Apply several option decorators in the order written."""
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


device = click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICES),
                      help="Where torch runs: auto picks CUDA when there is one.")
precision = click.option("--precision", default="auto", show_default=True, type=click.Choice(PRECISIONS),
                         help="auto: bf16 on a CPU that has it, AMP on CUDA, else fp32.")
overwrite = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
quiet = click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")

T = TrainConfig
# what ``geoseg train`` and ``geoseg cv`` share
training = options(
    field_option(T, "epochs", "Epochs of --samples-per-epoch tiles."),
    field_option(T, "batch_size", "Tiles per step."),
    field_option(T, "tile_size", "Training crop side, pixels."),
    field_option(T, "lr_max", "Top of the cyclic learning rate."),
    field_option(T, "lr_min", "Bottom of the cyclic learning rate."),
    field_option(T, "rotation", "Rotation of the training tiles: any angle (0–360°, bilinear) or quarter turns.",
                 type=click.Choice(["any", "quarter"])),
    field_option(T, "encoder_lr", "The pretrained encoder's learning rate, as a multiple of --lr-max/--lr-min."),
    field_option(T, "encoder", "The contracting path: EfficientNet-Lite0 or -Lite2 (ImageNet-pretrained, from an"
                 " installed package), a torchvision ResNet (random weights) or the paper's plain convolutions"
                 " ('unet', sized by --depth).", type=click.Choice(ENCODERS)),
    click.option("--pretrained/--no-pretrained", default=None,
                 help="Start the encoder from its ImageNet weights [default: yes for an efficientnet-lite"
                 " encoder]."),
    field_option(T, "depth", f"Levels of the plain U-Net (--encoder unet; the paper: 5) [default: {DEFAULT_DEPTH}].",
                 type=int),
    field_option(T, "width", "Filters in the plain U-Net's first level (the paper: 64), or in the last (narrowest)"
                 " decoder level with a ResNet encoder."),
    field_option(T, "norm", "Normalisation layers.", type=click.Choice(["instance", "batch", "none"])),
    field_option(T, "samples_per_epoch", "Augmented tiles per epoch [default: images, at least 8 batches].",
                 type=int),
    field_option(T, "time_limit", "Stop cleanly after this many minutes (per fold with cv); 0: no limit, --epochs"
                 " alone."),
    field_option(T, "loader_workers", "Processes cutting and augmenting training tiles beside the training loop"
                 " [default: on CUDA the cores less one, at most 4; on a CPU none].", type=int),
    field_option(T, "average", "model.pt = the mean of the weights at the last N ends of a learning-rate cycle"
                 " (every 4 epochs; stochastic weight averaging) instead of the best epoch; 0: off."),
    field_option(T, "nodata", "A value marking missing imagery in every band (e.g. 0 for blanked-out black):"
                 " left out of the loss, and remembered by the model for predict."),
    field_option(T, "seed", "Seed of the split, the initial weights and the tiles."),
    device,
    precision,
)

# what ``geoseg train`` and ``geoseg cv`` take beside DATA_DIR: scenes and their footprints
scenes = options(
    click.option("--images", help="With --labels: scenes of any size (a GeoTIFF/COG/VRT, a folder, or a quoted"
                 " glob), read in windows."),
    click.option("--labels", help="Building footprints (GeoPackage, GeoJSON, Shapefile, FlatGeobuf; any CRS)"
                 " labelling --images."),
    field_option(T, "labels_layer", "The layer of a multi-layer --labels file.", type=str),
    field_option(T, "labels_where", "OGR SQL filter of the footprints, e.g. \"building IS NOT NULL\".", type=str),
    field_option(T, "label_extent", "Polygons where the footprints are complete [default: the footprints buffered"
                 " by --extent-buffer]; elsewhere no pixel is taught as background.", type=str),
    field_option(T, "extent_buffer", "Metres around each footprint taken as labelled, without --label-extent."),
    field_option(T, "positive_fraction", "Share of training windows centred on a footprint (the rest uniform)."),
    field_option(T, "contact_gap", "Pixels between touching footprints taught as background, so terraced roofs"
                 f" come out apart (with --loss pixel-softmax, which auto then picks) [default: {CONTACT_GAP} with"
                 " footprints]; 0: off.", type=int),
    field_option(T, "gsd", "Training pixel size, metres [default: the finest scene's]; scenes of other sizes are"
                 " resampled on read."),
)


def apply_preset(name: str | None, opts: dict) -> dict:
    """``opts`` with a named recipe's settings (``config.PRESETS``) for the options not given on
    the command line."""
    from click.core import ParameterSource

    if not name:
        return opts
    ctx = click.get_current_context()
    given = {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    return {**opts, **{k: v for k, v in PRESETS[name].items() if k not in given}}


loss = field_option(T, "loss", "auto (dice from 5 minutes of --time-limit on, softmax below: the best"
                    " measured; pixel-softmax with a contact gap, as footprints have by default), softmax,"
                    " pixel-softmax, dice or dice+ce.")
preset = click.option("--preset", type=click.Choice(sorted(PRESETS)),
                      help="A named recipe for the options not given: 'original' is the original roof project's"
                      " (softmax, lr 1e-4…1e-5, plain U-Net of depth 5, width 64, instance norm, no averaging).")


def data_source(data_dir, images, labels) -> dict:
    """``TrainConfig``'s ``data_dir`` and ``labels`` from DATA_DIR, or --images with --labels."""
    from geoseg.errors import InputError

    if (data_dir is None) == (images is None) or (images is None) != (labels is None):
        raise InputError("give DATA_DIR (images + masks), or --images SCENES with --labels FOOTPRINTS")
    return {"data_dir": str(data_dir or images), "labels": str(labels) if labels else None}


tiling = options(
    field_option(TileOptions, "tile_size", "Tile side, pixels [default: 512, or the training tile size]."),
    field_option(TileOptions, "overlap", "Margin each tile shares with its neighbours, pixels [default: 32]."),
    field_option(TileOptions, "batch_size", "Tiles per forward pass [default: 1 on CPU, 8 on CUDA]."),
    field_option(TileOptions, "blend", "Blending window: hann, linear or mean."),
    field_option(TileOptions, "tta", "Test-time augmentation: average the 8 flips and quarter turns of each tile"
                 " (8x slower)."),
    field_option(TileOptions, "compile", "torch.compile the model: its forward pass about 1.2x faster after 3 s"
                 " (13 s the first time on a machine) of compiling; pays from about 230 MP of scene.", "--compile"),
    field_option(TileOptions, "prefetch", "Read tiles in a thread ahead of the model [default: on CUDA and on"
                 " CPUs of 8+ cores].", "--prefetch/--no-prefetch", default=None),
    field_option(TileOptions, "decode_threads", "GDAL threads decoding the scene's blocks [default: on CUDA every"
                 " core, on a CPU torch's threads]."),
    field_option(TileOptions, "gsd", "The scene's pixel size, metres, where it cannot say (PNG, JPEG) [default:"
                 " from its georeference]; a scene of another size than the model's is resampled to it.", "--gsd"),
    field_option(TileOptions, "nodata", "A value marking missing imagery in every band: no roofs there [default:"
                 " the value the model was trained with]."),
    device,
    precision,
)

V = VectorizeOptions
vectorizing = options(
    field_option(V, "threshold", "Roof probability cut."),
    field_option(V, "min_area", f"Drop polygons under this area, m² [default: {MIN_AREA_PX} pixels]."),
    field_option(V, "fill_holes", f"Fill holes under this area, m² [default: pinholes, under {FILL_HOLES_PX} pixels'"
                 f" area and at most {FILL_HOLES_M2:g} m²; 0: none]."),
    field_option(V, "simplify", "Simplification tolerance, metres [default: one pixel; 0: none]."),
    field_option(V, "opening", "Radius of a morphological opening of the mask, metres: splits roofs joined by a"
                 " thin bridge."),
    field_option(V, "regularize", "Snap outlines to right angles along each roof's dominant direction."),
    field_option(V, "split", "Cut touching roofs (terraces, semi-detached pairs) apart at the probability's"
                 " valleys, seeding each roof where the probability is at least this [default:"
                 f" {SPLIT_SEED:g} for a model trained with --contact-gap, else off; 0: off].", type=float),
    field_option(V, "trace_workers", "Processes tracing polygons beside the model [default: none on a CPU, where"
                 " the model keeps every core busy; on CUDA the cores less two, at most 4].", type=int),
    field_option(V, "trace_threads", "Threads tracing polygons beside the prediction [default: none on one core;"
                 " one on a CPU; on CUDA the cores, at most 4].", type=int),
)


def pick(cls, values: dict) -> dict:
    """The entries of ``values`` that are fields of ``cls`` (removed from ``values``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: values.pop(k) for k in list(values) if k in names}
