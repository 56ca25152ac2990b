"""Classes beyond roofs: how class masks, class columns and their bad inputs are read."""

import json

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box

from geoseg.cli import main
from geoseg.datasets.classes import ClassSpec, colours_of, spec_for
from geoseg.datasets.tiles import Pair, read_label
from geoseg.errors import GeosegWarning, InputError
from tests.conftest import write_tif


def test_class_names_come_from_the_option_a_classes_file_or_a_column(tmp_path):
    assert spec_for(None, None, None, str(tmp_path)).names == ("background", "roof")
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["roof", "road"]}))
    assert spec_for(None, None, None, str(tmp_path)).names == ("background", "roof", "road")
    assert spec_for(("a", "b", "c"), None, 255, str(tmp_path)).names == ("background", "a", "b", "c")
    frame = gpd.GeoDataFrame({"landuse": ["industrial", "residential", "industrial"]},
                             geometry=[box(0, 0, 1, 1)] * 3)
    assert spec_for(None, "landuse", None, None, frame).names == ("background", "industrial", "residential")
    for bad in (("roof", "roof"), ("background",), ("",)):
        with pytest.raises(InputError, match="distinct, non-empty names"):
            spec_for(bad, None, None, None)
    (tmp_path / "classes.json").write_text("[1, 2")
    with pytest.raises(InputError, match="not a class list"):
        spec_for(None, None, None, str(tmp_path))


def test_a_class_mask_is_read_as_ids_with_its_ignored_value_out_of_the_loss(tmp_path):
    m = np.array([[0, 1, 2], [3, 255, 1]], np.uint8)
    write_tif(tmp_path / "m.tif", m)
    write_tif(tmp_path / "i.tif", np.zeros((3, 2, 3), np.uint8))
    spec = ClassSpec(("background", "a", "b", "c"), ignore=255)
    ids, valid = read_label(Pair(tmp_path / "i.tif", tmp_path / "m.tif"), spec=spec)
    assert ids.tolist() == [[0, 1, 2], [3, 0, 1]] and valid.tolist() == [[True] * 3, [True, False, True]]
    with pytest.raises(InputError, match="holds class id 3, but there are 3 classes"):
        read_label(Pair(tmp_path / "i.tif", tmp_path / "m.tif"), spec=ClassSpec(("background", "a", "b"), ignore=255))
    with pytest.warns(GeosegWarning, match="thresholded at 128"):  # no classes: a roof mask, as ever
        roofs, valid = read_label(Pair(tmp_path / "i.tif", tmp_path / "m.tif"))
    assert valid is None and set(np.unique(roofs)) <= {0, 1}


def test_a_class_column_burns_each_polygon_as_its_class_and_a_missing_column_is_one_line(tmp_path):
    write_tif(tmp_path / "i.tif", np.zeros((3, 20, 20), np.uint8), transform=Affine(1, 0, 0, 0, -1, 0))
    frame = gpd.GeoDataFrame({"kind": ["road", "roof", "shed"]},
                             geometry=[box(2, -5, 6, -1), box(10, -15, 14, -11), box(15, -4, 18, -1)], crs=25832)
    frame.to_file(tmp_path / "l.gpkg")
    spec = ClassSpec(("background", "roof", "road"), column="kind")
    ids, _ = read_label(Pair(tmp_path / "i.tif", tmp_path / "l.gpkg"), spec=spec)
    assert set(np.unique(ids)) == {0, 1, 2}  # the shed, a class not kept, is background
    with pytest.raises(InputError, match="has no column 'landuse'"):
        read_label(Pair(tmp_path / "i.tif", tmp_path / "l.gpkg"), spec=ClassSpec(column="landuse"))
    assert colours_of(("background", "roof", "road"))[:2] == ("#000000", "#ffc800")


@pytest.mark.parametrize("args, said", [
    (["--class-column", "kind"], "`--class-column` names the labels' column"),
    (["--ignore-index", "300"], "--ignore-index must be a mask value"),
    (["--classes", "roof,roof"], "distinct, non-empty names"),
])
def test_bad_class_options_are_one_line(labelled, tmp_path, args, said):
    r = CliRunner().invoke(main, ["train", str(labelled), "--out", str(tmp_path / "run"), *args])
    lines = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert r.exit_code != 0 and len(lines) == 1 and said.replace("`", "") in lines[0].replace("`", ""), r.output
    assert not (tmp_path / "run").exists()


def test_mask_ids_above_the_classes_are_one_line(labelled, tmp_path):
    (labelled / "classes.json").write_text(json.dumps({"classes": ["roof"]}))
    write_tif(labelled / "masks" / "t0.tif", np.full((64, 64), 4, np.uint8))
    r = CliRunner().invoke(main, ["train", str(labelled), "--out", str(tmp_path / "run"), "--ignore-index", "255"])
    assert r.exit_code != 0 and "holds class id 4, but there are 2 classes" in r.output


def test_windows_are_centred_on_a_rare_class_as_often_as_on_a_common_one(tmp_path):
    import torch

    from geoseg.datasets import scenes as sc
    from geoseg.datasets.normalisation import Normalisation
    from geoseg.samplers import blocks

    write_tif(tmp_path / "s.tif", np.zeros((3, 400, 400), np.uint8))  # 0.3 m pixels from (356000, 5646000)
    x0, y0 = 356_000.0, 5_646_000.0
    common = [box(x0 + 3 + 5 * i, y0 - 20, x0 + 5 + 5 * i, y0 - 18) for i in range(19)]
    rare = [box(x0 + 60, y0 - 100, x0 + 62, y0 - 98)]
    gpd.GeoDataFrame({"kind": ["house"] * 19 + ["tower"]}, geometry=common + rare, crs=25832).to_file(
        tmp_path / "b.gpkg")
    scenes, _, spec = sc.load_scenes(str(tmp_path / "s.tif"), str(tmp_path / "b.gpkg"), None, None, 200.0,
                                     class_column="kind")
    assert spec.names == ("background", "house", "tower")
    zones = blocks.spatial_split(scenes, 64, 0.0, 0)
    ds = sc.WindowDataset(scenes, zones, Normalisation(255.0, (0.0,) * 3, (1.0,) * 3), 64, positive_fraction=1.0)
    torch.manual_seed(0)
    rows = np.array([ds.draw()[1] for _ in range(400)])  # the rare tower lies far below the houses' row
    tower = (rows > 150).mean()
    assert 0.35 < tower < 0.65, tower  # about half; drawn by footprint it would be about 1 in 20
