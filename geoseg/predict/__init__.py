"""The prediction engine: a scene's tiles through the model in batches, blended into
probability rows (``stitch``), at the model's pixel size, on one process or as Dask tasks."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "dask_engine": (
        "ScenesFailedError", "ClusterOptions", "predict_scene_polygons", "predict_block", "scene_blocks",
        "block_polygons", "connect", "scene_polygons",
    ),
    "engine": (
        "GDAL_CACHE_BYTES", "band_rows", "first_tile_row", "predict_probability", "scene_normalisation",
        "predict_rows", "say_progress", "normalised", "class_probability", "roof_probability", "ClassBands",
    ),
    "prefetch": (
        "PREFETCH_CORES", "use_prefetch", "Prefetch", "READ_BYTES", "read_groups", "host_pixels", "as_tensor_type",
    ),
    "resample": ("GSD_TOLERANCE", "GSD_FACTOR_WARN", "grid_ratio", "model_grid"),
    "stitch": ("BLEND_WINDOWS", "blend_window", "Sink", "Stitcher"),
})
