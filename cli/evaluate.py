"""``geoseg evaluate``: scores of a model on labelled tiles, or of polygons against true polygons."""

from __future__ import annotations

from pathlib import Path

import click
import cloup

from . import values


@cloup.command()
@cloup.argument("data_dir", required=False, type=click.Path(path_type=Path))
@cloup.option_group(
    "A model on labelled tiles (DATA_DIR --model M)",
    cloup.option("--model", "model_path", type=click.Path(path_type=Path),
                 help="Score this model.pt on the labelled pairs of DATA_DIR, per image and overall."),
    cloup.option("--threshold", default=0.5, show_default=True, help="Roof probability cut."),
    cloup.option("--class-thresholds", callback=values.class_thresholds, help="With a model of several classes:"
                 " per-class probability cuts NAME=P, as 'geoseg predict --class-thresholds'."),
    cloup.option("--tta", is_flag=True, help="Predict with test-time augmentation, as 'geoseg predict --tta'."))
@cloup.option_group(
    "Polygons against polygons (--pred P --truth T)",
    cloup.option("--pred", type=click.Path(path_type=Path), help="Predicted polygons (.geojson, .gpkg)."),
    cloup.option("--truth", type=click.Path(path_type=Path), help="True polygons (.geojson, .gpkg), any CRS."),
    cloup.option("--iou", "iou_threshold", default=0.5, show_default=True, help="IoU for an object match."),
    cloup.option("--pred-layer", help="The layer of a multi-layer --pred file."),
    cloup.option("--pred-where", help="OGR SQL filter of the --pred polygons."),
    cloup.option("--truth-layer", help="The layer of a multi-layer --truth file."),
    cloup.option("--truth-where", help="OGR SQL filter of the --truth polygons."),
    cloup.option("--class-column", help="A column of both (e.g. class): object scores per class, and for all."))
@cloup.option_group(
    "Output",
    cloup.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path),
                 help="Also write the table as CSV."),
    cloup.option("--confusion", "confusion_out", type=click.Path(dir_okay=False, path_type=Path),
                 help="With a multi-class model: also write the confusion matrix, as CSV (.csv) or a picture"
                 " (.png)."),
    cloup.option("--overwrite", is_flag=True, help="Replace an existing --csv."))
def evaluate(data_dir: Path | None, model_path: Path | None, pred: Path | None, truth: Path | None,
             iou_threshold: float, threshold: float, tta: bool, csv_out: Path | None, overwrite: bool,
             pred_layer: str | None, pred_where: str | None, truth_layer: str | None, truth_where: str | None,
             confusion_out: Path | None, class_column: str | None,
             class_thresholds: tuple[tuple[str, float], ...] | None) -> None:
    """Score a model (DATA_DIR --model M) or polygons (--pred P --truth T).

    \b
    Pixel scores: IoU, F1, precision, recall per image and over all pixels.
    Object scores: one-to-one matching at IoU >= --iou as in the SpaceNet building
    challenge, and the IoU of the covered areas.
    """
    import csv

    from geoseg.errors import InputError
    from geoseg.outputs.atomic import atomic_output, check_output, refuse_inputs_as_outputs

    outs = [(flag, p) for flag, p in (("--csv", csv_out), ("--confusion", confusion_out)) if p]
    refuse_inputs_as_outputs(outs, [("the model", model_path), ("--pred", pred), ("--truth", truth)])
    for _, p in outs:
        check_output(p, overwrite)
    matrix = None
    if data_dir is not None and model_path is not None and not (pred or truth):
        from geoseg.config import TileOptions
        from geoseg.evaluation.metrics import Confusion, Counts
        from geoseg.evaluation.scoring import evaluate_model

        rows = evaluate_model(model_path, data_dir, threshold, TileOptions(tta=tta), class_thresholds)
        if rows and isinstance(rows[0][1], Confusion):  # a multi-class model: scores per class
            from geoseg.evaluation.scoring import class_table, confusion_rows
            from geoseg.models import checkpoint

            names = checkpoint.load(model_path).classes
            total = sum((c for _, c in rows[1:]), rows[0][1])
            header, lines = class_table(total, names)
            matrix = confusion_rows(total, names)
        else:
            total = sum((c for _, c in rows), Counts())
            table = [(name, c) for name, c in rows] + [("ALL", total)]
            header = ["image", "iou", "f1", "precision", "recall", "tp", "fp", "fn"]
            lines = [[n, f"{c.iou:.4f}", f"{c.f1:.4f}", f"{c.precision:.4f}", f"{c.recall:.4f}", c.tp, c.fp, c.fn]
                     for n, c in table]
    elif tta and model_path is None:
        raise InputError("--tta scores a model's predictions: give it with DATA_DIR and --model")
    elif pred is not None and truth is not None and data_dir is None and model_path is None:
        from geoseg.evaluation.scoring import object_table
        from geoseg.io.vectors import read_polygons

        p = read_polygons(pred, layer=pred_layer, where=pred_where)
        t = read_polygons(truth, layer=truth_layer, where=truth_where)
        header, lines = object_table(p, t, iou_threshold, class_column)
    else:
        raise InputError("give either DATA_DIR with --model, or --pred with --truth")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    for row in [header, *lines]:
        click.echo("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))
    if confusion_out and matrix is None:
        raise InputError("--confusion is for a multi-class model on labelled tiles (DATA_DIR --model)")
    for path, table, what in ((csv_out, [header, *lines], "table"), (confusion_out, matrix, "confusion matrix")):
        if path and path.suffix.lower() == ".png":
            from geoseg.outputs.preview import render_confusion

            with atomic_output(path, overwrite) as tmp:
                render_confusion([row[1:] for row in table[1:]], tuple(table[0][1:]), tmp)
        elif path:
            with atomic_output(path, overwrite) as tmp, open(tmp, "w", newline="") as fh:
                csv.writer(fh).writerows(table)
        if path:
            click.echo(f"{what} → {path}")
