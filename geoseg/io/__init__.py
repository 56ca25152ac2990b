"""Reading and writing files: scenes in windows (local or remote, resampled), STAC Items as
scenes, vector labels and areas."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "raster": (
        "IMAGE_SUFFIXES", "DTYPE_SCALE", "SceneInfo", "STRIP_PIXELS", "strip_rows", "PROB_SCALE", "probability_cut",
        "raster_strips", "pixel_size_m", "shapely_affine", "value_scale", "open_raster", "PERCENTILE_WINDOWS",
        "PERCENTILE_WINDOW", "band_percentiles", "raster_files", "scene_info", "check_bands", "read_image",
        "read_mask", "copy_as_cog",
    ),
    "remote": ("URL_SCHEMES", "REMOTE_ENV", "is_remote", "gdal_path", "remote_problem", "open_remote"),
    "stac": ("is_item", "ITEM_DEADLINE", "ITEM_MAX_BYTES", "read_item", "REMOTE_SCHEMES", "item_scene"),
    "vectors": ("local_utm", "read_polygons"),
    "windows": ("resampled_vrt", "read_window", "ROW_BAND_MAX_ROWS", "RowBands", "BlockRowWriter"),
})
