"""Option callbacks: command-line text turned into the values the library takes (band lists,
boxes, comma lists, scene globs), so the library never parses flags. A bad value is click's
one-line ``Invalid value for '--bands': …``."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import click


def _numbers(text: str, kind: type, example: str, param) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give numbers separated by commas, e.g. {example}", param=param) from None


def bands(ctx, param, text: str | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` → ``(1, 2, 3)``."""
    return _numbers(text, int, "1,2,3", param) if text else None


def bbox(ctx, param, text: str | None) -> tuple[float, float, float, float] | None:
    """``"minx,miny,maxx,maxy"`` → four floats (their ranges are the library's to check)."""
    if not text:
        return None
    values = _numbers(text, float, "6.95,50.93,6.97,50.95", param)
    if len(values) != 4:
        raise click.BadParameter(f"{text!r}: give minx,miny,maxx,maxy in degrees, e.g. 6.95,50.93,6.97,50.95",
                                 param=param)
    return values


def names(ctx, param, text: str | None) -> tuple[str, ...] | None:
    """``"red, green,blue"`` → ``("red", "green", "blue")``."""
    return tuple(v.strip() for v in text.split(",")) if text else None


def class_thresholds(ctx, param, text: str | None) -> tuple[tuple[str, float], ...] | None:
    """``"road=0.3, water=0.6"`` → ``(("road", 0.3), ("water", 0.6))`` (the names and the
    ranges are the library's to check)."""
    if not text:
        return None
    pairs = []
    for item in text.split(","):
        name, _, p = item.partition("=")
        try:
            pairs.append((name.strip(), float(p)))
        except ValueError:
            raise click.BadParameter(f"{item.strip()!r}: give NAME=PROBABILITY pairs separated by commas, e.g."
                                     " road=0.3,water=0.6", param=param) from None
        if not name.strip():
            raise click.BadParameter(f"{item.strip()!r}: a class name before '=', e.g. road=0.3", param=param)
    return tuple(pairs)


def label_files(ctx, param, items: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    """``--labels`` given once or more: ``(path, class or None)`` each (``config.with_class``)."""
    from geoseg.config import with_class

    return tuple(with_class(item) for item in items)


def scenes(ctx, param, args: tuple[str, ...]) -> list:
    """Scene arguments → paths: a pattern with ``*``, ``?`` or ``[`` that names no file is
    expanded (sorted), for a glob quoted from the shell; a URL or ``/vsi…/`` path is kept as
    it is (never globbed or checked as a local file)."""
    from geoseg.io.remote import is_remote

    paths: list = []
    for arg in args:
        if is_remote(arg):
            paths.append(str(arg))
        elif not os.path.exists(arg) and glob.has_magic(arg):
            found = sorted(glob.glob(arg))
            if not found:
                raise click.BadParameter(f"{arg}: no file matches this pattern; check the path", param=param)
            paths += [Path(p) for p in found]
        else:
            paths.append(Path(arg))
    return paths
