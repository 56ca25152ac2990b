"""geoseg's Processing algorithms: each builds a geoseg command line and runs it (``runner``)."""

import csv
import os
import shlex
import tempfile

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
)

from . import runner


def _source(layer) -> str:
    """A layer's file (or URL) as geoseg reads it: the data source without QGIS's options."""
    return layer.source().split("|")[0]


def _vector(layer, option: str) -> list:
    """A vector layer as geoseg's options: its file, and the layer of a multi-layer file and the
    subset filter QGIS shows it with (``path|layername=roofs|subset=...``), so geoseg reads
    the features the user sees, not the file's first layer whole. ``option``: "--labels",
    "--pred" or "--truth"; its layer and filter go to ``OPTION-layer`` and ``OPTION-where``."""
    path, *parts = layer.source().split("|")
    args = [option, path]
    for part in parts:
        key, _, value = part.partition("=")
        if key == "layername" and value:
            args += [f"{option}-layer", value]
    if layer.subsetString():
        args += [f"{option}-where", layer.subsetString()]
    return args


class _Geoseg(QgsProcessingAlgorithm):
    def createInstance(self):  # noqa: N802
        return type(self)()

    def group(self):
        return "Roofs"

    def groupId(self):  # noqa: N802
        return "roofs"


class PredictRoofs(_Geoseg):
    """geoseg:predict: roof polygons of a raster layer, with a model.pt (or the starter)."""

    def name(self):
        return "predict"

    def displayName(self):  # noqa: N802
        return "Predict roofs"

    def shortHelpString(self):  # noqa: N802
        return ("Roof polygons of a raster layer (or a file or URL) with a geoseg model: by default the starter model"
                " shipped with geoseg (RGB, 0.3 m/px). Tiles are stitched without seams, the outlines cleaned and"
                " optionally regularised; the layer comes styled.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster layer"))
        self.addParameter(QgsProcessingParameterFile("MODEL", "Model (.pt; empty: the starter model)", optional=True,
                                                     extension="pt"))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD", "Roof probability cut",
                                                       QgsProcessingParameterNumber.Double, 0.5, minValue=0.01,
                                                       maxValue=0.99))
        self.addParameter(QgsProcessingParameterNumber("MIN_AREA", "Minimum area, m² (0: 20 pixels)",
                                                       QgsProcessingParameterNumber.Double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber("SIMPLIFY", "Simplification, m (-1: one pixel)",
                                                       QgsProcessingParameterNumber.Double, -1.0, minValue=-1.0))
        self.addParameter(QgsProcessingParameterBoolean("REGULARIZE", "Regularise outlines (right angles)", False))
        self.addParameter(QgsProcessingParameterNumber(
            "SPLIT", "Cut touching roofs apart, seed probability (-1: the model's default; 0: off)",
            QgsProcessingParameterNumber.Double, -1.0, minValue=-1.0, maxValue=0.99))
        self.addParameter(QgsProcessingParameterString(
            "CLASS_THRESHOLDS", "A model of several classes: per-class probability cuts, NAME=P comma-separated"
            " (empty: each pixel its most probable class)", optional=True))
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Roofs"))
        self.addParameter(QgsProcessingParameterRasterDestination("PROBABILITY", "Roof probability", optional=True,
                                                                  createByDefault=False))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None:
            raise QgsProcessingException("no raster layer given")
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not out.lower().endswith((".gpkg", ".geojson", ".json")):
            out = os.path.splitext(out)[0] + ".gpkg"
        args = ["predict", _source(layer), "--out", out, "--overwrite", "--no-preview",
                "--threshold", str(self.parameterAsDouble(parameters, "THRESHOLD", context))]
        model = self.parameterAsFile(parameters, "MODEL", context)
        if model:
            args += ["--model", model]
        min_area = self.parameterAsDouble(parameters, "MIN_AREA", context)
        if min_area > 0:
            args += ["--min-area", str(min_area)]
        simplify = self.parameterAsDouble(parameters, "SIMPLIFY", context)
        if simplify >= 0:
            args += ["--simplify", str(simplify)]
        if self.parameterAsBool(parameters, "REGULARIZE", context):
            args.append("--regularize")
        split = self.parameterAsDouble(parameters, "SPLIT", context)
        if split >= 0:
            args += ["--split", str(split)]
        cuts = (self.parameterAsString(parameters, "CLASS_THRESHOLDS", context) or "").strip()
        if cuts:
            args += ["--class-thresholds", cuts]
        prob = self.parameterAsOutputLayer(parameters, "PROBABILITY", context) if parameters.get("PROBABILITY") else ""
        if prob:
            args += ["--prob-out", prob]
        runner.run(args, feedback)
        result = {"OUTPUT": out}
        if prob:
            result["PROBABILITY"] = prob
        return result


class TrainRoofs(_Geoseg):
    """geoseg:train: a model from a raster layer and building footprints, into a new run folder."""

    def name(self):
        return "train"

    def displayName(self):  # noqa: N802
        return "Train a roof model"

    def shortHelpString(self):  # noqa: N802
        return ("Train a geoseg model from scenes (a raster file, a folder or a glob) and building footprints (a vector"
                " layer or file), read in windows, within a time limit; the run folder (new or empty: one that holds"
                " files is refused, never emptied) gets model.pt and its curves."
                " Fine-tune the starter model with 'Start from the starter model'.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("IMAGES", "Scene (GeoTIFF, VRT) or folder of scenes",
                                                     behavior=QgsProcessingParameterFile.File))
        self.addParameter(QgsProcessingParameterVectorLayer("LABELS", "Building footprints"))
        self.addParameter(QgsProcessingParameterNumber("MINUTES", "Time limit, minutes",
                                                       QgsProcessingParameterNumber.Double, 10.0, minValue=0.1))
        self.addParameter(QgsProcessingParameterBoolean("STARTER", "Start from the starter model", True))
        self.addParameter(QgsProcessingParameterString("EXTRA", "More geoseg train options", optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Run folder"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        out = self.parameterAsString(parameters, "OUTPUT", context)
        labels = self.parameterAsVectorLayer(parameters, "LABELS", context)
        # never --overwrite: a run folder that holds anything is refused by geoseg, not emptied
        args = ["train", "--images", self.parameterAsFile(parameters, "IMAGES", context), *_vector(labels, "--labels"),
                "--out", out, "--time-limit", str(self.parameterAsDouble(parameters, "MINUTES", context)),
                "--epochs", "100000"]
        if self.parameterAsBool(parameters, "STARTER", context):
            args += ["--init", "starter"]
        try:  # as a shell splits them: quoted values stay whole
            args += shlex.split(self.parameterAsString(parameters, "EXTRA", context) or "")
        except ValueError as exc:
            raise QgsProcessingException(f"More geoseg train options: {exc}; close the quotes") from None
        if "--overwrite" in args:
            raise QgsProcessingException("--overwrite is not taken here (it would empty the run folder); choose a new"
                                         " or empty run folder")
        runner.run(args, feedback)
        return {"OUTPUT": out, "MODEL": os.path.join(out, "model.pt")}


class EvaluateRoofs(_Geoseg):
    """geoseg:evaluate: object precision, recall, F1 and area IoU of polygons against true ones."""

    FIELDS = ("precision", "recall", "f1", "area_iou")

    def name(self):
        return "evaluate"

    def displayName(self):  # noqa: N802
        return "Evaluate roofs against true polygons"

    def shortHelpString(self):  # noqa: N802
        return ("Object scores of predicted roof polygons against true ones (one-to-one matching at IoU ≥ 0.5, as the"
                " SpaceNet challenge) and the IoU of the areas they cover; in the log and as outputs.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterVectorLayer("PRED", "Predicted roofs"))
        self.addParameter(QgsProcessingParameterVectorLayer("TRUTH", "True roofs"))
        for name in self.FIELDS:
            self.addOutput(QgsProcessingOutputNumber(name.upper(), name.replace("_", " ")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        pred = self.parameterAsVectorLayer(parameters, "PRED", context)
        truth = self.parameterAsVectorLayer(parameters, "TRUTH", context)
        with tempfile.TemporaryDirectory() as tmp:
            table = os.path.join(tmp, "scores.csv")
            runner.run(["evaluate", *_vector(pred, "--pred"), *_vector(truth, "--truth"), "--csv", table], feedback)
            with open(table, newline="") as fh:
                row = next(csv.DictReader(fh))
        return {name.upper(): float(row[name]) for name in self.FIELDS}
