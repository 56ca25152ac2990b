"""Command-line text turned into values: band lists and scene globs."""

from __future__ import annotations

import os
from pathlib import Path

from geoseg.errors import InputError
from geoseg.io.remote import is_remote


def expand_scenes(args) -> list:
    """Scene arguments → paths: a pattern with ``*``, ``?`` or ``[`` that names no file is
    expanded (sorted), for a glob quoted from the shell; a URL or ``/vsi…/`` path is kept as
    it is (never globbed or checked as a local file)."""
    import glob

    paths: list = []
    for arg in args:
        if is_remote(arg):
            paths.append(str(arg))
        elif not os.path.exists(arg) and glob.has_magic(arg):
            found = sorted(glob.glob(arg))
            if not found:
                raise InputError(f"{arg}: no file matches this pattern; check the path")
            paths += [Path(p) for p in found]
        else:
            paths.append(Path(arg))
    return paths


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` → ``(1, 2, 3)``."""
    if not text:
        return None
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise InputError(f"--bands {text!r}: give band numbers separated by commas, e.g. 1,2,3") from None
