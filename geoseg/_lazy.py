"""Lazy re-exports for the subpackages' ``__init__``: ``geoseg.vector.PolygonStream`` imports
``geoseg.vector.stream`` when it is first asked for, so importing a subpackage costs nothing
(``geoseg --help`` stays instant, torch is imported only by what needs it) and no import
made only to re-export can close a circle."""

from __future__ import annotations

import importlib


def exports(package: str, table: dict[str, tuple[str, ...]]):
    """``(__all__, __getattr__, __dir__)`` for ``package``, whose public names are given by
    module: ``{"stream": ("PolygonStream", "vectorize"), ...}``."""
    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            setattr(importlib.import_module(package), name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(where)

    return sorted(where), __getattr__, __dir__
