"""Training: the loop (``fit``), augmentation, losses, the run folder, data-parallel
processes, and cross-validation."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "augment": ("BandJitter", "QuarterTurn", "ROTATIONS", "train_transform"),
    "crossval": ("LossResult", "cross_validate"),
    "ddp": ("Dist", "from_env", "init", "close", "barrier", "any_rank", "sums", "gather", "checksum"),
    "loop": ("METRIC_FIELDS", "param_groups", "evaluate_batches", "class_scores", "fit"),
    "losses": (
        "Loss", "dice_loss", "softmax_loss", "pixel_softmax_loss", "dice_ce_loss", "LOSSES", "class_weighted",
        "frequency_weights", "NEEDS_WEIGHT_MAP", "get_loss",
    ),
    "processes": ("spawn",),
    "run_folder": ("run_inputs", "prepare_run_dir", "write_config", "RESUME_FIXED", "refuse_changed_resume"),
})
