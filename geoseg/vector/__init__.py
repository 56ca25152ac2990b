"""Probability rows to roof polygons: strips traced as they come, clean-up, right angles,
touching roofs cut apart, blocks joined, scenes merged, and the table polygons travel in."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "bands": ("band_polygons", "join_band_edges"),
    "classes": ("CLASS_ROWS", "CLASS_CARRY_STRIPS", "class_cuts", "class_ids", "ClassStreams"),
    "clean": ("Frame", "frame_of", "to_table", "to_frame", "least_box"),
    "merge": ("Footprint", "SceneMerger", "measure"),
    "parts": ("Part", "set_aside", "RunComponents", "strip_parts", "join_parts", "meeting_groups", "strip_mask"),
    "polygonize": ("label_polygons", "PixelRuns", "pixel_runs", "run_polygons", "RIGHT_OF"),
    "rectilinear": ("polygon_iou", "RECT_IOU", "FIT_SLACK", "regularize"),
    "stream": ("trace_pool", "iter_pixel_parts", "iter_polygons", "PolygonStream", "vectorize"),
    "strips": ("CARRY_STRIPS", "StripWork", "StripTracer"),
    "table": ("PolygonTable", "reproject"),
    "touching": ("SEED_PX", "split_components", "piece_polygons"),
})
