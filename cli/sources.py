"""Where training data comes from on the command line: DATA_DIR, or ``--images`` with one or
more ``--labels`` (each may carry its class as ``FILE:CLASS``)."""

from __future__ import annotations

import cloup

from . import values

images = cloup.option("--images", help="With --labels: scenes of any size (a GeoTIFF/COG/VRT, a folder, or a quoted"
                      " glob), read in windows.")
labels = cloup.option("--labels", multiple=True, callback=values.label_files,
                      help="Footprints labelling --images (GeoPackage, GeoJSON, Shapefile, FlatGeobuf; any CRS);"
                      " FILE:CLASS names their class (roof if not; or --class-column). Again for each file of"
                      " another class: --labels roads.gpkg:road (lines --line-width wide).")


def data_source(data_dir, images, labels: tuple[tuple[str, str | None], ...], opts: dict) -> dict:
    """``TrainConfig``'s ``data_dir`` and ``labels`` from DATA_DIR, or --images with --labels
    (``values.label_files``): the first file's class (``FILE:CLASS``) is ``labels_class``, and
    every further ``--labels FILE:CLASS`` joins ``opts``' ``class_labels``."""
    from geoseg.errors import InputError

    if (data_dir is None) == (images is None) or (images is None) != (not labels):
        raise InputError("give DATA_DIR (images + masks), or --images SCENES with --labels FOOTPRINTS")
    if not labels:
        return {"data_dir": str(data_dir), "labels": None}
    (first, name), more = labels[0], labels[1:]
    for path, cls in more:
        if cls is None:
            raise InputError(f"--labels {path}: name the class of every --labels file after the first, as"
                             f" {path}:CLASS (e.g. roads.gpkg:road)")
    extra = tuple(f"{path}:{cls}" for path, cls in more)
    if extra:
        opts["class_labels"] = (*(opts.get("class_labels") or ()), *extra)
    return {"data_dir": str(images), "labels": first, "labels_class": name}
