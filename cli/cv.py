"""``geoseg cv``: k-fold cross-validated held-out scores, one row per loss."""

from __future__ import annotations

from pathlib import Path

import click
import cloup

from geoseg.config import default_of

from . import options as o
from . import sources
from .options import T

# what a fold run decides itself: its validation, where it starts, and whether it goes on
NOT_IN_CV = ("val_fraction", "val_dir", "val_labels", "init", "resume", "out_dir", "loss")


@cloup.command(show_constraints=False)
@cloup.argument("data_dir", required=False, type=click.Path(path_type=Path))
@o.group("everyday",
         cloup.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                      help="Folder for the run of every loss and fold."),
         sources.images, sources.labels, *o.in_section(T, "everyday", skip=(*NOT_IN_CV, "labels")),
         cloup.option("--folds", default=5, show_default=True, help="Folds: each is held out once."),
         cloup.option("--loss", "losses", default=default_of(T, "loss"), show_default=True,
                      help="One loss or several to compare, comma-separated: auto,dice,pixel-softmax,softmax,dice+ce."),
         cloup.option("--tta", is_flag=True, help="Score the held-out images with test-time augmentation (the 8 flips"
                      " and quarter turns averaged, as 'geoseg predict --tta'); training is unchanged."))
@o.group("data", *o.in_section(T, "data", skip=NOT_IN_CV))
@o.group("training", *o.in_section(T, "training", skip=NOT_IN_CV))
@o.group("network", *o.in_section(T, "network"))
@o.group("performance", *o.in_section(T, "performance"))
@o.group("advanced", o.overwrite("existing fold runs under --out"))
def cv(data_dir: Path | None, images: str | None, labels: tuple[tuple[str, str | None], ...], out_dir: Path,
       folds: int, losses: str, tta: bool, **opts) -> None:
    """Cross-validate on DATA_DIR (labelled tiles, folds of whole tiles) or on --images with
    --labels (scenes and footprints, spatial folds): mean and spread of held-out pixel IoU
    for each loss."""
    from geoseg.config import TrainConfig
    from geoseg.errors import InputError
    from geoseg.train.crossval import cross_validate

    if folds < 2:
        raise InputError(f"--folds must be at least 2, got {folds}")
    base = TrainConfig(**sources.data_source(data_dir, images, labels, opts), out_dir=str(out_dir), **opts)
    base.check()
    names = [s.strip() for s in losses.split(",") if s.strip()]
    results = cross_validate(base, folds, names, report=click.echo, tta=tta)
    click.echo(f"\n{'loss':14s} {'mean IoU':>8s} {'± std':>7s}  {'mean F1':>7s}  folds (held-out IoU)  minutes")
    for r in results:
        folds_text = " ".join(f"{v:.3f}" for v in r.fold_iou)
        mean_f1 = sum(r.fold_f1) / len(r.fold_f1)
        click.echo(f"{r.loss:14s} {r.mean_iou:8.4f} {r.std_iou:7.4f}  {mean_f1:7.4f}  {folds_text}"
                   f"  {r.seconds / 60:.1f}")
