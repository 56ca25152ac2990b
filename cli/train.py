"""``geoseg train``: learn roof masks from labelled tiles (``train.fit``; ``train.spawn`` with --nproc)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from . import options as o


@click.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option("--images", help="With --labels: scenes of any size (a GeoTIFF/COG/VRT, a folder, or a quoted glob),"
              " read in windows.")
@click.option("--labels", type=click.Path(path_type=Path),
              help="Building footprints (GeoPackage, GeoJSON, Shapefile, FlatGeobuf; any CRS) labelling --images.")
@o.field_option(o.T, "labels_layer", "The layer of a multi-layer --labels file.", type=str)
@o.field_option(o.T, "labels_where", "OGR SQL filter of the footprints, e.g. \"building IS NOT NULL\".", type=str)
@o.field_option(o.T, "label_extent", "Polygons where the footprints are complete [default: the footprints"
                " buffered by --extent-buffer]; elsewhere no pixel is taught as background.", type=str)
@o.field_option(o.T, "extent_buffer", "Metres around each footprint taken as labelled, without --label-extent.")
@o.field_option(o.T, "positive_fraction", "Share of training windows centred on a footprint (the rest uniform).")
@o.field_option(o.T, "gsd", "Training pixel size, metres [default: the finest scene's]; scenes of other sizes"
                " are resampled on read.")
@o.field_option(o.T, "val_labels", "Footprints of the --val-dir scenes [default: --labels].", type=str)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: model.pt (best on validation), last.pt, metrics.csv, config.json.")
@o.field_option(o.T, "loss", "softmax, pixel-softmax, dice or dice+ce.")
@o.field_option(o.T, "val_fraction", "Share of pairs held out for validation.")
@click.option("--val-dir", type=click.Path(path_type=Path),
              help="A separate labelled folder for validation (with --labels: separate scenes).")
@o.training
@click.option("--no-photometric", is_flag=True, help="Flips and rotation only; no colour jitter or blur.")
@click.option("--nproc", default=1, show_default=True,
              help="Train data-parallel in N processes (gloo on CPU, one per GPU with NCCL); or run under torchrun.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--accept-changes", is_flag=True, help="With --resume: go on although the data, split, sampling or"
              " schedule differ from the run's (they are listed, and recorded in config.json).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty run folder.")
@o.quiet
def train(data_dir: Path | None, images: str | None, labels: Path | None, out_dir: Path, val_dir: Path | None,
          no_photometric: bool, quiet: bool, nproc: int, **opts) -> None:
    """Train a U-Net on DATA_DIR (images/ + masks/, or train_X/ + train_Y/, matched by name),
    or on scenes and footprints: --images 'ortho/*.tif' --labels buildings.gpkg."""
    from geoseg.errors import InputError
    from geoseg.train import TrainConfig, fit, spawn

    if (data_dir is None) == (images is None) or (images is None) != (labels is None):
        raise InputError("give DATA_DIR (images + masks), or --images DIR with --labels FILE")
    config = TrainConfig(data_dir=str(data_dir or images), labels=str(labels) if labels else None, out_dir=str(out_dir),
                         val_dir=str(val_dir) if val_dir else None, photometric=not no_photometric, **opts)
    run = spawn(config, nproc, progress=not quiet) if nproc > 1 else fit(config, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the run, not one per process
        click.echo(f"model: {run / 'model.pt'}")
