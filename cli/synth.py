"""``geoseg synth``: write a synthetic labelled task (tiles, a scene, its true polygons)."""

from __future__ import annotations

from pathlib import Path

import click
import cloup


@cloup.command()
@cloup.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@cloup.option("--seed", default=0, show_default=True, help="Same seed, same town, pixel for pixel.")
@cloup.option("--tile-size", default=256, show_default=True, help="Side of the labelled tiles, pixels.")
@cloup.option("--train-size", default=1536, show_default=True, help="Side of the town cut into training tiles, pixels.")
@cloup.option("--scene-size", default=1024, show_default=True, help="Side of the test scene, pixels.")
@cloup.option("--pixel-size", default=0.3, show_default=True, help="Ground sampling distance, metres.")
@cloup.option("--ortho-size", default=0, show_default=True,
              help="Also write OUT_DIR/ortho/: an orthophoto of this side with footprints of its left half in"
              " lon/lat (for 'geoseg train --images --labels'); 0: none.")
@cloup.option("--terraces", default=0.0, show_default=True,
              help="Share of the orthophoto's house sites holding a row of 2-5 terraced houses, each its own"
              " footprint (to try --contact-gap).")
@cloup.option("--classes", is_flag=True, help="Towns with ponds and flat roofs; masks of gabled roofs, flat roofs,"
              " roads, paving and water (ids 1-5, named in classes.json) and OUT_DIR/test/: the scene cut into"
              " tiles labelled so.")
@cloup.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it holds files.")
def synth(out_dir: Path, seed: int, tile_size: int, train_size: int, scene_size: int,
          pixel_size: float, ortho_size: int, terraces: float, classes: bool, overwrite: bool) -> None:
    """Write a synthetic town: OUT_DIR/train/{images,masks}, scene.tif (EPSG:25832), truth.gpkg."""
    from geoseg.datasets.synth import write_dataset
    from geoseg.errors import InputError
    from geoseg.outputs.atomic import fresh_folder

    if min(tile_size, train_size, scene_size) < 16 or train_size < tile_size or pixel_size <= 0 \
            or (ortho_size and ortho_size < 64) or not 0 <= terraces <= 1:
        raise InputError("need --tile-size >= 16, --train-size >= --tile-size, --scene-size >= 16, --pixel-size > 0,"
                         " --ortho-size 0 or >= 64, --terraces in [0, 1]")
    fresh_folder(out_dir, overwrite)
    paths = write_dataset(out_dir, seed=seed, tile_size=tile_size, train_size=train_size,
                          scene_size=scene_size, pixel_size=pixel_size, classes=classes)
    if ortho_size:
        from geoseg.datasets.synth import write_scene_dataset

        paths.update({f"ortho {k}": v for k, v in write_scene_dataset(out_dir / "ortho", size=ortho_size, seed=seed + 2,
                                                                        pixel_size=pixel_size,
                                                                        terraces=terraces).items()})
    for name, path in paths.items():
        click.echo(f"{name:6s} {path}")
