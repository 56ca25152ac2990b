"""Several overlapping scenes → one layer: no duplicates, cut roofs made whole."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window
from shapely.geometry import box
from shapely.ops import unary_union

from cli import main
from geoseg.config import TileOptions
from geoseg.errors import InputError
from geoseg.jobs.predict import Outputs, run_predict
from geoseg.vector.merge import Footprint, SceneMerger

CRS = "EPSG:25832"


def chunk(rows):
    return gpd.GeoDataFrame({"id": 0, "area_m2": [g.area for _, g, _ in rows], "perimeter_m": 0.0,
                             "score": [s for _, _, s in rows], "scene": [n for n, _, _ in rows]},
                            geometry=[g for _, g, _ in rows], crs=CRS)


def test_overlapping_scenes_keep_each_roof_once_and_make_cut_roofs_whole():
    a, b = box(0, 0, 100, 50), box(60, 0, 160, 50)  # 40 m of overlap, 1 m pixels
    merger = SceneMerger([Footprint(a, 1.0), Footprint(b, 1.0)], CRS)
    out = [merger.add(chunk([
        ("a", box(10, 10, 30, 20), 0.9),     # only in a
        ("a", box(70, 10, 85, 20), 0.8),     # in both: 15 m from a's edge
        ("a", box(90, 10, 100, 20), 0.7),    # cut by a's edge
        ("a", box(50, 30, 100, 40), 0.6),    # wider than the overlap: cut by a's edge
    ]), 0), merger.add(chunk([
        ("b", box(70.5, 10, 85.5, 20), 0.5),  # the same roof, 10 m from b's edge: a's wins
        ("b", box(90, 10, 110, 20), 0.95),    # whole in b: wins over a's piece
        ("b", box(60, 30, 120, 40), 0.6),     # cut by b's edge: joined with a's piece
        ("b", box(130, 10, 150, 20), 0.9),    # only in b
    ]), 1)]
    assert len(out[0]) == 1 and len(out[1]) == 1  # the polygons away from the other scene pass at once
    out.append(merger.finish())
    roofs = gpd.GeoDataFrame(gpd.pd.concat(out, ignore_index=True), crs=CRS)
    assert list(roofs.id) == [1, 2, 3, 4, 5]
    bounds = sorted(tuple(g.bounds) for g in roofs.geometry)
    assert bounds == [(10, 10, 30, 20), (50, 30, 120, 40), (70, 10, 85, 20), (90, 10, 110, 20), (130, 10, 150, 20)]
    joined = roofs[roofs.geometry.bounds.minx == 50].iloc[0]
    assert joined.area_m2 == pytest.approx(700.0) and joined.scene == "a;b" and joined.geometry.exterior.is_ccw


def test_a_roof_across_the_shared_edge_of_adjacent_scenes_is_joined():
    a, b = box(0, 0, 100, 50), box(100, 0, 200, 50)  # side by side, no overlap
    merger = SceneMerger([Footprint(a, 1.0), Footprint(b, 1.0)], CRS)
    out = [merger.add(chunk([("a", box(90, 10, 100, 20), 0.8), ("a", box(10, 10, 20, 20), 0.8)]), 0),
           merger.add(chunk([("b", box(100, 10, 115, 20), 0.6), ("b", box(100, 30, 110, 40), 0.7)]), 1),
           merger.finish()]
    roofs = gpd.GeoDataFrame(gpd.pd.concat(out, ignore_index=True), crs=CRS)
    assert sorted(tuple(round(v, 6) for v in g.bounds) for g in roofs.geometry) == [
        (10, 10, 20, 20), (90, 10, 115, 20), (100, 30, 110, 40)]
    joined = roofs[roofs.area_m2 > 200].iloc[0]
    assert joined.area_m2 == pytest.approx(250.0) and len(joined.geometry.exterior.coords) == 5
    assert joined.score == pytest.approx((0.8 * 100 + 0.6 * 150) / 250, abs=1e-4)


def split_scene(scene, tmp_path):
    """The scene as two GeoTIFFs that overlap by a third of its width."""
    paths = []
    with rasterio.open(scene) as src:
        w = src.width
        for name, c0, c1 in (("west", 0, 2 * w // 3), ("east", w // 3, w)):
            win = Window(c0, 0, c1 - c0, src.height)
            profile = {**src.profile, "width": c1 - c0, "transform": src.window_transform(win)}
            with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
                dst.write(src.read(window=win))
            paths.append(tmp_path / f"{name}.tif")
    return paths


def test_two_overlapping_scenes_give_the_roofs_of_the_whole_scene_once(tiny_model, synth_task, tmp_path):
    west, east = split_scene(synth_task["scene"], tmp_path)
    opts = TileOptions(tile_size=64, precision="fp32")
    whole = run_predict(synth_task["scene"], tiny_model, Outputs(tmp_path / "whole.gpkg", preview=False), opts)
    merged = run_predict([west, east], tiny_model, tmp_path / "merged.gpkg", opts)
    assert merged.scenes == 2 and merged.preview is None
    a, b = gpd.read_file(whole.out, layer="roofs"), gpd.read_file(merged.out, layer="roofs")
    assert sorted(b.id) == list(range(1, len(b) + 1)) and b.is_valid.all()
    # no two output polygons overlap: each roof is there once
    left, right = b.sindex.query(b.geometry, predicate="intersects")
    pairs = left < right
    assert all(b.geometry[i].intersection(b.geometry[j]).area < 1e-6 for i, j in zip(left[pairs], right[pairs]))
    ua, ub = unary_union(list(a.geometry)), unary_union(list(b.geometry))
    assert ua.intersection(ub).area / ua.union(ub).area > 0.9



def test_the_roofs_of_two_overlapping_crops_merge_into_those_of_the_whole(tmp_path):
    """A town's true roofs as a probability raster, cut into two overlapping crops: merged,
    their polygons are the whole raster's, the roofs cut by a crop's edge included."""
    from geoseg.config import VectorizeOptions
    from geoseg.datasets.synth import write_scene
    from geoseg.datasets.town import make_town
    from geoseg.io.raster import scene_info
    from geoseg.jobs.areas import footprint
    from geoseg.vector.stream import vectorize

    town = make_town(768, 384, seed=3)
    write_scene(town, tmp_path / "town.tif")
    with rasterio.open(tmp_path / "town.tif") as src:
        profile = {**src.profile, "count": 1}
        crs = src.crs
    whole = tmp_path / "whole.tif"
    with rasterio.open(whole, "w", **profile) as dst:
        dst.write(town.mask[None].astype(np.uint8) * 230)
    crops = split_scene(whole, tmp_path)
    infos = []
    for c in crops:
        with rasterio.open(c) as src:
            infos.append(scene_info(src))
    options = VectorizeOptions(simplify=0)
    merger = SceneMerger([footprint(i, crs) for i in infos], crs)
    parts = [merger.add(vectorize(c, options, c.name), k) for k, c in enumerate(crops)] + [merger.finish()]
    merged = gpd.GeoDataFrame(gpd.pd.concat(parts, ignore_index=True), crs=crs)
    expected = vectorize(whole, options)
    x_edges = [infos[1].transform[2], infos[0].transform[2] + infos[0].width * infos[0].transform[0]]
    cut = sum(g.bounds[0] < x < g.bounds[2] for g in expected.geometry for x in x_edges)
    assert cut >= 3 and len(merged) == len(expected) > 10
    for g in expected.geometry:
        best = max(merged.geometry, key=lambda m: m.intersection(g).area)
        assert best.symmetric_difference(g).area < 1e-6
    assert list(merged.id) == list(range(1, len(merged) + 1))


def test_scenes_from_a_quoted_glob_on_the_command_line(tiny_model, synth_task, tmp_path):
    split_scene(synth_task["scene"], tmp_path)
    out = tmp_path / "roofs.geojson"
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "*.tif"), "--model", str(tiny_model),
                                    "--out", str(out), "--tile-size", "64", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "from 2 scenes" in res.output and out.exists() and not (tmp_path / "roofs.preview.png").exists()
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "nothing-*.tif"), "--model", str(tiny_model),
                                    "--out", str(tmp_path / "x.geojson")])
    assert res.exit_code != 0 and "no file matches" in res.output


def test_several_scenes_refuse_a_single_scene_output(tiny_model, synth_task, tmp_path):
    west, east = split_scene(synth_task["scene"], tmp_path)
    with pytest.raises(InputError, match="single scene"):
        run_predict([west, east], tiny_model, Outputs(tmp_path / "r.gpkg", prob=tmp_path / "p.tif"))
    with pytest.raises(InputError, match="twice"):
        run_predict([west, west], tiny_model, tmp_path / "r.gpkg")
    assert not list(tmp_path.glob("r.*")) and not (tmp_path / "p.tif").exists()
