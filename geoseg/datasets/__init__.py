"""What a model learns from: labelled tiles, scenes with building footprints read in windows,
the training sources that join them, band normalisation, and synthetic towns."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "classes": (
        "ROOF", "PALETTE", "CLASSES_FILE", "CLASS_IDS", "colours_of", "ClassSpec", "spec_for", "with_class_labels",
    ),
    "normalisation": ("STRETCH_SAMPLE", "normalisation_of", "Normalisation"),
    "scenes": (
        "find_scenes", "LabelledScene", "read_resampled", "contacts", "WindowDataset", "window_statistics",
        "load_scenes", "scale_of", "say_pixel_sizes",
    ),
    "sources": ("MAX_VAL_WINDOWS", "TrainingData", "split", "kfold", "split_pairs", "load_training_data"),
    "synth": ("write_scene", "write_truth", "write_tiles", "write_dataset", "write_mosaic", "write_scene_dataset"),
    "tiles": (
        "LAYOUTS", "Pair", "Sample", "find_pairs", "VECTOR_SUFFIXES", "find_vector_pairs", "rasterize_labels",
        "read_label", "load_samples", "refuse_unlearnable", "make_item", "TileDataset", "band_statistics",
    ),
    "town": (
        "DEFAULT_CRS", "DEFAULT_ORIGIN", "ROOF_COLOURS", "PAVING_COLOURS", "Town", "CLASS_NAMES", "KIND_NAMES",
        "make_town",
    ),
    "weightmap": ("unet_weight_map",),
})
