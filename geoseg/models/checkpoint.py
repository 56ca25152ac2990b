"""Self-describing checkpoints: weights plus everything ``predict`` needs, as a typed value.

On disk a checkpoint is a plain dict saved with ``torch.save`` and loaded with
``weights_only=True`` (no code runs from the file): the model config, the band
normalisation (``scale``, per-band ``mean`` and ``std`` after scaling), the tile size,
the nodata value, the training config and the epoch's metrics; ``last.pt`` also holds the
optimiser, scheduler and RNG state. ``load`` turns it into a ``Checkpoint``, checking
every field, so a crafted or damaged file is one ``CheckpointError`` line and no other
module reads a checkpoint by string keys.
"""

from __future__ import annotations

import errno
import math
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from geoseg.datasets.classes import colours_of
from geoseg.datasets.normalisation import Normalisation
from geoseg.errors import CheckpointError, GeosegError, first_line
from geoseg.models.registry import config_from_dict, config_to_dict, create_model
from geoseg.models.unet import UNetConfig

FORMAT = "geoseg-checkpoint"


VERSION = 1


_KNOWN = {"format", "version", "model_config", "state_dict", "norm", "tile_size", "nodata", "epoch", "metrics",
          "train_config", "gsd", "card", "classes", "colours"}


STARTER = Path(__file__).resolve().parent / "weights" / "starter.pt"  # made by scripts/make_starter.py


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded, checked checkpoint. ``state_dict``: the weights (CPU tensors); ``extra``:
    the training state of ``last.pt`` (optimiser, scheduler, RNG, snapshots), empty in a
    ``model.pt``."""

    model: UNetConfig
    norm: Normalisation
    tile_size: int  # the training tile side, pixels
    state_dict: dict
    nodata: float | None = None  # the value marking missing imagery the model was trained with
    gsd: float | None = None  # the training pixel size, metres (None: unknown, e.g. tiles without georeference)
    epoch: int | None = None
    metrics: dict = field(default_factory=dict)
    train_config: dict | None = None
    card: dict = field(default_factory=dict)  # what the model is, was trained on, and scored (``geoseg info``)
    extra: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ("background", "roof")  # every class, background (id 0) first
    colours: tuple[str, ...] = ("#000000", "#ffc800")  # "#rrggbb" by class id, for the style and the mask

    @property
    def contact_gap(self) -> int:
        """The ``--contact-gap`` the model was trained with (0: none, or not recorded)."""
        return int((self.train_config or {}).get("contact_gap") or 0)

    @property
    def fixed_tile(self) -> int | None:
        """The tile side predictions must use: the training tile for instance-normalised
        models (their output depends on the tile), else None (any tile)."""
        return self.tile_size if self.model.norm == "instance" else None

    def build(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The network with these weights, on ``device``, in eval mode (``.train()`` to go on
        training it)."""
        model = create_model(self.model)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())  # torch lists every mismatch on lines of their own
            raise CheckpointError(f"checkpoint weights do not fit its model config ({detail[:160]}); train the"
                                  " model again or use another model.pt") from None
        return model.to(device).eval()


def save(path: str | os.PathLike, model: torch.nn.Module, norm: Normalisation, tile_size: int, **extra) -> None:
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
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except RuntimeError:  # torch's writer says "unexpected pos" or "file write failed", no errno
        tmp.unlink(missing_ok=True)
        need = sum(v.numel() * v.element_size() for v in state["state_dict"].values())
        if shutil.disk_usage(path.parent).free < need + (1 << 20):
            raise OSError(errno.ENOSPC, f"No space left on device (writing {path.name}; the last complete"
                                        " checkpoint stays)", str(path)) from None
        raise
    except BaseException:  # Ctrl-C or SIGTERM mid-write: the old file stays, the part goes
        tmp.unlink(missing_ok=True)
        raise


def resolve(model: str | os.PathLike | None) -> Path:
    """The checkpoint a command uses: ``model``, or the starter model shipped with geoseg for
    None or ``"starter"``."""
    if model is not None and str(model) != "starter":
        return Path(model)
    if not STARTER.is_file():
        raise CheckpointError("this geoseg has no starter model (geoseg/models/weights/starter.pt); make it with"
                              " scripts/make_starter.py, or give `model` with a model.pt from 'geoseg train'")
    return STARTER


def load(path: str | os.PathLike) -> Checkpoint:
    """Load and check a checkpoint (``weights_only=True``: no code runs from the file)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint; give the model.pt written by 'geoseg train'")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{p}: not a geoseg checkpoint ({first_line(exc, 120)}); give the model.pt written by 'geoseg train'"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a geoseg checkpoint; give the model.pt written by 'geoseg train'")
    version = state.get("version", 0)
    if not isinstance(version, int):
        raise _damaged(p, "version", "a whole number")
    if version > VERSION:
        raise CheckpointError(f"{p}: written by a newer geoseg (format {version}); upgrade geoseg")
    return _checked(p, state)


def _damaged(p: Path, key: str, want: str) -> CheckpointError:
    return CheckpointError(f"{p}: damaged checkpoint: '{key}' is not {want}; train the model again or use"
                           " another model.pt")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _checked(p: Path, state: dict) -> Checkpoint:
    """Every field of a raw checkpoint dict checked, as a ``Checkpoint``."""
    if not isinstance(state.get("model_config"), dict):
        raise _damaged(p, "model_config", "a model configuration")
    try:
        config = config_from_dict(state["model_config"])
    except (GeosegError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: damaged checkpoint: its model config does not fit this geoseg ({exc})"
                              ) from None
    norm = state.get("norm")
    if not isinstance(norm, dict) or not _number(norm.get("scale")) or norm["scale"] <= 0:
        raise _damaged(p, "norm", "a normalisation with a positive scale")
    for key in ("mean", "std"):
        values = norm.get(key)
        if not isinstance(values, (list, tuple)) or len(values) != config.in_channels \
                or not all(_number(v) for v in values):
            raise _damaged(p, f"norm.{key}", f"{config.in_channels} finite numbers (one per band)")
    if any(v <= 0 for v in norm["std"]):
        raise _damaged(p, "norm.std", "positive (a band's spread of 0 would divide by zero)")
    tile = state.get("tile_size")
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1 or tile % config.multiple:
        raise _damaged(p, "tile_size", f"a positive multiple of {config.multiple} pixels")
    nodata = state.get("nodata")
    if nodata is not None and not (_number(nodata) or (isinstance(nodata, float) and math.isnan(nodata))):
        raise _damaged(p, "nodata", "a number or empty")
    weights = state.get("state_dict")
    if not isinstance(weights, dict) or not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise _damaged(p, "state_dict", "a set of weight tensors")
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:  # NaN or infinite weights predict nothing meaningful, silently
        raise _damaged(p, f"state_dict.{bad}", "finite (it holds NaN or infinite values)")
    gsd = state.get("gsd")
    if gsd is not None and (not _number(gsd) or gsd <= 0):
        raise _damaged(p, "gsd", "a positive pixel size in metres, or empty")
    epoch = state.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
        raise _damaged(p, "epoch", "a whole number")
    names = state.get("classes") or (["background", "roof"] if config.classes == 2 else None)
    if not isinstance(names, (list, tuple)) or len(names) != config.classes or not all(
            isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise _damaged(p, "classes", f"{config.classes} distinct class names (background first)")
    colours = state.get("colours") or colours_of(tuple(names))
    if not isinstance(colours, (list, tuple)) or len(colours) != len(names) or not all(
            isinstance(c, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", c) for c in colours):
        raise _damaged(p, "colours", f"{config.classes} colours as #rrggbb")
    metrics, train_config, card = state.get("metrics") or {}, state.get("train_config"), state.get("card") or {}
    for key, value in (("metrics", metrics), ("train_config", train_config or {}), ("card", card)):
        if not isinstance(value, dict):
            raise _damaged(p, key, "a table of values")
    return Checkpoint(
        model=config,
        norm=Normalisation(scale=float(norm["scale"]), mean=tuple(float(v) for v in norm["mean"]),
                           std=tuple(float(v) for v in norm["std"])),
        tile_size=tile, state_dict=weights, nodata=None if nodata is None else float(nodata),
        gsd=None if gsd is None else float(gsd), epoch=epoch,
        metrics=metrics, train_config=train_config, card=card,
        extra={k: v for k, v in state.items() if k not in _KNOWN}, classes=tuple(names), colours=tuple(colours))


def _expects(ckpt: Checkpoint) -> str:
    """What values the model takes, for a person: the data type it learnt from and how another
    is brought to it (``predict.engine.scene_normalisation``)."""
    kind = {255.0: "8-bit", 65535.0: "16-bit", 32767.0: "signed 16-bit"}.get(ckpt.norm.scale, "float")
    mean, std = ckpt.norm.mean, ckpt.norm.std
    imagenet = ckpt.norm.scale == 255.0 and all(abs(v * 255 - 127) < 1e-3 for v in mean) and \
        all(abs(v * 255 - 128) < 1e-3 for v in std)
    how = "as (x − 127) / 128, the ImageNet encoder's input" if imagenet else "standardised by its training statistics"
    return (f"{kind} values {how}; scenes of another data type are stretched by their own 1st–99th percentiles"
            " per band")


def describe(ckpt: Checkpoint, path: str | os.PathLike) -> list[str]:
    """A model's card as lines for a person: what it takes, its pixel size, what it was trained
    on and how it scored (``geoseg info``)."""
    c, m = ckpt.card, ckpt.model
    gsd = f"{ckpt.gsd:g} m/px" if ckpt.gsd else "unknown (trained on tiles without georeference)"
    lines = [f"{c.get('name', 'geoseg model')}: {path}",
             f"  input        {m.in_channels} band(s) ({c.get('bands', 'as its training images')}),"
             f" {_expects(ckpt)}; nodata {ckpt.nodata if ckpt.nodata is not None else 'none'}",
             f"  pixel size   {gsd}",
             f"  network      {m.describe()}; trained on {ckpt.tile_size} px"
             " tiles",
             f"  classes      {', '.join(f'{i} {n}' for i, n in enumerate(ckpt.classes))}"]
    if c.get("trained_on"):
        lines.append(f"  trained on   {c['trained_on']}")
    elif ckpt.train_config:
        t = ckpt.train_config
        lines.append(f"  trained on   {t.get('data_dir')}{' with ' + str(t['labels']) if t.get('labels') else ''}"
                     f" ({t.get('loss')} loss, epoch {ckpt.epoch})")
    if ckpt.contact_gap:
        lines.append(f"  contacts     taught with --contact-gap {ckpt.contact_gap}: predict cuts touching roofs apart"
                     " (--split)")
    for name, scores in c.get("scores", {}).items():
        said = ", ".join(f"{k} {v}" for k, v in scores.items() if not isinstance(v, list))
        lines.append(f"  score        {name.replace('_', ' ')}: {said}")
    if ckpt.metrics and not c.get("scores"):
        said = ", ".join(f"{k} {v}" for k, v in ckpt.metrics.items() if k.startswith("val_"))
        if said:
            lines.append(f"  validation   {said} (epoch {ckpt.epoch})")
    if c.get("not_good_at"):
        lines.append(f"  not good at  {c['not_good_at']}")
    return lines


def build_model(ckpt: Checkpoint, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, UNetConfig]:
    """``(model, its config)``: ``ckpt.build(device)`` and ``ckpt.model``."""
    return ckpt.build(device), ckpt.model
