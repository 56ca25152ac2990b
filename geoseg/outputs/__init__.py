"""What a run writes: GeoJSON and GeoPackage files, the QGIS style, previews, and the
all-or-nothing publishing that never replaces a file and never writes an input."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "atomic": (
        "owner_tag", "remove_leftovers", "scratch_dir", "same_file", "refuse_inputs_as_outputs",
        "refuse_inputs_in_folder", "MARKER", "GEOSEG_NAMES", "fresh_folder", "check_output", "publish", "OutputSet",
        "atomic_output",
    ),
    "export": (
        "FORMATS", "DECIMALS", "vector_format", "properties_json", "VectorWriter", "polygon_coordinates_json",
        "write_vectors",
    ),
    "preview": (
        "PREVIEW_READ_BYTES", "Preview", "render_preview", "render_validation", "render_curves", "render_confusion",
    ),
    "style": ("ROOF_QML", "qml_path", "style_qml", "class_layer_qml", "write_qml", "embed_in_geopackage"),
})
