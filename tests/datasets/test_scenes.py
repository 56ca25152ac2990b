"""Training from whole scenes and footprints, read in windows: labels land on the roofs in
every CRS and pixel size, the label extent and the hold-out are honoured, bad labels refused."""

import json
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
from click.testing import CliRunner
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import Polygon, box

from geoseg.cli import main
from geoseg.config import TrainConfig
from geoseg.datasets import scenes as sc
from geoseg.datasets.normalisation import Normalisation
from geoseg.datasets.synth import write_scene, write_scene_dataset
from geoseg.datasets.town import make_town
from geoseg.errors import InputError
from geoseg.models import checkpoint
from geoseg.samplers import blocks

TINY = dict(tile_size=64, encoder="unet", depth=3, width=4, batch_size=2, samples_per_epoch=4, lr_max=1e-3, seed=3,
            loss="softmax",
            average=0)
PLAIN = Normalisation(255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def ortho(tmp_path_factory):
    """A 512 px orthophoto, footprints of its left half in lon/lat, that half as the label extent."""
    return write_scene_dataset(tmp_path_factory.mktemp("ortho"), size=512, seed=11)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def windows_agree(ds, k, zone, truth_mask, n=12, seed=0):
    """Share of valid pixels where a window's rasterised footprints equal ``truth_mask`` there
    (both at the scene's own resolution, factor 1)."""
    torch.manual_seed(seed)
    agree = total = 0
    for _ in range(n):
        _, row, col = ds.draw()
        r, c = int(round(row)), int(round(col))
        _, mask, valid = ds.window(k, row, col, zone)
        t = np.zeros_like(mask)
        r0, c0 = max(r, 0), max(c, 0)
        r1, c1 = min(r + mask.shape[0], truth_mask.shape[0]), min(c + mask.shape[1], truth_mask.shape[1])
        t[r0 - r:r1 - r, c0 - c:c1 - c] = truth_mask[r0:r1, c0:c1]
        agree += int(((mask == t) & valid).sum())
        total += int(valid.sum())
    return agree / total


def test_lon_lat_footprints_land_on_the_roofs_of_the_scene(tmp_path):
    town = make_town(384, 384, seed=4)
    write_scene(town, tmp_path / "s.tif")
    labels = gpd.GeoDataFrame(geometry=town.roofs, crs=town.crs).to_crs(4326)
    labels.to_file(tmp_path / "b.gpkg")
    [scene], gsd, _ = sc.load_scenes(str(tmp_path / "s.tif"), str(tmp_path / "b.gpkg"), None, None, 30.0)
    assert gsd == pytest.approx(0.3) and scene.factor == pytest.approx(1.0)
    zones = blocks.spatial_split([scene], 64, 0.0, 0)
    ds = sc.WindowDataset([scene], zones, PLAIN, 64, positive_fraction=0.5)
    assert windows_agree(ds, 0, zones[0].train, town.mask) > 0.99


def test_a_scene_in_another_crs_and_at_another_pixel_size_gets_the_same_labels(tmp_path):
    town = make_town(384, 384, seed=4)
    write_scene(town, tmp_path / "s.tif")
    gpd.GeoDataFrame(geometry=town.roofs, crs=town.crs).to_crs(4326).to_file(tmp_path / "b.gpkg")
    # the same scene reprojected to Web Mercator, and resampled to 0.15 m in its own CRS
    with rasterio.open(tmp_path / "s.tif") as src:
        for name, crs, res in (("merc.tif", "EPSG:3857", None), ("fine.tif", src.crs, 0.15)):
            t, w, h = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds,
                                                  resolution=res)
            profile = {**src.profile, "crs": crs, "transform": t, "width": w, "height": h}
            with rasterio.open(tmp_path / name, "w", **profile) as dst:
                for b in (1, 2, 3):
                    reproject(rasterio.band(src, b), rasterio.band(dst, b), resampling=Resampling.bilinear)
    scenes, gsd, _ = sc.load_scenes(str(tmp_path / "*.tif"), str(tmp_path / "b.gpkg"), None, None, 30.0)
    assert gsd == pytest.approx(0.15)  # the finest scene's
    by_name = {s.path.rsplit("/", 1)[-1]: s for s in scenes}
    assert by_name["s.tif"].factor == pytest.approx(0.5) and by_name["fine.tif"].factor == pytest.approx(1.0)
    # in every scene the footprints cover the same ground: the same roof area in m²
    areas = {n: float(shapely.area(s.footprints).sum()) * s.pixel ** 2 for n, s in by_name.items()}
    assert areas["fine.tif"] == pytest.approx(areas["s.tif"], rel=0.01)
    # Web Mercator's metres are not ground metres at 51° N: its pixel size is measured on the ground
    assert by_name["merc.tif"].pixel == pytest.approx(0.3, rel=0.05)
    assert areas["merc.tif"] == pytest.approx(areas["s.tif"], rel=0.03)
    # a window of the 0.3 m scene, resampled to 0.15 m, carries the labels of the same place in the fine scene
    zones = blocks.spatial_split(scenes, 64, 0.0, 0)
    k_s, k_f = scenes.index(by_name["s.tif"]), scenes.index(by_name["fine.tif"])
    ds = sc.WindowDataset(scenes, zones, PLAIN, 64)
    prints = by_name["s.tif"].footprints
    roof = shapely.point_on_surface(prints[np.argmax(shapely.area(prints))])  # a window on a roof, in both scenes
    img_s, mask_s, _ = ds.window(k_s, roof.y - 16, roof.x - 16, zones[k_s].train)
    img_f, mask_f, _ = ds.window(k_f, 2 * roof.y - 32, 2 * roof.x - 32, zones[k_f].train)
    assert np.mean(mask_s == mask_f) > 0.97 and mask_s.sum() > 100
    assert np.abs(img_s - img_f).mean() < 0.05


def test_pixels_outside_the_label_extent_are_left_out_and_the_hold_out_is_apart(ortho):
    [scene], _, _ = sc.load_scenes(str(ortho["ortho"]), str(ortho["labels"]), None, str(ortho["extent"]), 30.0)
    x0, y0, x1, y1 = scene.extent.bounds
    assert (x0, y0) == pytest.approx((0, 0), abs=1e-6) and (x1, y1) == pytest.approx((256, 512), abs=1e-6)
    zones = blocks.spatial_split([scene], 64, 0.2, seed=1)
    z = zones[0]
    assert not z.val.is_empty and not z.train.is_empty
    assert z.train.distance(z.val) >= 64 - 1e-6  # a tile-wide gap: no training window reaches a held-out pixel
    assert z.val.area == pytest.approx(0.2 * scene.extent.area, rel=0.35)
    ds = sc.WindowDataset([scene], zones, PLAIN, 64, positive_fraction=0.0)
    torch.manual_seed(0)
    for _ in range(30):
        _, row, col = ds.draw()
        window = box(col, row, col + 64, row + 64)
        assert not window.intersects(shapely.buffer(z.val, -1e-6))  # training windows never see held-out pixels
        _, _, valid = ds.window(0, row, col, z.train)
        xs = np.arange(64) + col + 0.5
        assert not valid[:, xs > 256].any()  # right of the label extent: never in the loss
    windows = blocks.validation_windows([scene], zones, 64)
    assert windows and all(z.val.intersects(box(c, r, c + 64, r + 64)) for _, r, c in windows)


def test_the_default_extent_is_the_footprints_buffered(ortho):
    [scene], _, _ = sc.load_scenes(str(ortho["ortho"]), str(ortho["labels"]), None, None, extent_buffer=6.0)
    frame = box(0, 0, 512, 512)
    outer = shapely.union_all(shapely.buffer(scene.footprints, 20.0 + 0.01))  # 6 m at 0.3 m/px
    inner = shapely.union_all(shapely.buffer(scene.footprints, 18.0)).intersection(frame)  # polygonal circles
    assert scene.extent.difference(outer).area < 0.5 and inner.difference(scene.extent).area < 0.5  # px²


def test_training_on_a_scene_with_footprints_on_the_command_line(ortho, tmp_path):
    r = run("train", "--images", ortho["ortho"], "--labels", ortho["labels"], "--label-extent", ortho["extent"],
            "--out", tmp_path / "run", "--epochs", "2", "--tile-size", "64", "--encoder", "unet", "--depth", "3",
            "--width", "4",
            "--samples-per-epoch", "8")
    assert r.exit_code == 0, r.output
    assert "training on 1 scene(s)" in r.output and "training pixel size 0.3 m" in r.output
    assert "contact gap: 2 px" in r.output and "loss: pixel-softmax" in r.output  # footprints: on by default
    ckpt = checkpoint.load(tmp_path / "run" / "model.pt")
    assert ckpt.gsd == pytest.approx(0.3) and ckpt.model.in_channels == 3
    assert ckpt.contact_gap == 2 and json.loads((tmp_path / "run" / "config.json").read_text())["contact_gap"] == 2
    assert (tmp_path / "run" / "preview.png").stat().st_size > 0


def test_resume_of_a_scene_run_continues_exactly(ortho, tmp_path):
    from geoseg.train.loop import fit

    common = dict(labels=str(ortho["labels"]), label_extent=str(ortho["extent"]), **TINY)
    straight = fit(TrainConfig(str(ortho["ortho"]), str(tmp_path / "a"), epochs=3, **common), progress=False)
    fit(TrainConfig(str(ortho["ortho"]), str(tmp_path / "b"), epochs=2, **common), progress=False)
    resumed = fit(TrainConfig(str(ortho["ortho"]), str(tmp_path / "b"), epochs=3, resume=True, **common),
                  progress=False)
    a, b = (torch.load(p / "last.pt", weights_only=True)["state_dict"] for p in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_scene_windows_read_in_loader_workers(ortho, tmp_path):
    """Each worker opens the scenes itself (a dataset's open files never cross a fork)."""
    from geoseg.train.loop import fit

    common = dict(labels=str(ortho["labels"]), label_extent=str(ortho["extent"]), loader_workers=2, **TINY)
    runs = [fit(TrainConfig(str(ortho["ortho"]), str(tmp_path / k), epochs=2, **common), progress=False)
            for k in ("a", "b")]
    a, b = (torch.load(p / "last.pt", weights_only=True)["state_dict"] for p in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _bad_labels(tmp_path, ortho, case):
    path = tmp_path / "labels.gpkg"
    good = gpd.read_file(ortho["labels"])
    if case == "outside":
        good.set_geometry(good.geometry.translate(5.0, 0.0)).to_file(path)  # five degrees east
    elif case == "no crs":
        with warnings.catch_warnings():  # pyogrio warns of the missing CRS: that is the case
            warnings.simplefilter("ignore")
            gpd.GeoDataFrame(geometry=list(good.geometry), crs=None).to_file(path)
    elif case == "empty":
        good.iloc[:0].to_file(path)
    elif case == "filtered out":
        good.to_file(path)
        return ["--labels", path, "--labels-where", "building = 'no'"]
    return ["--labels", path]


@pytest.mark.parametrize("case, fragment", [
    ("outside", "cover none of the training images"),
    ("no crs", "must both have a CRS, or neither"),
    ("empty", "holds no polygons"),
    ("filtered out", "holds no polygons matching --labels-where"),
])
def test_labels_that_cannot_teach_are_one_line(ortho, tmp_path, case, fragment):
    r = run("train", "--images", ortho["ortho"], *_bad_labels(tmp_path, ortho, case), "--out", tmp_path / "run",
            "--epochs", "1", "--tile-size", "64", "--encoder", "unet", "--depth", "3")
    assert r.exit_code != 0
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], r.output


def test_invalid_rings_are_repaired_and_a_layer_and_filter_chosen(ortho, tmp_path):
    good = gpd.read_file(ortho["labels"])
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    x, y = good.geometry.iloc[0].centroid.coords[0]
    bad = shapely.affinity.scale(shapely.affinity.translate(bowtie, x, y), 1e-4, 1e-4, origin=(x, y))
    rows = gpd.GeoDataFrame({"building": ["yes"] * len(good) + ["yes", None]},
                            geometry=[*good.geometry.values, bad, box(x, y, x + 1e-3, y + 1e-3)], crs=4326)
    rows.to_file(tmp_path / "osm.gpkg", layer="buildings")
    rows.to_file(tmp_path / "osm.gpkg", layer="other")
    with pytest.warns(UserWarning, match="1 invalid polygon"):
        scenes, _, _ = sc.load_scenes(str(ortho["ortho"]), str(tmp_path / "osm.gpkg"), None, None, 30.0,
                                   layer="buildings", where="building IS NOT NULL")
    assert len(scenes[0].footprints) == len(good) + 1


def test_a_labelled_area_of_one_block_cannot_be_held_out(tmp_path):
    town = make_town(128, 128, seed=2)
    write_scene(town, tmp_path / "s.tif")
    gpd.GeoDataFrame(geometry=town.roofs, crs=town.crs).to_file(tmp_path / "b.gpkg")
    scenes, _, _ = sc.load_scenes(str(tmp_path / "s.tif"), str(tmp_path / "b.gpkg"), None, None, 30.0)
    with pytest.raises(InputError, match="one block, too small to hold part of it out"):
        blocks.spatial_split(scenes, 128, 0.2, 0)


@pytest.mark.slow
def test_cross_validation_on_a_scene_makes_spatial_folds(ortho, tmp_path):
    r = run("cv", "--images", ortho["ortho"], "--labels", ortho["labels"], "--label-extent", ortho["extent"],
            "--out", tmp_path / "cv", "--folds", "2", "--epochs", "1", "--tile-size", "64", "--encoder", "unet",
            "--depth", "3",
            "--width", "4", "--samples-per-epoch", "4")
    assert r.exit_code == 0, r.output
    assert r.output.count("(held-out blocks)") == 2
    [scene], _, _ = sc.load_scenes(str(ortho["ortho"]), str(ortho["labels"]), None, str(ortho["extent"]), 30.0)
    folds = [blocks.spatial_split([scene], 64, 0.0, 0, folds=2, fold=k)[0] for k in (0, 1)]
    assert folds[0].val.intersection(folds[1].val).area < 1e-6  # each block held out once
    assert folds[0].val.union(folds[1].val).area == pytest.approx(scene.extent.area)
    one_line = run("cv", "--images", ortho["ortho"], "--labels", ortho["labels"], "--out", tmp_path / "cv2", "--tta")
    assert one_line.exit_code != 0 and "--tta scores held-out tiles" in one_line.output


def test_contact_gap_keeps_touching_footprints_apart_and_leaves_edges_alone():
    from affine import Affine

    ids = np.zeros((8, 12), np.int32)
    ids[2:6, 1:6], ids[2:6, 6:11] = 1, 2  # two houses sharing a wall between columns 5 and 6
    line = sc.contacts(ids, 2)
    assert line[2:6, 5:7].all() and line.sum() == 8  # two pixels wide, along the wall only
    assert not sc.contacts(np.where(ids == 2, 0, ids), 2).any()  # a detached house has no contact
    assert sc.contacts(ids, 4)[2:6, 4:8].all() and sc.contacts(ids, 4).sum() == 16
    houses = [box(1, 2, 6, 6), box(6, 2, 11, 6)]  # the same, as footprints in pixel coordinates
    plain, gapped = sc._burn(houses, Affine.identity(), 12), sc._burn(houses, Affine.identity(), 12, gap=2)
    assert plain[2:6, 1:11].all() and (plain.astype(int) - gapped).sum() == 8
    assert not gapped[2:6, 5:7].any() and gapped[2:6, [1, 2, 3, 4, 7, 8, 9, 10]].all()


def test_a_negative_contact_gap_is_refused_in_one_line(ortho, tmp_path):
    r = run("train", "--images", ortho["ortho"], "--labels", ortho["labels"], "--out", tmp_path / "run",
            "--contact-gap", "-1")
    assert r.exit_code != 0 and "--contact-gap must be 0" in r.output and not (tmp_path / "run").exists()


def test_contact_gap_on_tiles_is_refused_in_one_line(tmp_path):
    with pytest.raises(InputError, match="`contact_gap` separates touching footprints"):
        TrainConfig(data_dir=str(tmp_path), out_dir=str(tmp_path / "run"), contact_gap=2).check()


def test_training_windows_of_terraced_footprints_leave_a_line_between_the_houses(tmp_path):
    town = make_town(384, 384, seed=3, terraces=0.8)
    write_scene(town, tmp_path / "s.tif")
    gpd.GeoDataFrame(geometry=town.roofs, crs=town.crs).to_file(tmp_path / "b.gpkg")
    [scene], _, _ = sc.load_scenes(str(tmp_path / "s.tif"), str(tmp_path / "b.gpkg"), None, None, 30.0)
    zones = blocks.spatial_split([scene], 64, 0.0, 0)
    plain = sc.WindowDataset([scene], zones, PLAIN, 64, positive_fraction=1.0)
    gapped = sc.WindowDataset([scene], zones, PLAIN, 64, positive_fraction=1.0, contact_gap=2)
    from scipy import ndimage

    torch.manual_seed(0)
    removed, blobs, houses = 0, 0, 0
    for _ in range(16):
        k, row, col = plain.draw()
        _, a, _ = plain.window(k, row, col, zones[k].train)
        _, b, _ = gapped.window(k, row, col, zones[k].train)
        assert (b <= a).all()  # the gap only takes roof pixels away
        removed += int((a - b).sum())
        blobs, houses = blobs + ndimage.label(a)[1], houses + ndimage.label(b)[1]
    assert removed > 50 and houses > blobs  # rows of houses come apart into houses
