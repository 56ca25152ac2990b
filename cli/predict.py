"""``geoseg predict``: roof polygons for a scene of any size (``jobs.run_predict``)."""

from __future__ import annotations

from pathlib import Path

import click
import cloup

from geoseg.config import TileOptions, VectorizeOptions

from . import options as o
from . import values

P, V = TileOptions, VectorizeOptions
FILE = click.Path(dir_okay=False, path_type=Path)


@cloup.command(show_constraints=False)
@cloup.argument("scenes", nargs=-1, required=True, callback=values.scenes)
@o.group("everyday",
         cloup.option("--model", "model_path", help="model.pt written by 'geoseg train'.",
                      show_default="the starter model shipped with geoseg: RGB, 0.3 m/px; see 'geoseg info'"),
         cloup.option("--out", required=True, type=FILE, help=".geojson (RFC 7946, WGS 84) or .gpkg (the scene's"
                      " CRS)."),
         *o.in_section(V, "everyday"))
@o.group("output",
         cloup.option("--prob-out", type=FILE, help="Also keep the stitched roof probability as a GeoTIFF (uint8,"
                      " p x 255)."),
         cloup.option("--mask-out", type=FILE, help="Also write the thresholded roof mask as a GeoTIFF (uint8 0/1)."),
         cloup.option("--cog", is_flag=True, help="Write --prob-out and --mask-out as Cloud-Optimised GeoTIFFs."),
         cloup.option("--no-preview", is_flag=True, help="Skip the preview PNG written beside --out."),
         cloup.option("--split-layers", is_flag=True, help="With a model of several classes and a .gpkg: a layer"
                      " per class instead of one layer with a class column."),
         o.overwrite("existing outputs"))
@o.group("post-processing", *o.in_section(V, "post-processing", skip=("class_thresholds",)),
         o.opt(V, "class_thresholds", callback=values.class_thresholds))
@o.group("Area, bands and imagery",
         cloup.option("--aoi", help="Area of interest (polygons, any vector file, any CRS): only the windows that meet"
                      " it are read and predicted, and the polygons are clipped to it."),
         cloup.option("--bbox", callback=values.bbox, help="Area of interest as minx,miny,maxx,maxy in lon/lat"
                      " (WGS 84)."),
         o.opt(P, "bands", callback=values.bands),
         *o.in_section(P, "data", skip=("bands",)),
         cloup.option("--assets", callback=values.names, help="With a STAC Item (item.json) as the scene: its assets"
                      " stacked as bands, e.g. red,green,blue.", show_default="its 'visual' asset"),
         cloup.option("--allow-local-assets", is_flag=True, help="Let a STAC Item from the network name local files"
                      " or GDAL virtual paths as its assets (refused by default: only trusted items)."))
@o.group("performance", *o.in_section(P, "performance"), *o.in_section(V, "performance"),
         cloup.option("--scheduler", help="Address of a running dask.distributed scheduler: scenes become its tasks."),
         cloup.option("--workers", type=int, help="Start a local Dask cluster of N worker processes, a scene per"
                      " task."),
         cloup.option("--block", default=4096, show_default=True, help="With a cluster and one scene: scene rows per"
                      " task (the scene is cut into blocks)."))
@o.group("advanced", *o.in_section(P, "advanced"), o.quiet)
def predict(scenes: list, model_path: str | None, out: Path, prob_out: Path | None, mask_out: Path | None,
            cog: bool, aoi: str | None, bbox: tuple[float, float, float, float] | None, assets: tuple[str, ...] | None,
            allow_local_assets: bool, scheduler: str | None, workers: int | None, block: int, no_preview: bool,
            split_layers: bool, overwrite: bool, quiet: bool, **settings) -> None:
    """Predict roofs on SCENES (GeoTIFF, COG, VRT, PNG, JPEG, URLs, a STAC Item; several files or
    a quoted glob go into one layer, merged where they overlap) and write polygons to --out."""
    from geoseg.jobs.areas import read_area
    from geoseg.jobs.predict import Outputs, run_predict
    from geoseg.models import checkpoint

    vector = VectorizeOptions(**o.pick(V, settings))
    tiles = TileOptions(**o.pick(P, settings))
    if model_path is None:  # said once the options are known good: a bad one is the only line
        model_path = checkpoint.resolve(None)
        click.echo("model: the starter model shipped with geoseg (RGB, 0.3 m/px; 'geoseg info' for its card)", err=True)
    cluster = None
    if scheduler or workers:
        from geoseg.predict.dask_engine import ClusterOptions

        cluster = ClusterOptions(scheduler=scheduler, workers=workers, block=block)
    outputs = Outputs(out, prob=prob_out, mask=mask_out, cog=cog, preview=not no_preview, overwrite=overwrite,
                      split_layers=split_layers)
    area = read_area(aoi, bbox) if aoi or bbox else None
    result = run_predict(scenes, model_path, outputs, tiles, vector, progress=not quiet, cluster=cluster, area=area,
                         assets=assets, read_also=(("the --aoi file", aoi),) if aoi else (),
                         allow_local_assets=allow_local_assets)
    where = "EPSG:4326" if out.suffix.lower() != ".gpkg" else "the scene's CRS"
    if not result.scene.georeferenced:
        where = "pixel coordinates (the scene has no georeference)"
    if result.split and vector.split is None:
        click.echo(f"touching roofs cut apart at the probability's valleys (--split {result.split:g}: the model was"
                   " taught a contact gap; --split 0 for whole components)", err=True)
    several = f" from {result.scenes} scenes" if result.scenes > 1 else ""
    what = "roof polygons" if len(result.classes) <= 2 else f"polygons of {', '.join(result.classes[1:])}"
    click.echo(f"{result.count} {what}{several} → {result.out} ({where})")
    for label, path in (("preview", result.preview), ("probability", result.prob), ("mask", mask_out)):
        if path:
            click.echo(f"{label} → {path}")
