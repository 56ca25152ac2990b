"""Options built from the config fields (``geoseg.config``): each option's flag, type, default
and help come from its field (``config.setting``), written once; a command lists them in
sections (cloup option groups), the everyday ones first. No torch here."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable

import click
import cloup

from geoseg.config import PRESETS, TrainConfig, default_of, meta

from . import values

TITLES = {"everyday": "Everyday options", "data": "Data", "output": "Output", "post-processing": "Post-processing",
          "training": "Training recipe", "network": "Network", "performance": "Performance",
          "advanced": "Advanced"}


def flag_of(cls, name: str) -> str:
    """The command-line flag of ``cls``'s field ``name``: its own, or ``--name-with-dashes``."""
    flag = meta(cls, name).get("flag") or f"--{name.replace('_', '-')}"
    return flag.split("/")[0]


def with_flags(cls, text: str) -> str:
    """Help text whose parameters (`` `tile_size` ``) are named as their flags."""
    names = {f.name for f in dataclasses.fields(cls)}
    return re.sub(r"`([a-z_]+)`", lambda m: flag_of(cls, m[1]) if m[1] in names else f"--{m[1].replace('_', '-')}",
                  text)


def _value_type(cls, name: str):
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and typing.get_origin(hint) is not tuple else hint


def opt(cls, name: str, *decls: str, **kw) -> Callable:
    """The option of ``cls``'s field ``name``; ``decls`` and ``kw`` override what the field says."""
    m, default = meta(cls, name), default_of(cls, name)
    decls = decls or (m.get("flag") or f"--{name.replace('_', '-')}",)
    kind = _value_type(cls, name)
    if m.get("choices"):
        kw.setdefault("type", click.Choice(m["choices"]))
    elif kind is bool:
        if "/" not in decls[0]:
            kw.setdefault("is_flag", True)
    elif kind in (int, float, str):
        kw.setdefault("type", kind)
    else:  # a tuple: comma-separated names, unless the command gives a callback of its own (numbers)
        kw.setdefault("type", str)
        kw.setdefault("callback", values.names)
    if default is not dataclasses.MISSING:
        kw.setdefault("default", default)
    if m.get("default_text"):
        kw.setdefault("show_default", with_flags(cls, m["default_text"]))
    elif default not in (None, False, dataclasses.MISSING):
        kw.setdefault("show_default", True)
    return cloup.option(*decls, name, help=with_flags(cls, m.get("help", "")), **kw)


def in_section(cls, section: str, skip: tuple[str, ...] = ()) -> list[Callable]:
    """The options of ``cls``'s command-line fields listed in ``section``, in field order."""
    return [opt(cls, f.name) for f in dataclasses.fields(cls)
            if f.metadata.get("cli", False) and f.metadata.get("section") == section and f.name not in skip]


def group(section: str, *options: Callable) -> Callable:
    """A section of ``--help``: ``section`` is a key of ``TITLES`` or a title."""
    return cloup.option_group(TITLES.get(section, section), *options)


def pick(cls, values: dict) -> dict:
    """The entries of ``values`` that are fields of ``cls`` (removed from ``values``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: values.pop(k) for k in list(values) if k in names}


quiet = cloup.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")


def overwrite(what: str) -> Callable:
    """The ``--overwrite`` option of a command that replaces ``what``."""
    return cloup.option("--overwrite", is_flag=True, help=f"Replace {what}.")


# ``geoseg train`` and ``geoseg cv``: where the data comes from, and the recipe
T = TrainConfig
preset = cloup.option("--preset", type=click.Choice(sorted(PRESETS)),
                      help="A named recipe for the options not given: 'original' is the original roof project's"
                      " (softmax, lr 1e-4…1e-5, plain U-Net of depth 5, width 64, instance norm, no averaging).")


def apply_preset(name: str | None, opts: dict) -> dict:
    """``opts`` with a named recipe's settings (``config.PRESETS``) for the options not given on
    the command line."""
    from click.core import ParameterSource

    if not name:
        return opts
    ctx = click.get_current_context()
    given = {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    return {**opts, **{k: v for k, v in PRESETS[name].items() if k not in given}}
