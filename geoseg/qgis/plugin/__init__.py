"""geoseg's QGIS plugin: a Processing provider that runs the ``geoseg`` command.

QGIS loads it from its plugins folder (``geoseg qgis-plugin DIR`` writes it there). It
imports nothing of geoseg: QGIS's Python has no torch, so each algorithm runs the geoseg
command of the user's environment as a child process (``runner``)."""


def classFactory(iface):  # noqa: N802  (QGIS's name)
    """The plugin QGIS loads (QGIS's entry point)."""
    from .plugin import GeosegPlugin

    return GeosegPlugin(iface)
