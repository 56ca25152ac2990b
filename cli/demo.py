"""``geoseg demo``: train and predict on a synthetic town, and score the result."""

from __future__ import annotations

from pathlib import Path

import click
import cloup

from . import options as o
from .options import T


@cloup.command()
@cloup.option("--out", "out_dir", default="geoseg-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder for data, model and results.")
@cloup.option("--minutes", default=4.0, show_default=True, help="Training time budget.")
@cloup.option("--seed", default=0, show_default=True, help="Same seed, same town and the same run.")
@o.opt(T, "device")
@cloup.option("--overwrite", is_flag=True, help="Replace a non-empty --out folder.")
@cloup.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir: Path, minutes: float, seed: int, device: str, overwrite: bool, quiet: bool) -> None:
    """Make a synthetic town, train a U-Net on its tiles, predict an unseen scene, score it."""
    from geoseg.jobs.demo import run_demo

    r = run_demo(out_dir, minutes=minutes, seed=seed, device=device, overwrite=overwrite, progress=not quiet)
    click.echo(f"trained in {r.train_seconds / 60:.1f} min, predicted in {r.predict_seconds:.1f} s")
    click.echo(f"roofs: {r.polygons} predicted, {r.truth_polygons} true")
    click.echo(f"pixel IoU {r.pixel_iou:.3f}   object precision {r.object_precision:.3f}"
               f"  recall {r.object_recall:.3f}  F1 {r.object_f1:.3f} (IoU >= 0.5)")
    click.echo(f"polygons → {r.geojson}\npreview  → {r.preview}\nmodel    → {r.model}")
