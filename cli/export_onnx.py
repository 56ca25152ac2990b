"""``geoseg export-onnx``: a trained model as ONNX with the metadata QGIS's Deepness plugin reads."""

from __future__ import annotations

from pathlib import Path

import click
import cloup


@cloup.command("export-onnx")
@cloup.argument("model_path", type=click.Path(path_type=Path))
@cloup.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .onnx file.")
@cloup.option("--tile-size", type=int, help="Tile side the graph takes.",
              show_default="512, or the training tile size for instance-normalised models")
@cloup.option("--overlap", type=int, help="Margin each tile shares, pixels; Deepness's tiles_overlap, in"
              " percent, is derived from it.", show_default="32, as predict")
@cloup.option("--resolution", "resolution_cm", type=float,
              help="Ground resolution of the training imagery, cm per pixel (e.g. 30).")
@cloup.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def export_onnx(model_path: Path, out: Path, tile_size: int | None, overlap: int | None, resolution_cm: float | None,
                overwrite: bool) -> None:
    """Write MODEL_PATH (model.pt) as ONNX, checked against torch in onnxruntime."""
    from geoseg.models.onnx import export_onnx as export

    result = export(model_path, out, tile_size=tile_size, resolution_cm=resolution_cm, overlap=overlap,
                    overwrite=overwrite)
    click.echo(f"{result.path}: tiles of {result.tile_size} px; onnxruntime matches torch to"
               f" {result.max_abs_diff:.1e} (largest absolute difference in probability)")
    if resolution_cm is None:
        click.echo("no --resolution given: Deepness will ask for the imagery's cm per pixel")
