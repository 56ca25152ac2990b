"""One declaration per setting: a config field carries its default, its type (the annotation)
and its help, and the command line builds its options from them (``cli/options.py``).

``setting(default, help, ...)`` is a ``dataclasses.field`` whose metadata holds the help,
the section of ``--help`` it is listed in, the flag when it is not the field's name, the
choices, and the text of a default that depends on something else (``None`` fields).
Parameters are named in help and in errors as `` `name` ``; the command line shows its flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# the sections of a command's --help, in order: the everyday options first
SECTIONS = ("everyday", "data", "output", "post-processing", "training", "network", "performance", "advanced")


def setting(default: Any = dataclasses.MISSING, help: str = "", *, section: str = "advanced",
            flag: str | None = None, choices: tuple[str, ...] | None = None, default_text: str | None = None,
            cli: bool = True) -> Any:
    """A dataclass field with its help: ``default_text`` says what ``None`` (or a default that
    depends on the data or the machine) means; ``cli=False`` keeps it off the command line."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}")
    meta = {"help": help, "section": section, "flag": flag, "choices": choices, "default_text": default_text,
            "cli": cli}
    return dataclasses.field(default=default, metadata=meta)


def meta(cls, name: str) -> dict:
    """The metadata of ``cls``'s field ``name`` (empty for a plain field)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def default_of(cls, name: str):
    """The default of ``cls``'s field ``name``."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)
