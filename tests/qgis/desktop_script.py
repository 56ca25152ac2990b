"""Run by the real QGIS desktop (``qgis --code``) in tests/qgis/test_desktop.py: geoseg:predict
from the Processing toolbox's registry, the result loaded over the scene with its style, a
screenshot of the map canvas, and a verdict as JSON (QGIS may crash while closing)."""

import json
import os
import traceback

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

ARGS = json.loads(os.environ["GEOSEG_DESKTOP_ARGS"])


def finish(verdict):
    with open(ARGS["verdict"], "w") as fh:
        json.dump(verdict, fh)
    os._exit(0)


def shoot(scene, roofs, verdict):
    try:
        canvas = iface.mapCanvas()
        canvas.saveAsImage(ARGS["screenshot"])
        node = QgsProject.instance().layerTreeRoot().findLayer(roofs.id())
        e, s, c = roofs.extent(), scene.extent(), canvas.extent()
        verdict.update(visible=bool(node and node.isVisible()), count=roofs.featureCount(),
                       roofs_extent=[e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()],
                       scene_extent=[s.xMinimum(), s.yMinimum(), s.xMaximum(), s.yMaximum()],
                       canvas_extent=[c.xMinimum(), c.yMinimum(), c.xMaximum(), c.yMaximum()],
                       canvas_layers=[layer.name() for layer in canvas.layers()],
                       renderer=roofs.renderer().type(),
                       style=(roofs.renderer().symbol().symbolLayer(0).strokeColor().name()
                              if roofs.renderer().type() == "singleSymbol" else
                              {c.value(): c.symbol().color().name() for c in roofs.renderer().categories()}))
    except Exception:
        verdict["error"] = traceback.format_exc()
    finish(verdict)


def run():
    verdict = {"plugin_loaded": "geoseg" in plugins,
               "provider": QgsApplication.processingRegistry().providerById("geoseg") is not None}
    try:
        import processing

        result = processing.run("geoseg:predict", {"INPUT": ARGS["scene"], "MODEL": ARGS["model"],
                                                   "OUTPUT": ARGS["out"]})
        scene = QgsRasterLayer(ARGS["scene"], "scene")
        layer = ARGS.get("layer")  # a model of several classes writes the layer "classes"
        source = result["OUTPUT"] + (f"|layername={layer}" if layer else "")
        roofs = QgsVectorLayer(source, layer or "roofs", "ogr")  # its style comes with it (layer_styles)
        QgsProject.instance().addMapLayer(scene)
        QgsProject.instance().addMapLayer(roofs)
        canvas = iface.mapCanvas()
        canvas.setDestinationCrs(scene.crs())
        canvas.setExtent(scene.extent())
        canvas.refresh()
        canvas.mapCanvasRefreshed.connect(lambda: QTimer.singleShot(500, lambda: shoot(scene, roofs, verdict)))
        QTimer.singleShot(60000, lambda: shoot(scene, roofs, {**verdict, "timeout": True}))
    except Exception:
        verdict["error"] = traceback.format_exc()
        finish(verdict)


QTimer.singleShot(2000, run)  # once the main window is up and the plugins are loaded
