"""geoseg in QGIS: the Processing plugin (``plugin/``, run by QGIS's own Python; it imports
no geoseg module and runs the ``geoseg`` command) and the writer that installs it."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "install": ("PLUGIN", "FILES", "write_plugin"),
})
