"""More than roofs, end to end: a multi-class model from class masks and from footprints
with a class column, predicted into a categorised layer and a class raster, and scored per
class. Slow: trains tiny models."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geoseg.cli import main

pytestmark = pytest.mark.slow
TINY = ["--encoder", "unet", "--depth", "3", "--width", "8", "--tile-size", "64", "--batch-size", "4",
        "--samples-per-epoch", "8", "--epochs", "3", "--time-limit", "0", "--quiet"]


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


def test_class_masks_train_predict_and_score_every_class(tmp_path):
    run("synth", tmp_path / "data", "--classes", "--train-size", "256", "--scene-size", "256", "--tile-size", "128")
    said = run("train", tmp_path / "data" / "train", "--out", tmp_path / "run", "--class-weights",
               *[a for a in TINY if a != "--quiet"])
    assert "class weights: background " in said  # rare classes weigh more than background
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header.endswith("iou_gabled roof,iou_flat roof,iou_road,iou_paving,iou_water")
    assert "classes      0 background, 1 gabled roof, 2 flat roof, 3 road, 4 paving, 5 water" in run(
        "info", tmp_path / "run" / "model.pt")
    said = run("predict", tmp_path / "data" / "scene.tif", "--model", tmp_path / "run" / "model.pt",
               "--out", tmp_path / "classes.gpkg", "--mask-out", tmp_path / "classes.tif")
    kinds = {"gabled roof", "flat roof", "road", "paving", "water"}
    assert "polygons of gabled roof, flat roof, road, paving, water" in said
    layer = gpd.read_file(tmp_path / "classes.gpkg", layer="classes")
    assert list(layer.columns[:2]) == ["id", "class"] and set(layer["class"]) <= kinds
    with rasterio.open(tmp_path / "classes.tif") as src:
        ids = src.read(1)
        assert ids.max() <= 5 and src.colormap(1)[1][:3] == (255, 200, 0)
    scores = run("evaluate", tmp_path / "data" / "test", "--model", tmp_path / "run" / "model.pt",
                 "--confusion", tmp_path / "confusion.csv")
    assert "mean (not background)" in scores and "water" in scores
    run("evaluate", tmp_path / "data" / "test", "--model", tmp_path / "run" / "model.pt", "--confusion",
        tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "confusion.csv").read_text().splitlines()
    assert rows[0].endswith("background,gabled roof,flat roof,road,paving,water") and len(rows) == 7
    run("predict", tmp_path / "data" / "scene.tif", "--model", tmp_path / "run" / "model.pt", "--out",
        tmp_path / "layers.gpkg", "--split-layers", "--no-preview")
    import pyogrio

    layers = [name for name, _ in pyogrio.list_layers(tmp_path / "layers.gpkg") if name != "layer_styles"]
    assert set(layers) <= kinds and layers  # a layer per class found, no class column
    assert "class" not in gpd.read_file(tmp_path / "layers.gpkg", layer=layers[0]).columns
    # object scores per class, against themselves: every class matched; a class --regularize-classes
    # does not know is one line
    scores = run("evaluate", "--pred", tmp_path / "classes.gpkg", "--truth", tmp_path / "classes.gpkg",
                 "--class-column", "class")
    assert scores.splitlines()[-1].split()[:1] == ["all"] and "1.0000" in scores.splitlines()[-1]
    bad = CliRunner().invoke(main, ["predict", str(tmp_path / "data" / "scene.tif"), "--model",
                                    str(tmp_path / "run" / "model.pt"), "--out", str(tmp_path / "r.gpkg"),
                                    "--regularize", "--regularize-classes", "flat roof,field"])
    assert bad.exit_code != 0 and "field: not a class of the model" in bad.output and not (tmp_path / "r.gpkg").exists()
    cluster = CliRunner().invoke(main, ["predict", str(tmp_path / "data" / "scene.tif"), "--model",
                                        str(tmp_path / "run" / "model.pt"), "--out", str(tmp_path / "c.gpkg"),
                                        "--workers", "1"])
    assert cluster.exit_code != 0 and "predicts in one process" in cluster.output
    # per-class thresholds: the class raster is the probability's classes under those cuts, and
    # evaluate scores the same; a bad pair or an unknown class is one line and writes nothing
    from geoseg.vector.classes import class_cuts, class_ids

    cuts = "road=0.2,water=0.6"
    run("predict", tmp_path / "data" / "scene.tif", "--model", tmp_path / "run" / "model.pt", "--out",
        tmp_path / "t.gpkg", "--prob-out", tmp_path / "t.prob.tif", "--mask-out", tmp_path / "t.mask.tif",
        "--class-thresholds", cuts, "--no-preview")
    with rasterio.open(tmp_path / "t.prob.tif") as p, rasterio.open(tmp_path / "t.mask.tif") as m:
        names = ("background", "gabled roof", "flat roof", "road", "paving", "water")
        assert np.array_equal(m.read(1), class_ids(p.read(), class_cuts(names, (("road", 0.2), ("water", 0.6)))))
    assert "mean (not background)" in run("evaluate", tmp_path / "data" / "test", "--model",
                                          tmp_path / "run" / "model.pt", "--class-thresholds", cuts)
    for bad_cuts, said in (("road", "give NAME=PROBABILITY pairs"), ("pond=0.3", "pond: not a class of the model"),
                           ("road=1.2", "between 0 and 1")):
        bad = CliRunner().invoke(main, ["predict", str(tmp_path / "data" / "scene.tif"), "--model",
                                        str(tmp_path / "run" / "model.pt"), "--out", str(tmp_path / "x.gpkg"),
                                        "--class-thresholds", bad_cuts])
        assert bad.exit_code != 0 and said in bad.output and not (tmp_path / "x.gpkg").exists(), bad.output
        assert len(bad.output.strip().splitlines()) == 1, bad.output


def test_footprints_with_a_class_column_train_a_model_of_their_classes(tmp_path):
    run("synth", tmp_path / "data", "--ortho-size", "256", "--train-size", "256", "--scene-size", "64")
    ortho = tmp_path / "data" / "ortho"
    footprints = gpd.read_file(ortho / "buildings.gpkg")
    kinds = np.where(np.arange(len(footprints)) % 2, "house", "garage")
    footprints.assign(building=kinds).to_file(tmp_path / "osm.gpkg")
    for bad, said in ((["--class-column", "landuse"], "has no column 'landuse'"),
                      (["--class-column", "building", "--classes", "castle"], "no polygon has a class of castle")):
        r = CliRunner().invoke(main, ["train", "--images", str(ortho / "ortho.tif"), "--labels",
                                      str(tmp_path / "osm.gpkg"), "--out", str(tmp_path / "bad"), *bad, *TINY])
        assert r.exit_code != 0 and said in r.output and not (tmp_path / "bad").exists(), r.output
    run("train", "--images", ortho / "ortho.tif", "--labels", tmp_path / "osm.gpkg", "--class-column", "building",
        "--out", tmp_path / "run", *TINY)
    said = run("predict", ortho / "ortho.tif", "--model", tmp_path / "run" / "model.pt", "--out",
               tmp_path / "kinds.gpkg")
    assert "polygons of garage, house" in said


def test_label_files_of_their_own_classes_with_lines_as_wide_as_asked(tmp_path):
    import rasterio
    from affine import Affine
    from shapely.geometry import LineString

    from geoseg.datasets import scenes as sc

    run("synth", tmp_path / "data", "--ortho-size", "256", "--train-size", "256", "--scene-size", "64",
        "--tile-size", "128")
    ortho = tmp_path / "data" / "ortho"
    with rasterio.open(ortho / "ortho.tif") as src:
        b, crs = src.bounds, src.crs
    middle = (b.bottom + b.top) / 2
    gpd.GeoDataFrame({"highway": ["primary"]}, geometry=[LineString([(b.left, middle), (b.right, middle)])],
                     crs=crs).to_crs(4326).to_file(tmp_path / "roads.gpkg")  # lon/lat: buffered in metres all the same
    [scene], _, spec = sc.load_scenes(str(ortho / "ortho.tif"), str(ortho / "buildings.gpkg"), None, None, 1e6,
                                      class_labels=(f"{tmp_path / 'roads.gpkg'}:road",), line_width=6.0)
    assert spec.names == ("background", "roof", "road")
    mask = sc._burn(scene.footprints, Affine.identity(), 256, values=scene.class_ids)
    assert (mask[:, 128] == 2).sum() == 20  # 6 m at 0.3 m a pixel, across the middle row
    bad = CliRunner().invoke(main, ["train", "--images", str(ortho / "ortho.tif"), "--labels",
                                    str(ortho / "buildings.gpkg"), "--class-labels", str(tmp_path / "roads.gpkg"),
                                    "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "give FILE:CLASS" in bad.output
    run("train", "--images", ortho / "ortho.tif", "--labels", ortho / "buildings.gpkg", "--class-labels",
        f"{tmp_path / 'roads.gpkg'}:road", "--out", tmp_path / "run", *TINY)
    assert "1 roof, 2 road" in run("info", tmp_path / "run" / "model.pt")
    # the same as --labels given again, each file with its class; the first names its own class
    run("train", "--images", ortho / "ortho.tif", "--labels", f"{ortho / 'buildings.gpkg'}:building", "--labels",
        f"{tmp_path / 'roads.gpkg'}:road", "--out", tmp_path / "run2", *TINY)
    assert "1 building, 2 road" in run("info", tmp_path / "run2" / "model.pt")
    bad = CliRunner().invoke(main, ["train", "--images", str(ortho / "ortho.tif"), "--labels",
                                    str(ortho / "buildings.gpkg"), "--labels", str(tmp_path / "roads.gpkg"),
                                    "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "as " + str(tmp_path / "roads.gpkg") + ":CLASS" in bad.output, bad.output
    assert len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
