"""Whole commands as Python functions: the ``geoseg predict`` job (``run_predict``) with its
areas of interest, and the demo."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "areas": ("AREA_MARGIN", "read_area", "cut_to_area", "clip_to_area", "checked_scene_info", "footprint"),
    "demo": ("DemoResult", "run_demo"),
    "predict": ("PredictResult", "preview_path", "write_mask", "Outputs", "run_predict", "on_scene_grid"),
})
