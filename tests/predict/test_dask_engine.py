"""Prediction on a real dask.distributed LocalCluster: the same output as one process,
a killed worker's scenes redone, and scenes that fail for good named, with no output."""

import os
import signal
import threading
import time

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.windows import Window

from cli import main
from geoseg.config import TileOptions, VectorizeOptions
from geoseg.errors import InputError
from geoseg.jobs.predict import Outputs, run_predict
from geoseg.models import checkpoint
from geoseg.predict.dask_engine import ClusterOptions, ScenesFailedError, connect, scene_polygons

pytestmark = pytest.mark.slow
OPTS = TileOptions(tile_size=64, precision="fp32")


@pytest.fixture(scope="module")
def scenes(synth_task, tmp_path_factory):
    """Four scenes: the quarters of the synthetic scene, the last two overlapping."""
    out = tmp_path_factory.mktemp("scenes")
    paths = []
    with rasterio.open(synth_task["scene"]) as src:
        h, w = src.height, src.width
        windows = [(0, 0, h // 2, w // 2), (0, w // 2, h // 2, w - w // 2),
                   (h // 2, 0, h - h // 2, 2 * w // 3), (h // 2, w // 3, h - h // 2, w - w // 3)]
        for k, (r, c, hh, ww) in enumerate(windows):
            win = Window(c, r, ww, hh)
            profile = {**src.profile, "width": ww, "height": hh, "transform": src.window_transform(win)}
            paths.append(out / f"scene-{k}.tif")
            with rasterio.open(paths[-1], "w", **profile) as dst:
                dst.write(src.read(window=win))
    return paths


def layer(path):
    return gpd.read_file(path, layer="roofs")


def test_a_local_cluster_of_two_workers_writes_what_one_process_writes(tiny_model, scenes, tmp_path):
    one = run_predict(scenes, tiny_model, tmp_path / "one.gpkg", OPTS)
    two = run_predict(scenes, tiny_model, tmp_path / "two.gpkg", OPTS, cluster=ClusterOptions(workers=2))
    a, b = layer(one.out), layer(two.out)
    assert one.count == two.count and len(a) > 0
    assert list(a.id) == list(b.id) and list(a.scene) == list(b.scene)
    assert all(x.equals_exact(y, 1e-9) for x, y in zip(a.geometry, b.geometry))


def test_touching_roofs_are_cut_on_the_workers_as_in_one_process(tiny_model, scenes, tmp_path):
    run_predict(scenes[0], tiny_model, Outputs(tmp_path / "first.gpkg", prob=tmp_path / "prob.tif"), OPTS)
    with rasterio.open(tmp_path / "prob.tif") as src:  # the tiny model's probability is nearly flat: seed in it
        seed = float(np.percentile(src.read(1), 75)) / 255
    vec = VectorizeOptions(threshold=0.3, split=seed)
    whole = run_predict(scenes, tiny_model, tmp_path / "whole.gpkg", OPTS, VectorizeOptions(threshold=0.3, split=0))
    one = run_predict(scenes, tiny_model, tmp_path / "one.gpkg", OPTS, vec)
    two = run_predict(scenes, tiny_model, tmp_path / "two.gpkg", OPTS, vec, cluster=ClusterOptions(workers=2))
    assert one.count > whole.count  # the cut is on: some components came apart
    a, b = layer(one.out), layer(two.out)
    assert one.count == two.count and list(a.scene) == list(b.scene)
    assert all(x.equals_exact(y, 1e-9) for x, y in zip(a.geometry, b.geometry))


def test_a_killed_worker_is_retried_and_the_output_is_still_whole(tiny_model, scenes, tmp_path):
    expected = layer(run_predict(scenes, tiny_model, tmp_path / "one.gpkg", OPTS).out)
    options = ClusterOptions(workers=2)
    with connect(options) as client:
        pids = client.run(os.getpid)
        killed = []

        def kill_one_busy_worker():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.01)

        killer = threading.Thread(target=kill_one_busy_worker)
        killer.start()
        results = list(scene_polygons(client, scenes, checkpoint.load(tiny_model), OPTS, VectorizeOptions(),
                                      options))
        killer.join()
    assert killed, "no worker was busy to kill"
    assert [k for k, _ in results] == [0, 1, 2, 3]
    # the same polygons, scene by scene, as the single-process run before its merge
    single = [run_predict(s, tiny_model, Outputs(tmp_path / f"s{k}.gpkg", preview=False), OPTS) for k,
              s in enumerate(scenes)]
    for (_, got), ref in zip(results, single):
        want = layer(ref.out)
        assert len(got) == len(want)
        assert all(x.equals_exact(y, 1e-6) for x, y in zip(got.geometry, want.geometry))
    assert len(expected) > 0


def test_scenes_that_fail_for_good_are_named_and_nothing_is_written(tiny_model, scenes, tmp_path):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(scenes[0].read_bytes()[:5000])  # a truncated GeoTIFF: its header reads, its pixels not
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ScenesFailedError, match="broken.tif"):
        run_predict([scenes[0], broken], tiny_model, out / "roofs.geojson", OPTS,
                    cluster=ClusterOptions(workers=2, retries=1))
    assert list(out.iterdir()) == []


def test_cluster_options_on_the_command_line(tiny_model, scenes, tmp_path):
    out = tmp_path / "roofs.gpkg"
    res = CliRunner().invoke(main, ["predict", *map(str, scenes[:2]), "--model", str(tiny_model), "--out", str(out),
                                    "--tile-size", "64", "--workers", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "from 2 scenes" in res.output
    with pytest.raises(InputError, match="cannot connect"):
        run_predict(scenes[0], tiny_model, tmp_path / "x.gpkg",
                    cluster=ClusterOptions(scheduler="tcp://127.0.0.1:9", timeout=1))
    assert not (tmp_path / "x.gpkg").exists()
    with pytest.raises(InputError):
        ClusterOptions(scheduler="tcp://x:1", workers=2)


def test_one_scene_in_blocks_gives_the_single_process_probability_and_polygons(tiny_model, synth_task, tmp_path):
    vec = VectorizeOptions(simplify=0, threshold=0.3)

    def outputs(name, **kw):
        d = tmp_path
        return Outputs(d / f"{name}.gpkg", prob=d / f"{name}-prob.tif", mask=d / f"{name}-mask.tif", **kw)

    one = run_predict(synth_task["scene"], tiny_model, outputs("one", preview=False), OPTS, vec)
    blocks = run_predict(synth_task["scene"], tiny_model, outputs("blocks"),
                         OPTS, vec, cluster=ClusterOptions(workers=2, block=96))  # 4 blocks of 2 tile rows
    for name in ("prob", "mask"):
        with rasterio.open(tmp_path / f"one-{name}.tif") as a, rasterio.open(tmp_path / f"blocks-{name}.tif") as b:
            assert a.transform == b.transform and a.crs == b.crs
            assert (a.read() == b.read()).all()
    a, b = layer(one.out), layer(blocks.out)
    assert len(a) == len(b) > 0 and sorted(b.id) == list(range(1, len(b) + 1))
    assert sorted(round(x, 6) for x in a.area_m2) == sorted(round(x, 6) for x in b.area_m2)
    for g in a.geometry:  # the same roofs, those across block edges joined
        assert any(g.equals(h) for h in b.geometry)
    with rasterio.open(synth_task["scene"]) as src:
        edges_y = [src.xy(r, 0, offset="ul")[1] for r in (88, 184, 280)]  # rows where the blocks meet
    assert sum(g.bounds[1] < y < g.bounds[3] for g in a.geometry for y in edges_y) >= 2
    assert blocks.preview is not None and blocks.preview.exists()


def test_touching_roofs_across_block_edges_are_cut_as_in_one_process(tiny_model, synth_task, tmp_path):
    # the components on the blocks' inner edges go to the client with their own pixels and
    # are traced and cut there whole: the same pieces as one process, polygon for polygon
    scene = synth_task["scene"]
    run_predict(scene, tiny_model, Outputs(tmp_path / "p.gpkg", prob=tmp_path / "prob.tif", preview=False), OPTS)
    with rasterio.open(tmp_path / "prob.tif") as src:  # the tiny model's probability is nearly flat: seed in it
        seed = float(np.percentile(src.read(1), 75)) / 255
    vec = VectorizeOptions(simplify=0, threshold=0.3, split=seed)
    whole = run_predict(scene, tiny_model, Outputs(tmp_path / "whole.gpkg", preview=False), OPTS,
                        VectorizeOptions(simplify=0, threshold=0.3, split=0))
    one = run_predict(scene, tiny_model, Outputs(tmp_path / "one.gpkg", preview=False), OPTS, vec)
    blocks = run_predict(scene, tiny_model, Outputs(tmp_path / "blocks.gpkg", preview=False), OPTS, vec,
                         cluster=ClusterOptions(workers=2, block=96))  # 4 blocks of 2 tile rows
    assert one.count > whole.count  # the cut is on: some components came apart
    a, b = layer(one.out), layer(blocks.out)
    assert len(a) == len(b) and sorted(b.id) == list(range(1, len(b) + 1))
    assert sorted(round(x, 6) for x in a.area_m2) == sorted(round(x, 6) for x in b.area_m2)
    tree = shapely.STRtree(np.array(b.geometry))
    assert all(any(b.geometry.iloc[j].equals(g) for j in tree.query(g)) for g in a.geometry)
    with rasterio.open(scene) as src:
        edges_y = [src.xy(r, 0, offset="ul")[1] for r in (88, 184, 280)]  # rows where the blocks meet
    assert sum(g.bounds[1] < y < g.bounds[3] for g in a.geometry for y in edges_y) >= 2
