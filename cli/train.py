"""``geoseg train``: learn roof masks from labelled tiles or from scenes and footprints
(``train.fit``; ``train.processes.spawn`` with --nproc)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import cloup

from . import options as o
from . import sources
from .options import T

RUN_FOLDER = click.Path(file_okay=False, path_type=Path)


@cloup.command(show_constraints=False)
@cloup.argument("data_dir", required=False, type=click.Path(path_type=Path))
@o.group("everyday", o.opt(T, "out_dir", required=True, type=RUN_FOLDER), sources.images, sources.labels,
         *o.in_section(T, "everyday", skip=("out_dir", "labels")))
@o.group("data", *o.in_section(T, "data"))
@o.group("training", *o.in_section(T, "training"), o.preset)
@o.group("network", *o.in_section(T, "network"))
@o.group("performance", *o.in_section(T, "performance"),
         cloup.option("--nproc", default=1, show_default=True, help="Train data-parallel in N processes (gloo on"
                      " CPU, one per GPU with NCCL); or run under torchrun."))
@o.group("advanced", *o.in_section(T, "advanced"), *o.in_section(T, "output"), o.quiet)
def train(data_dir: Path | None, images: str | None, labels: tuple[tuple[str, str | None], ...], out_dir: Path,
          quiet: bool, nproc: int, preset: str | None, **opts) -> None:
    """Train a U-Net on DATA_DIR (images/ + masks/, or train_X/ + train_Y/, matched by name),
    or on scenes and footprints: --images 'ortho/*.tif' --labels buildings.gpkg."""
    from geoseg.config import TrainConfig
    from geoseg.train.loop import fit
    from geoseg.train.processes import spawn

    config = TrainConfig(**sources.data_source(data_dir, images, labels, opts), out_dir=str(out_dir),
                         **o.apply_preset(preset, opts))
    run = spawn(config, nproc, progress=not quiet) if nproc > 1 else fit(config, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the run, not one per process
        click.echo(f"model: {run / 'model.pt'}")
