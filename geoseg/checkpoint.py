"""Self-describing checkpoints: weights plus everything ``predict`` needs.

A checkpoint is a plain dict saved with ``torch.save`` and loaded with
``weights_only=True``: the model config, the band normalisation (``scale``, per-band
``mean`` and ``std`` after scaling), the tile size, the training config and the
epoch's metrics. ``last.pt`` also holds the optimiser, scheduler and RNG state.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from geoseg.errors import CheckpointError
from geoseg.model import UNet, UNetConfig, config_from_dict, config_to_dict

FORMAT = "geoseg-checkpoint"
VERSION = 1


@dataclass(frozen=True)
class Normalisation:
    """x_model = (x_raw / scale − mean) / std, per band."""

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]


def save(path: str | os.PathLike, model: UNet, norm: Normalisation, tile_size: int, **extra) -> None:
    """Write a checkpoint atomically (a crash mid-write never leaves a broken ``model.pt``)."""
    state = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": config_to_dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "norm": {"scale": norm.scale, "mean": list(norm.mean), "std": list(norm.std)},
        "tile_size": tile_size,
        **extra,
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: str | os.PathLike) -> dict:
    """Load and check a checkpoint dict (``weights_only=True``: no code runs from the file)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint; give the model.pt written by 'geoseg train'")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{p}: not a geoseg checkpoint ({first[:120]}); give the model.pt written by 'geoseg train'"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a geoseg checkpoint; give the model.pt written by 'geoseg train'")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{p}: written by a newer geoseg (format {state['version']}); upgrade geoseg")
    return state


def build_model(state: dict, device: torch.device | str = "cpu") -> tuple[UNet, UNetConfig]:
    config = config_from_dict(state["model_config"])
    model = UNet(config)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit its model config ({str(exc)[:120]})") from None
    return model.to(device), config


def normalisation(state: dict) -> Normalisation:
    n = state["norm"]
    return Normalisation(scale=float(n["scale"]), mean=tuple(n["mean"]), std=tuple(n["std"]))
