"""Scores: pixel counts and object matches (``metrics``), and a model or polygons scored
against labels (``scoring``)."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "metrics": ("Counts", "pixel_counts", "Match", "match_objects", "Confusion"),
    "scoring": (
        "pixel_scores", "object_scores", "area_iou", "evaluate_model", "class_table", "confusion_rows", "object_table",
    ),
})
