"""Several classes: held-out IoU of each class after a fixed number of training steps, by loss.

The five-class synthetic town (``geoseg synth --classes``: gabled roofs, flat roofs, roads,
paving, water) is written once (cached in bench-out/), a model is trained on its tiles with
each loss for the same number of epochs (so the same steps: compare recipes at fixed steps,
not fixed minutes, as these machines' speed changes with their load), and each is scored
on the unseen town's test tiles as ``geoseg evaluate`` scores them. Figures: each loss's
IoU per class and their mean (not background), its steps and minutes.
"""

from __future__ import annotations

import csv
import time

from bench.harness import WORK, benchmark


@benchmark("quality", name="classes")
def classes(losses: tuple[str, ...] = ("dice+ce", "dice", "softmax"), epochs: int = 8, seed: int = 0) -> dict:
    """Per-class held-out IoU of each loss after ``epochs`` epochs on the five-class town."""
    from geoseg.config import TrainConfig
    from geoseg.datasets.synth import write_dataset
    from geoseg.evaluation.scoring import evaluate_model
    from geoseg.models import checkpoint
    from geoseg.train.loop import fit

    data = WORK / "classes-town"
    if not (data / "test").is_dir():
        write_dataset(data, classes=True)
    figures: dict = {}
    for loss in losses:
        out = WORK / f"classes-{loss}"
        t = time.perf_counter()
        fit(TrainConfig(data_dir=str(data / "train"), out_dir=str(out), loss=loss, epochs=epochs, time_limit=0,
                        seed=seed, overwrite=True), progress=False)
        minutes = (time.perf_counter() - t) / 60
        with open(out / "metrics.csv") as fh:
            steps = int(list(csv.DictReader(fh))[-1]["step"])
        rows = evaluate_model(out / "model.pt", data / "test")
        total = sum((c for _, c in rows[1:]), rows[0][1])
        names = checkpoint.load(out / "model.pt").classes
        for c, name in enumerate(names[1:], 1):
            figures[f"{loss}_iou_{name.replace(' ', '_')}"] = round(total.counts(c).iou, 4)
        figures[f"{loss}_mean_iou"] = round(total.iou, 4)
        figures[f"{loss}_steps"] = steps
        figures[f"{loss}_minutes"] = round(minutes, 2)
    return figures
