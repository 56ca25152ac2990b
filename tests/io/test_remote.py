"""Imagery where it lives: scenes read over HTTP with range requests from a loopback server
the test starts and stops (127.0.0.1 only), compared with the same scene read locally."""

import geopandas as gpd
import pytest
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.cli.values import scenes as expand_scenes
from geoseg.config import TileOptions
from geoseg.io.remote import gdal_path, is_remote
from geoseg.jobs.predict import Outputs, run_predict
from tests.rangeserver import RangeHandler, serve


@pytest.fixture
def server(tmp_path, synth_task):
    from rasterio.shutil import copy

    copy(synth_task["scene"], tmp_path / "scene.tif", driver="COG", blocksize=128, compress="DEFLATE")
    with serve(tmp_path) as url:
        yield url, tmp_path


def test_urls_are_gdal_paths_never_local_files():
    assert gdal_path("https://h/x.tif") == "/vsicurl/https://h/x.tif"
    assert gdal_path("s3://bucket/k/x.tif") == "/vsis3/bucket/k/x.tif"
    assert gdal_path("gs://b/x.tif") == "/vsigs/b/x.tif" and gdal_path("az://c/x.tif") == "/vsiaz/c/x.tif"
    assert gdal_path("zip://data/a.zip!img/x.tif") == "/vsizip/data/a.zip/img/x.tif"
    assert gdal_path("/vsicurl/https://h/x.tif") == "/vsicurl/https://h/x.tif" and not is_remote("x.tif")
    assert expand_scenes(None, None, ["https://h/tiles/*.tif"]) == ["https://h/tiles/*.tif"]  # a URL is never globbed


def test_a_remote_cog_predicts_what_the_local_copy_does(server, tiny_model, tmp_path):
    url, folder = server
    opts = TileOptions(tile_size=64, precision="fp32")
    local = run_predict(folder / "scene.tif", tiny_model, Outputs(tmp_path / "local.gpkg", preview=False), opts)
    RangeHandler.sent = 0
    remote = run_predict(f"{url}/scene.tif", tiny_model, Outputs(tmp_path / "remote.gpkg", preview=False), opts)
    a, b = (gpd.read_file(r.out, layer="roofs") for r in (local, remote))
    assert len(a) == len(b) > 0 and a.geometry.geom_equals(b.geometry).all()
    assert RangeHandler.sent <= 1.2 * (folder / "scene.tif").stat().st_size  # no more than the file, about
    via_vsi = run_predict(f"/vsicurl/{url}/scene.tif", tiny_model, Outputs(tmp_path / "vsi.gpkg", preview=False),
                          opts)
    assert via_vsi.count == local.count


def test_transient_errors_are_retried(server, tiny_model, tmp_path):
    url, _ = server
    r = run_predict(f"{url}/flaky/scene.tif", tiny_model, Outputs(tmp_path / "r.gpkg", preview=False),
                    TileOptions(tile_size=64))
    assert r.count >= 0 and RangeHandler.failures["/flaky/scene.tif"] >= 3


def test_a_missing_remote_scene_is_one_line(server, tiny_model, tmp_path):
    url, _ = server
    r = CliRunner().invoke(main, ["predict", f"{url}/nope.tif", "--model", str(tiny_model), "--out",
                                  str(tmp_path / "r.gpkg"), "--quiet"])
    assert r.exit_code != 0
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "not found on the server (HTTP 404)" in lines[0], r.output
    assert not (tmp_path / "r.gpkg").exists()


def test_an_area_of_interest_reads_only_its_windows_and_clips_the_polygons(server, tiny_model, tmp_path):
    import shapely
    from shapely.geometry import box

    from geoseg.jobs.areas import read_area

    url, folder = server
    opts = TileOptions(tile_size=64, precision="fp32")
    with __import__("rasterio").open(folder / "scene.tif") as src:
        left, bottom, right, top = src.bounds
    tenth = box(left, top - (top - bottom) * 0.3, left + (right - left) * 0.3, top)  # about a tenth of the scene
    gpd.GeoDataFrame(geometry=[tenth], crs="EPSG:25832").to_crs(4326).to_file(tmp_path / "aoi.gpkg")
    area = read_area(tmp_path / "aoi.gpkg")
    from geoseg.config import VectorizeOptions

    vec = VectorizeOptions(threshold=0.3, simplify=0)
    whole = run_predict(folder / "scene.tif", tiny_model, Outputs(tmp_path / "whole.gpkg", preview=False), opts, vec)
    RangeHandler.sent = 0
    part = run_predict(f"{url}/scene.tif", tiny_model, Outputs(tmp_path / "part.gpkg", preview=False), opts, vec,
                       area=area)
    # only the blocks near the area: 4 of 9 (128 px blocks; the area and its margin meet 2 x 2)
    assert RangeHandler.sent <= 0.6 * (folder / "scene.tif").stat().st_size
    a = gpd.read_file(whole.out, layer="roofs")
    b = gpd.read_file(part.out, layer="roofs")
    zone = area.to_crs(a.crs).iloc[0]
    assert len(b) > 0 and all(shapely.within(g, zone.buffer(0.01)) for g in b.geometry)
    from geoseg.evaluation.scoring import area_iou

    # the same roofs as the whole scene's there (the tiles are laid from the window, so up to blending)
    assert area_iou(b, a.clip(zone)) > 0.9
    bad = CliRunner().invoke(main, ["predict", str(folder / "scene.tif"), "--model", str(tiny_model), "--out",
                                    str(tmp_path / "far.gpkg"), "--bbox", "100,10,101,11", "--quiet"])
    assert bad.exit_code != 0 and "meets none of the scenes" in bad.output


def test_a_stac_item_of_three_single_band_cogs_is_one_scene(server, tiny_model, tmp_path):
    import json

    import rasterio
    from rasterio.shutil import copy

    url, folder = server
    with rasterio.open(folder / "scene.tif") as src:
        for b, name in enumerate(("red", "green", "blue"), start=1):
            profile = {**src.profile, "count": 1, "driver": "GTiff"}
            with rasterio.open(tmp_path / f"plain-{name}.tif", "w", **profile) as dst:
                dst.write(src.read(b), 1)
            copy(tmp_path / f"plain-{name}.tif", folder / f"{name}.tif", driver="COG", blocksize=128)
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None, "properties": {},
            "assets": {"visual": {"href": f"{url}/scene.tif"},
                       **{n: {"href": f"{n}.tif"} for n in ("red", "green", "blue")}}}  # relative to the item
    (folder / "item.json").write_text(json.dumps(item))
    opts = TileOptions(tile_size=64, precision="fp32")
    local = run_predict(folder / "scene.tif", tiny_model, Outputs(tmp_path / "local.gpkg", preview=False), opts)
    stacked = run_predict(f"{url}/item.json", tiny_model, Outputs(tmp_path / "bands.gpkg", preview=False), opts,
                          assets=("red", "green", "blue"))
    visual = run_predict(folder / "item.json", tiny_model, Outputs(tmp_path / "visual.gpkg", preview=False), opts)
    a, b, c = (gpd.read_file(r.out, layer="roofs") for r in (local, stacked, visual))
    assert len(a) == len(b) == len(c) and a.geometry.geom_equals(b.geometry).all()
    r = CliRunner().invoke(main, ["predict", str(folder / "item.json"), "--assets", "nir", "--model", str(tiny_model),
                                  "--out", str(tmp_path / "n.gpkg"), "--quiet"])
    assert r.exit_code != 0 and "no asset 'nir'; it has blue, green, red, visual" in r.output


@pytest.mark.parametrize("assets, href, fragment", [
    (None, "/etc/hostname", "/etc/hostname: not found on the server"),  # a path on the item's server, not here
    (None, "/vsimem/x.tif", "/vsimem/x.tif: not found on the server"),
    (None, "file:///etc/hostname", "a local or virtual path, in an item from the network"),
    (None, "zip:///tmp/x.zip!a.tif", "a local or virtual path"),
    (None, 7, "has no href"),
    (("red", "visual"), "scene.tif", "asset 'visual' has 3 bands, so it cannot be one band of a stack"),
])
def test_a_stac_items_assets_are_checked_before_they_are_read(server, tiny_model, tmp_path, assets, href, fragment):
    import json

    url, folder = server
    shutil_copy = __import__("shutil").copy
    with __import__("rasterio").open(folder / "scene.tif") as src:
        profile = {**src.profile, "count": 1, "driver": "GTiff"}
        with __import__("rasterio").open(folder / "red.tif", "w", **profile) as dst:
            dst.write(src.read(1), 1)
    shutil_copy(folder / "scene.tif", tmp_path / "kept.tif")
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None, "properties": {},
            "assets": {"visual": {"href": href}, "red": {"href": "red.tif"}}}
    (folder / "item.json").write_text(json.dumps(item))
    args = ["predict", f"{url}/item.json", "--model", str(tiny_model), "--out", str(tmp_path / "r.gpkg"), "--quiet"]
    r = CliRunner().invoke(main, [*args, *(["--assets", ",".join(assets)] if assets else [])])
    assert r.exit_code != 0 and fragment in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "r.gpkg").exists()


def test_a_trusted_remote_item_may_name_local_assets(server, tiny_model, tmp_path):
    import json

    url, folder = server
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None, "properties": {},
            "assets": {"visual": {"href": str(folder / "scene.tif")}}}
    (folder / "item.json").write_text(json.dumps(item))
    r = CliRunner().invoke(main, ["predict", f"{url}/item.json", "--model", str(tiny_model), "--allow-local-assets",
                                  "--out", str(tmp_path / "r.gpkg"), "--quiet", "--tile-size", "64"])
    assert r.exit_code == 0, r.output


def test_server_errors_stalls_and_missing_archives_are_named_for_what_they_are(server, tiny_model, tmp_path,
                                                                                monkeypatch):
    import time

    from geoseg.io import remote as io

    url, folder = server
    args = ["--model", str(tiny_model), "--quiet", "--no-preview", "--tile-size", "64"]

    def predict(scene, name):
        return CliRunner().invoke(main, ["predict", scene, "--out", str(tmp_path / name), *args])

    monkeypatch.setitem(io.REMOTE_ENV, "GDAL_HTTP_MAX_RETRY", 0)  # no retries: the test's time
    r = predict(f"{url}/broken/scene.tif", "a.gpkg")  # the header is read, then every request fails
    assert r.exit_code != 0 and "the server failed (HTTP 500)" in r.output and "truncated" not in r.output, r.output
    monkeypatch.setitem(io.REMOTE_ENV, "GDAL_HTTP_LOW_SPEED_TIME", 2)
    t = time.monotonic()
    r = predict(f"{url}/trickle/scene.tif", "b.gpkg")  # 32 bytes a second: under the low-speed limit
    assert r.exit_code != 0 and "too slowly or broke off" in r.output, r.output
    assert time.monotonic() - t < 15  # given up on, not waited for
    r = predict(f"/vsizip/{tmp_path}/missing.zip/scene.tif", "c.gpkg")
    assert r.exit_code != 0 and "HTTP" not in r.output and "check that the archive" in r.output, r.output
    assert not any(tmp_path.glob("*.gpkg"))


def test_a_trickled_stac_item_meets_a_deadline(server, tiny_model, tmp_path, monkeypatch):
    import json
    import time

    from geoseg.io import stac

    url, folder = server
    (folder / "item.json").write_text(json.dumps({"type": "Feature", "assets": {"visual": {"href": "scene.tif"}},
                                                  "properties": {}, "geometry": None, "id": "x"}) + " " * 400)
    monkeypatch.setattr(stac, "ITEM_DEADLINE", 2.0)
    t = time.monotonic()
    r = CliRunner().invoke(main, ["predict", f"{url}/trickle/item.json", "--model", str(tiny_model), "--out",
                                  str(tmp_path / "r.gpkg"), "--quiet"])
    assert r.exit_code != 0 and "timed out" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert time.monotonic() - t < 10
