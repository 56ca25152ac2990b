"""A training run's folder: what the run reads (never to be written), the folder prepared or
refused, ``config.json``, and the checks that a resumed run is the same run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from geoseg.config import TrainConfig, with_class
from geoseg.datasets.sources import TrainingData
from geoseg.errors import CheckpointError, InputError
from geoseg.io.raster import raster_files
from geoseg.outputs.atomic import fresh_folder, refuse_inputs_in_folder


def run_inputs(config: TrainConfig) -> list[tuple[str, str | None]]:
    """Every file the run reads, by role, as ``outputs.refuse_inputs_in_folder`` names them:
    the data and labels, the files GDAL reads for a scene (a VRT's sources), the label
    extent, the validation data and footprints, and the model ``--init`` starts from."""
    init = None if config.init in (None, "starter") else config.init
    sources = [] if not config.labels else [(f"a file that {config.data_dir} reads", f)
                                             for f in raster_files(config.data_dir)]
    return [("the training data", config.data_dir), ("the label file", config.labels), *sources,
            ("the `label_extent` file", config.label_extent), ("the validation data", config.val_dir),
            ("the `val_labels` file", config.val_labels), ("the `init` model", init),
            *(("a `class_labels` file", with_class(item)[0]) for item in config.class_labels or ())]


def prepare_run_dir(out_dir: str, overwrite: bool, resume: bool, inputs=()) -> Path:
    """The run folder, made (or emptied with ``overwrite``); never one that holds ``inputs``."""
    out = Path(out_dir)
    refuse_inputs_in_folder("`out`", out, inputs)
    if resume:
        if not (out / "last.pt").is_file():
            raise CheckpointError(f"{out / 'last.pt'}: nothing to resume; train without `resume` first")
        return out
    return fresh_folder(out, overwrite, "run folder", ", `resume`")


def write_config(out: Path, config: TrainConfig, facts: dict, first_epoch: int) -> None:
    """``config.json``: the run's settings and what they resolved to. A resumed run keeps the
    settings it started with and adds what this resumption changed (epochs, device, or data
    with ``--accept-changes``) to its ``resumes`` list: the file is never silently rewritten."""
    path = out / "config.json"
    entry = json.loads(json.dumps({**asdict(config), **facts}))  # as the file holds it: lists, not tuples
    if config.resume and path.exists():
        before = json.loads(path.read_text())
        changed = {k: v for k, v in entry.items() if before.get(k) != v and k not in ("resume", "overwrite")}
        entry = {**before, "resumes": [*before.get("resumes", []), {"from_epoch": first_epoch, **changed}]}
    tmp = path.with_name(".config.json.part")
    tmp.write_text(json.dumps(entry, indent=2))
    os.replace(tmp, path)


# settings that must stay the same for --resume to continue the run it resumes
RESUME_FIXED = ("data_dir", "labels", "val_dir", "val_fraction", "folds", "fold", "seed", "samples_per_epoch",
                "batch_size", "tile_size", "loss", "photometric", "rotation", "nodata", "lr_max", "lr_min",
                "encoder_lr", "contact_gap")


def refuse_changed_resume(out: Path, config: TrainConfig, data: TrainingData) -> None:
    """Raise ``InputError`` listing what differs from the run being resumed (``config.json``):
    its data, its split, its sampling and schedule; ``config.accept_changes`` lets it go on,
    and ``config.json`` then records the changes."""
    try:
        before = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        raise CheckpointError(f"{out / 'config.json'}: missing or unreadable, so the run cannot be checked before"
                              " it is resumed; train into a new `out`") from None
    now = {**asdict(config), "train_images": data.train_names, "val_images": data.val_names}
    changed = {k: (before.get(k), now[k]) for k in (*RESUME_FIXED, "train_images", "val_images")
               if before.get(k) != now[k]}
    if changed and not config.accept_changes:
        said = "; ".join(f"{k} {_short(a)} → {_short(b)}" for k, (a, b) in changed.items())
        raise InputError(f"{out}: `resume` with settings that differ from the run's ({said}); resume with the"
                         " run's settings, or pass `accept_changes` to continue with these knowingly")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
