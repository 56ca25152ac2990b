"""``geoseg train``: learn roof masks from labelled tiles (``train.fit``; ``train.processes`` with --nproc)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from . import options as o


@click.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@o.scenes
@o.field_option(o.T, "val_labels", "Footprints of the --val-dir scenes [default: --labels].", type=str)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: model.pt (best on validation), last.pt, metrics.csv, config.json.")
@o.field_option(o.T, "val_fraction", "Share of pairs held out for validation.")
@click.option("--val-dir", type=click.Path(path_type=Path),
              help="A separate labelled folder for validation (with --labels: separate scenes).")
@o.training
@o.loss
@o.preset
@click.option("--no-photometric", is_flag=True, help="Flips and rotation only; no colour jitter or blur.")
@click.option("--nproc", default=1, show_default=True,
              help="Train data-parallel in N processes (gloo on CPU, one per GPU with NCCL); or run under torchrun.")
@o.field_option(o.T, "init", "Fine-tune from this model.pt, or 'starter' (the model shipped with geoseg): its"
                " network, weights, band normalisation and pixel size are the start.", type=str)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--accept-changes", is_flag=True, help="With --resume: go on although the data, split, sampling or"
              " schedule differ from the run's (they are listed, and recorded in config.json).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty run folder.")
@o.quiet
def train(data_dir: Path | None, images: str | None, labels: str | None, out_dir: Path, val_dir: Path | None,
          no_photometric: bool, quiet: bool, nproc: int, preset: str | None, **opts) -> None:
    """Train a U-Net on DATA_DIR (images/ + masks/, or train_X/ + train_Y/, matched by name),
    or on scenes and footprints: --images 'ortho/*.tif' --labels buildings.gpkg."""
    from geoseg.config import TrainConfig
    from geoseg.train.loop import fit
    from geoseg.train.processes import spawn

    config = TrainConfig(**o.data_source(data_dir, images, labels), out_dir=str(out_dir),
                         val_dir=str(val_dir) if val_dir else None, photometric=not no_photometric,
                         **o.apply_preset(preset, opts))
    run = spawn(config, nproc, progress=not quiet) if nproc > 1 else fit(config, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the run, not one per process
        click.echo(f"model: {run / 'model.pt'}")
