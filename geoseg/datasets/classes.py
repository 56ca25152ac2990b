"""The classes a model learns: background (id 0) and the named classes after it.

Two classes (background, roof) are the default and keep every behaviour of a roof model.
More come from class masks (pixel value = class id; ``classes.json`` beside the images and
masks, or ``classes``, names them) or from vector labels with a class column (its values,
sorted, or those ``classes`` keeps, become ids 1…). ``ignore`` is a mask value left out of
the loss. Each class has a colour, kept in the checkpoint for the QGIS style and the mask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoseg.config import with_class
from geoseg.errors import InputError

ROOF = ("background", "roof")
# colours by class id (background, then a qualitative palette): roof keeps geoseg's amber
PALETTE = ("#000000", "#ffc800", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
           "#bcf60c", "#fabebe", "#008080", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075")
CLASSES_FILE = "classes.json"
CLASS_IDS = "__geoseg_class"  # the footprints' column of class ids, when they have classes


def colours_of(names: tuple[str, ...]) -> tuple[str, ...]:
    """A colour for each class, background first (the palette repeats beyond its length)."""
    return tuple(PALETTE[0] if i == 0 else PALETTE[1 + (i - 1) % (len(PALETTE) - 1)] for i in range(len(names)))


@dataclass(frozen=True)
class ClassSpec:
    """``names``: every class, background first; ``column``: the vector labels' class column;
    ``ignore``: a mask value left out of the loss."""

    names: tuple[str, ...] = ROOF
    column: str | None = None
    ignore: int | None = None

    @property
    def k(self) -> int:
        return len(self.names)


    def mask_ids(self, m: np.ndarray, path) -> tuple[np.ndarray, np.ndarray | None]:
        """A class mask's ids (uint8) and where it counts (None: everywhere), checked against
        the classes: a value above the last id that is not ``ignore`` is one line."""
        valid = None if self.ignore is None else m != self.ignore
        bad = m >= self.k if valid is None else (m >= self.k) & valid
        if bad.any():
            raise InputError(f"{path}: holds class id {int(m[bad].max())}, but there are {self.k} classes"
                             f" ({', '.join(self.names)}); name every class (`classes` or {CLASSES_FILE}) or mark"
                             " the value as `ignore_index`")
        ids = m.astype(np.uint8)
        if valid is not None:
            ids[~valid] = 0
        return ids, valid

    @property
    def reads_ids(self) -> bool:
        """Whether masks hold class ids (more than two classes, or an ignored value); else a
        roof mask, 0/1 or 0/255, as before classes."""
        return self.k > 2 or self.ignore is not None

    def vector_ids(self, frame, source) -> np.ndarray:
        """The class id of each polygon of ``frame`` from ``column`` (0: a value not kept)."""
        if self.column not in frame.columns:
            have = ", ".join(c for c in frame.columns if c != frame.geometry.name) or "none"
            raise InputError(f"{source}: has no column {self.column!r} (its columns: {have}); give `class_column`"
                             " one of them")
        values = frame[self.column].astype(str).to_numpy()
        lookup = {name: i for i, name in enumerate(self.names)}
        return np.array([lookup.get(v, 0) for v in values], dtype=np.uint8)


def spec_for(classes: tuple[str, ...] | None, column: str | None, ignore: int | None, data_dir: str | None,
             frame=None, source=None) -> ClassSpec:
    """The classes of a training run: ``classes`` as given, else a ``classes.json``
    (``{"classes": ["roof", "road"]}``) in ``data_dir``, else a class column's values
    (sorted; ``frame``: the labels), else background and roof."""
    if classes is None and data_dir is not None and (Path(data_dir) / CLASSES_FILE).is_file():
        path = Path(data_dir) / CLASSES_FILE
        try:
            classes = tuple(json.loads(path.read_text(encoding="utf-8"))["classes"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a class list ({exc}); write {{\"classes\": [\"roof\", \"road\"]}}") from None
    if classes is None and column is not None and frame is not None:
        if column not in frame.columns:
            ClassSpec(column=column).vector_ids(frame, source)  # the one-line error
        classes = tuple(sorted({str(v) for v in frame[column].dropna()}))
    if classes is None:
        return ClassSpec(ignore=ignore)
    names = tuple(str(c).strip() for c in classes)
    if not names or any(not n for n in names) or len(set(names)) != len(names) or "background" in names:
        raise InputError(f"classes {', '.join(names) or '(none)'}: give distinct, non-empty names other than"
                         " 'background' (id 0)")
    if len(names) + 1 > 255:
        raise InputError(f"{len(names)} classes: at most 254 besides background")
    return ClassSpec(("background", *names), column, ignore)


def with_class_labels(footprints, labels, spec: ClassSpec, class_column: str | None, class_labels: tuple[str, ...],
                       line_width: float):
    """The footprints of ``labels`` (their class column's classes, or roof) and the polygons of
    each ``"FILE:CLASS"`` as one frame with ``CLASS_IDS``, and the classes of them all."""
    import geopandas as gpd
    import pandas as pd

    from geoseg.io.vectors import read_polygons

    extra = []
    for item in class_labels:
        path, name = with_class(item)
        extra.append((name, read_polygons(path, line_width=line_width)))
    names = list(spec.names)  # background and the labels' own classes (roof without a column)
    for name, _ in extra:
        if name not in names:
            names.append(name)
    spec = ClassSpec(tuple(names), class_column)
    ids = spec.vector_ids(footprints, labels) if class_column else np.ones(len(footprints), np.uint8)
    frames = [footprints[["geometry"]].assign(**{CLASS_IDS: ids})]
    crs = footprints.crs
    for name, frame in extra:
        if (frame.crs is None) != (crs is None):
            raise InputError(f"{labels} and the file of class {name!r} must both have a CRS, or neither")
        frame = frame.to_crs(crs) if crs is not None else frame
        frames.append(frame[["geometry"]].assign(**{CLASS_IDS: np.full(len(frame), names.index(name), np.uint8)}))
    joined = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)
    return joined[joined[CLASS_IDS] > 0].reset_index(drop=True), spec
