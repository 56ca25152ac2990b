"""``geoseg cv``: k-fold cross-validated held-out scores, one row per loss."""

from __future__ import annotations

from pathlib import Path

import click

from . import options as o


@click.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@o.scenes
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the run of every loss and fold.")
@click.option("--folds", default=5, show_default=True)
@click.option("--loss", "losses", default=o.default(o.T, "loss"), show_default=True,
              help="One loss or several to compare, comma-separated: auto,dice,pixel-softmax,softmax,dice+ce.")
@o.training
@click.option("--tta", is_flag=True, help="Score the held-out images with test-time augmentation (the 8 flips and"
              " quarter turns averaged, as 'geoseg predict --tta'); training is unchanged.")
@click.option("--overwrite", is_flag=True, help="Replace existing fold runs under --out.")
def cv(data_dir: Path | None, images: str | None, labels: str | None, out_dir: Path, folds: int, losses: str,
       tta: bool, **opts) -> None:
    """Cross-validate on DATA_DIR (labelled tiles, folds of whole tiles) or on --images with
    --labels (scenes and footprints, spatial folds): mean and spread of held-out pixel IoU
    for each loss."""
    from geoseg.config import TrainConfig
    from geoseg.errors import InputError
    from geoseg.train.crossval import cross_validate

    if folds < 2:
        raise InputError(f"--folds must be at least 2, got {folds}")
    base = TrainConfig(**o.data_source(data_dir, images, labels), out_dir=str(out_dir), **opts)
    base.check()
    names = [s.strip() for s in losses.split(",") if s.strip()]
    results = cross_validate(base, folds, names, report=click.echo, tta=tta)
    click.echo(f"\n{'loss':14s} {'mean IoU':>8s} {'± std':>7s}  {'mean F1':>7s}  folds (held-out IoU)  minutes")
    for r in results:
        folds_text = " ".join(f"{v:.3f}" for v in r.fold_iou)
        mean_f1 = sum(r.fold_f1) / len(r.fold_f1)
        click.echo(f"{r.loss:14s} {r.mean_iou:8.4f} {r.std_iou:7.4f}  {mean_f1:7.4f}  {folds_text}"
                   f"  {r.seconds / 60:.1f}")
