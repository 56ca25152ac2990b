"""Real clients read our outputs: GDAL's ogrinfo and QGIS itself (headless).

Skipped with a reason where they are not installed (Debian: gdal-bin, python3-qgis;
`.ci/run` installs them when it can). QGIS runs under the system Python in a subprocess
that prints its verdict first, because QGIS can crash while tearing down.
"""

import json
import os
import re
import shutil
import subprocess

import geopandas as gpd
import pytest
import rasterio
from shapely.geometry import box

from geoseg.config import TileOptions, VectorizeOptions
from geoseg.jobs.predict import Outputs, run_predict

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def outputs(tiny_model, synth_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("clients")
    for name in ("roofs.geojson", "roofs.gpkg"):
        (out / name.split(".")[1]).mkdir()
        run_predict(synth_task["scene"], tiny_model, Outputs(out / name.split(".")[1] / name, preview=False),
                    TileOptions(tile_size=64), VectorizeOptions(threshold=0.3))
    assert not (out / "gpkg" / "roofs.qml").exists()  # the GeoPackage carries its own style
    with rasterio.open(synth_task["scene"]) as src:
        footprint = gpd.GeoSeries([box(*src.bounds)], crs=src.crs).to_crs(4326).total_bounds
    out = {name: out / name.split(".")[1] / name for name in ("roofs.geojson", "roofs.gpkg")}
    counts = {name: len(gpd.read_file(path, layer="roofs")) for name, path in out.items()}
    assert counts["roofs.geojson"] > 0
    return out, footprint, counts


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo absent (Debian package gdal-bin)")
@pytest.mark.parametrize("name,epsg", [("roofs.geojson", "4326"), ("roofs.gpkg", "25832")])
def test_ogrinfo_reads_crs_geometry_and_count(outputs, name, epsg):
    out, _, counts = outputs
    info = subprocess.run(["ogrinfo", "-so", "-al", str(out[name])], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Geometry: (3D )?Polygon", info), info
    assert f"Feature Count: {counts[name]}" in info
    assert f'ID["EPSG",{epsg}]' in info.replace(" ", "")


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo absent (Debian package gdal-bin)")
def test_the_geopackage_style_table_is_conformant_to_gdal(outputs):
    out, _, _ = outputs
    # GDAL checks each column's content against the GeoPackage types as it reads every record
    run = subprocess.run(["ogrinfo", "-ro", "-al", "--config", "CPL_DEBUG", "OFF", str(out["roofs.gpkg"]),
                          "layer_styles"], capture_output=True, text=True, check=True)
    assert "Non-conformant" not in run.stderr + run.stdout, run.stderr
    assert re.search(r"update_time \(DateTime\) = \d{4}/\d\d/\d\d \d\d:\d\d:\d\d", run.stdout), run.stdout
    import sqlite3

    with sqlite3.connect(out["roofs.gpkg"]) as db:  # as the standard writes it: 2026-11-25T17:45:07.000Z
        [(stamp,)] = db.execute("SELECT update_time FROM layer_styles").fetchall()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp


QGIS_CHECK = r"""
import json, sys
from qgis.core import QgsApplication, QgsVectorLayer, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject
app = QgsApplication([], False); app.initQgis()
out = {}
for path in sys.argv[1:]:
    layer = QgsVectorLayer(path, "roofs", "ogr")
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    ext = QgsCoordinateTransform(layer.crs(), wgs84, QgsProject.instance()).transformBoundingBox(layer.extent())
    symbol = layer.renderer().symbol().symbolLayer(0)
    out[path] = dict(valid=layer.isValid(), authid=layer.crs().authid(), count=layer.featureCount(),
                     extent=[ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()],
                     geometry=layer.geometryType(), stroke=symbol.strokeColor().name(),
                     stroke_mm=symbol.strokeWidth())
print(json.dumps(out), flush=True)
"""


def qgis_available() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True).returncode == 0


@pytest.mark.skipif(not qgis_available(), reason="QGIS absent (Debian package python3-qgis)")
def test_qgis_loads_both_layers_in_place(outputs):
    out, footprint, counts = outputs
    paths = [str(out[n]) for n in ("roofs.geojson", "roofs.gpkg")]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([SYSTEM_PYTHON, "-c", QGIS_CHECK, *paths], capture_output=True, text=True, env=env,
                          timeout=300)
    verdict = json.loads(proc.stdout.strip().splitlines()[0])  # printed before QGIS tears down
    west, south, east, north = footprint
    for path, name, authid in zip(paths, ("roofs.geojson", "roofs.gpkg"), ("EPSG:4326", "EPSG:25832")):
        v = verdict[path]
        assert v["valid"] and v["authid"] == authid and v["count"] == counts[name]
        assert v["stroke"] == "#ffc800" and v["stroke_mm"] == 0.6  # the roof style, loaded as default
        x0, y0, x1, y1 = v["extent"]
        eps = 1e-6
        assert west - eps <= x0 <= x1 <= east + eps and south - eps <= y0 <= y1 <= north + eps, (v, footprint)
