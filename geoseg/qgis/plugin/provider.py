"""The geoseg Processing provider: predict, train and evaluate."""

from qgis.core import QgsProcessingProvider


class GeosegProvider(QgsProcessingProvider):
    """The geoseg algorithms in QGIS's Processing toolbox."""

    def id(self):
        return "geoseg"

    def name(self):
        return "geoseg"

    def longName(self):  # noqa: N802
        return "geoseg: roof polygons with a U-Net"

    def loadAlgorithms(self):  # noqa: N802
        from .algorithms import EvaluateRoofs, PredictRoofs, TrainRoofs

        for algorithm in (PredictRoofs(), TrainRoofs(), EvaluateRoofs()):
            self.addAlgorithm(algorithm)
