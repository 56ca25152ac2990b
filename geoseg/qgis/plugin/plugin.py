"""Registers the geoseg Processing provider with QGIS."""

from qgis.core import QgsApplication


class GeosegPlugin:
    """Registers the geoseg Processing provider while the plugin is enabled."""

    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802
        from .provider import GeosegProvider

        self.provider = GeosegProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
