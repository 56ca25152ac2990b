"""``geoseg train``: learn roof masks from labelled tiles."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option("--images", type=click.Path(path_type=Path), help="With --labels: a folder of georeferenced images.")
@click.option("--labels", type=click.Path(path_type=Path),
              help="Roof polygons (.gpkg, .geojson) rasterised onto each image of --images.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: model.pt (best on validation), last.pt, metrics.csv, config.json.")
@click.option("--epochs", default=50, show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--tile-size", default=256, show_default=True, help="Training crop side, pixels.")
@click.option("--loss", default="softmax", show_default=True, help="softmax, pixel-softmax, dice or dice+ce.")
@click.option("--val-fraction", default=0.2, show_default=True, help="Share of pairs held out for validation.")
@click.option("--val-dir", type=click.Path(path_type=Path), help="A separate labelled folder for validation.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "fp16"]))
@click.option("--lr-max", default=1e-4, show_default=True, help="Top of the cyclic learning rate.")
@click.option("--lr-min", default=1e-5, show_default=True, help="Bottom of the cyclic learning rate.")
@click.option("--depth", default=4, show_default=True, help="U-Net levels (the paper: 5).")
@click.option("--width", default=16, show_default=True, help="Filters in the first level (the paper: 64).")
@click.option("--norm", default="batch", show_default=True, type=click.Choice(["instance", "batch", "none"]))
@click.option("--samples-per-epoch", type=int, help="Augmented tiles per epoch [default: images, at least 8 batches].")
@click.option("--time-limit", type=float, help="Stop cleanly after this many minutes, keeping the best model.")
@click.option("--average", default=0, show_default=True,
              help="model.pt = the mean of the weights at the last N ends of a learning-rate cycle"
              " (every 4 epochs; stochastic weight averaging) instead of the best epoch; 0: off.")
@click.option("--nodata", type=float, help="A value marking missing imagery in every band (e.g. 0 for"
              " blanked-out black): left out of the loss, and remembered by the model for predict.")
@click.option("--no-photometric", is_flag=True, help="Flips and rotation only; no colour jitter or blur.")
@click.option("--nproc", default=1, show_default=True,
              help="Train data-parallel in N processes (gloo on CPU, one per GPU with NCCL); or run under torchrun.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty run folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
def train(data_dir: Path | None, images: Path | None, labels: Path | None, out_dir: Path, val_dir: Path | None,
          no_photometric: bool, quiet: bool, nproc: int, **opts) -> None:
    """Train a U-Net on DATA_DIR (images/ + masks/, or train_X/ + train_Y/, matched by name),
    or on --images DIR --labels roofs.gpkg (vector labels)."""
    from geoseg.errors import InputError
    from geoseg.train import TrainConfig, fit

    if (data_dir is None) == (images is None) or (images is None) != (labels is None):
        raise InputError("give DATA_DIR (images + masks), or --images DIR with --labels FILE")
    config = TrainConfig(data_dir=str(data_dir or images), labels=str(labels) if labels else None, out_dir=str(out_dir),
                         val_dir=str(val_dir) if val_dir else None, photometric=not no_photometric, **opts)
    if nproc > 1:
        from geoseg.parallel import spawn

        run = spawn(config, nproc, progress=not quiet)
    else:
        run = fit(config, progress=not quiet)
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the run, not one per process
        click.echo(f"model: {run / 'model.pt'}")
