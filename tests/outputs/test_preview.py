"""The pictures a run leaves: training curves."""

import numpy as np
from PIL import Image

from geoseg.outputs.preview import render_curves


def test_curves_of_several_classes_draw_each_class_in_its_colour(tmp_path):
    rows = [{"epoch": str(e), "train_loss": str(1 / e), "val_loss": str(1.2 / e), "val_iou": str(0.1 * e),
             "iou_road": str(0.12 * e), "iou_water": str(0.05 * e)} for e in range(1, 6)]
    render_curves(rows, tmp_path / "classes.png", colours={"road": "#00ff00", "water": "#0000ff"})
    render_curves([{k: v for k, v in r.items() if not k.startswith("iou_")} for r in rows], tmp_path / "roofs.png")
    classes, roofs = (np.asarray(Image.open(tmp_path / f)) for f in ("classes.png", "roofs.png"))
    assert classes.shape[1] > roofs.shape[1]  # a legend beside the panels
    pixels = {tuple(p) for p in classes.reshape(-1, 3)}
    assert (0, 255, 0) in pixels and (0, 0, 255) in pixels  # each class's line and legend in its colour
    assert (0, 255, 0) not in {tuple(p) for p in roofs.reshape(-1, 3)}
