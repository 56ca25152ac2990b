"""Scenes of any shape and kind: odd sizes, tiny scenes, nodata, uint16, VRT mosaics, COG outputs."""

import contextlib
import dataclasses

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from geoseg.config import TileOptions, VectorizeOptions
from geoseg.errors import GeosegWarning, RasterReadError
from geoseg.jobs.predict import Outputs, run_predict
from geoseg.models import checkpoint
from geoseg.predict.engine import predict_probability
from tests.conftest import write_tif

T = Affine(0.3, 0, 356_000.0, 0, -0.3, 5_646_000.0)


def scene_pixels(synth_task):
    with rasterio.open(synth_task["scene"]) as src:
        return src.read()


def prob_of(path):
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.mark.parametrize("h,w", [(1000, 777), (40, 50), (65, 64)])
def test_odd_and_tiny_scenes_give_a_probability_raster_of_the_scene_grid(tiny_model, tmp_path, h, w):
    rng = np.random.default_rng(h)
    scene = write_tif(tmp_path / "s.tif", rng.integers(0, 255, (3, h, w), dtype=np.uint8), transform=T)
    state = checkpoint.load(tiny_model)
    predict_probability(scene, state, tmp_path / "p.tif", TileOptions(tile_size=64, overlap=8))
    with rasterio.open(tmp_path / "p.tif") as p:
        assert p.shape == (h, w) and p.transform == T and p.crs.to_epsg() == 25832
        assert p.profile["tiled"] and p.dtypes[0] == "uint8"


def test_scene_edges_are_padded_not_predicted_as_black(tiny_model, synth_task, tmp_path):
    # The same pixels predicted as a whole scene and as the top-left part of a larger one
    # agree away from the cut: padding by reflection makes edges behave like the interior.
    pixels = scene_pixels(synth_task)
    state = checkpoint.load(tiny_model)
    opts = TileOptions(tile_size=64, overlap=16, precision="fp32")
    write_tif(tmp_path / "part.tif", pixels[:, :200, :200], transform=T)
    predict_probability(synth_task["scene"], state, tmp_path / "whole.tif", opts)
    predict_probability(tmp_path / "part.tif", state, tmp_path / "part-p.tif", opts)
    whole, part = prob_of(tmp_path / "whole.tif")[:150, :150], prob_of(tmp_path / "part-p.tif")[:150, :150]
    assert np.mean(np.abs(whole.astype(int) - part.astype(int)) <= 3) > 0.99


def test_nodata_pixels_get_no_roofs(tiny_model, synth_task, tmp_path):
    pixels = scene_pixels(synth_task).copy()
    pixels[:, 100:200, 50:300] = 0
    scene = write_tif(tmp_path / "nd.tif", pixels, transform=T, nodata=0)
    predict_probability(scene, checkpoint.load(tiny_model), tmp_path / "p.tif", TileOptions(tile_size=64))
    prob = prob_of(tmp_path / "p.tif")
    assert (prob[100:200, 50:300] == 0).all()
    assert prob[:100].max() > 0


def test_uint16_imagery_is_scaled_as_the_model_was_trained(tiny_model, synth_task, tmp_path):
    pixels = scene_pixels(synth_task)
    state = checkpoint.load(tiny_model)
    opts = TileOptions(tile_size=64, precision="fp32")
    predict_probability(synth_task["scene"], state, tmp_path / "p8.tif", opts)
    wide = write_tif(tmp_path / "u16.tif", pixels.astype(np.uint16) * 257, transform=T)
    state16 = dataclasses.replace(state, norm=dataclasses.replace(state.norm, scale=65535.0))  # trained on uint16
    predict_probability(wide, state16, tmp_path / "p16.tif", opts)
    diff = np.abs(prob_of(tmp_path / "p8.tif").astype(int) - prob_of(tmp_path / "p16.tif").astype(int))
    assert diff.max() <= 1


def quadrant_vrt(pixels, tmp_path, drop=None):
    """A VRT mosaic of four GeoTIFF quadrants, written by hand as GDAL's XML."""
    _, h, w = pixels.shape
    hh, hw = h // 2, w // 2
    sources = {b: [] for b in (1, 2, 3)}
    for i, (r, c) in enumerate([(0, 0), (0, hw), (hh, 0), (hh, hw)]):
        rh, cw = (hh if r == 0 else h - hh), (hw if c == 0 else w - hw)
        path = write_tif(tmp_path / f"q{i}.tif", pixels[:, r : r + rh, c : c + cw],
                         transform=T * Affine.translation(c, r))
        for b in sources:
            sources[b].append(
                f'<SimpleSource><SourceFilename relativeToVRT="1">{path.name}</SourceFilename>'
                f"<SourceBand>{b}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{cw}" ySize="{rh}"/>'
                f'<DstRect xOff="{c}" yOff="{r}" xSize="{cw}" ySize="{rh}"/></SimpleSource>')
    with rasterio.open(tmp_path / "q0.tif") as q:
        srs = q.crs.to_wkt()
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{b}">{"".join(s)}</VRTRasterBand>'
                    for b, s in sources.items())
    gt = ", ".join(str(v) for v in (T.c, T.a, T.b, T.f, T.d, T.e))
    vrt = tmp_path / "mosaic.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}"><SRS>{srs}</SRS>'
                   f"<GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>")
    if drop is not None:
        (tmp_path / f"q{drop}.tif").unlink()
    return vrt


def test_a_vrt_of_four_files_predicts_like_the_scene(tiny_model, synth_task, tmp_path):
    vrt = quadrant_vrt(scene_pixels(synth_task), tmp_path)
    opts = TileOptions(tile_size=64, precision="fp32")
    state = checkpoint.load(tiny_model)
    predict_probability(synth_task["scene"], state, tmp_path / "a.tif", opts)
    predict_probability(vrt, state, tmp_path / "b.tif", opts)
    assert np.array_equal(prob_of(tmp_path / "a.tif"), prob_of(tmp_path / "b.tif"))


def test_a_vrt_with_a_missing_file_is_one_error_and_no_output(tiny_model, synth_task, tmp_path):
    vrt = quadrant_vrt(scene_pixels(synth_task), tmp_path, drop=3)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RasterReadError, match="mosaic.vrt"):
        run_predict(vrt, tiny_model, Outputs(out / "r.gpkg", prob=out / "p.tif"), TileOptions(tile_size=64))
    assert list(out.iterdir()) == []


def test_mask_and_probability_outputs_agree_and_can_be_cogs(tiny_model, synth_task, tmp_path):
    r = run_predict(synth_task["scene"], tiny_model,
                    Outputs(tmp_path / "r.gpkg", prob=tmp_path / "p.tif", mask=tmp_path / "m.tif", cog=True),
                    TileOptions(tile_size=64), VectorizeOptions(threshold=0.4))
    assert r.prob.exists() and (tmp_path / "r.preview.png").exists()
    prob, mask = prob_of(tmp_path / "p.tif"), prob_of(tmp_path / "m.tif")
    assert np.array_equal(mask == 1, prob >= round(0.4 * 255))
    with rasterio.open(tmp_path / "p.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    alone = run_predict(synth_task["scene"], tiny_model,  # a COG probability without a mask
                        Outputs(tmp_path / "r2.gpkg", prob=tmp_path / "p2.tif", cog=True), TileOptions(tile_size=64))
    assert np.array_equal(prob_of(alone.prob), prob)


def test_polygons_traced_while_predicting_are_those_of_the_written_probability(tiny_model, synth_task, tmp_path):
    """predict traces rows as the model finishes them; the same as vectorising the raster afterwards."""
    import geopandas as gpd

    from geoseg.vector.stream import vectorize

    r = run_predict(synth_task["scene"], tiny_model,
                    Outputs(tmp_path / "r.gpkg", prob=tmp_path / "p.tif", preview=False),
                    TileOptions(tile_size=64), VectorizeOptions(threshold=0.3, min_area=0))
    streamed = gpd.read_file(r.out, layer="roofs")
    after = vectorize(tmp_path / "p.tif", VectorizeOptions(threshold=0.3, min_area=0))
    assert len(streamed) == len(after) > 0
    assert streamed.union_all().symmetric_difference(after.union_all()).area < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif", "r.gpkg"]  # no temporary raster left


def test_cuda_path_when_there_is_one(tiny_model, synth_task, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine; the CUDA path is checked on a GPU machine")
    state = checkpoint.load(tiny_model)
    predict_probability(synth_task["scene"], state, tmp_path / "g.tif", TileOptions(tile_size=64, device="cuda"))
    predict_probability(synth_task["scene"], state, tmp_path / "c.tif", TileOptions(tile_size=64, device="cpu"))
    a, b = prob_of(tmp_path / "g.tif"), prob_of(tmp_path / "c.tif")
    assert np.mean((a >= 128) == (b >= 128)) > 0.995


def test_imagery_unlike_the_training_images_is_warned_about(tiny_model, synth_task, tmp_path):
    from geoseg.errors import GeosegWarning

    wide = write_tif(tmp_path / "u16.tif", scene_pixels(synth_task)[:, :64, :64].astype(np.uint16) * 257, transform=T)
    with pytest.warns(GeosegWarning, match="uint16 imagery"):
        predict_probability(wide, checkpoint.load(tiny_model), tmp_path / "p.tif")


def test_a_nodata_value_given_in_training_is_remembered_by_predict(synth_task, tmp_path):
    from geoseg.config import TrainConfig
    from geoseg.train.loop import fit

    run = fit(TrainConfig(str(synth_task["train"]), str(tmp_path / "run"), epochs=1, tile_size=64, encoder="unet",
                          depth=3, width=4,
                          samples_per_epoch=4, nodata=0), progress=False)
    state = checkpoint.load(run / "model.pt")
    assert state.nodata == 0
    pixels = scene_pixels(synth_task).copy()
    pixels[:, 50:150, 60:260] = 0  # blanked out, with no nodata declared in the file
    scene = write_tif(tmp_path / "blank.tif", pixels, transform=T)
    predict_probability(scene, state, tmp_path / "p.tif", TileOptions(tile_size=64))
    prob = prob_of(tmp_path / "p.tif")
    assert (prob[50:150, 60:260] == 0).all() and prob.max() > 0
    predict_probability(scene, state, tmp_path / "q.tif", TileOptions(tile_size=64, nodata=-1))  # overridden
    assert prob_of(tmp_path / "q.tif")[50:150, 60:260].max() > 0


def test_training_leaves_nodata_pixels_out_of_the_loss(synth_task):
    from geoseg.datasets.tiles import TileDataset, band_statistics, find_pairs, load_samples

    pairs = find_pairs(synth_task["train"])[:1]
    samples, scale = load_samples(pairs, nodata=0)
    assert samples[0].valid is not None
    image = samples[0].image.copy()
    image[:, :10, :] = 0
    s = samples[0].__class__(samples[0].name, image, samples[0].mask, None, ~np.all(image == 0, axis=0))
    item = TileDataset([s], band_statistics([s], scale), 128, 4)[0]
    assert not item["valid"][:10].any() and item["valid"][10:128].all()


@pytest.mark.parametrize("turn", ["flip", "rot90"])
def test_tta_makes_the_prediction_follow_a_flipped_or_turned_scene(tiny_model, synth_task, tmp_path, turn):
    # one 128 px tile with 16 px of reflected padding on every side of a 96 px scene: the
    # tiling is symmetric, so only the model can break the symmetry, and TTA removes that
    img = scene_pixels(synth_task)[:, :96, :96]
    moved = img[:, :, ::-1] if turn == "flip" else np.rot90(img, 1, (1, 2))
    undo = (lambda p: p[:, ::-1]) if turn == "flip" else (lambda p: np.rot90(p, -1))
    state = checkpoint.load(tiny_model)
    probs = {}
    for tta in (False, True):
        opts = TileOptions(tile_size=128, overlap=16, precision="fp32", tta=tta)
        for name, pixels in (("a", img), ("b", np.ascontiguousarray(moved))):
            predict_probability(write_tif(tmp_path / f"{name}.tif", pixels, transform=T), state,
                                tmp_path / f"p{name}.tif", opts)
        probs[tta] = prob_of(tmp_path / "pa.tif").astype(int), undo(prob_of(tmp_path / "pb.tif")).astype(int)
    assert np.abs(probs[False][0] - probs[False][1]).max() > 3  # without TTA the model is not symmetric
    assert np.abs(probs[True][0] - probs[True][1]).max() <= 1  # with it, up to rounding


def test_the_allocator_setting_applies_on_glibc_and_is_made_once():
    import platform

    import geoseg.runtime as runtime

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the allocator setting is for glibc; this C library is not")
    assert runtime.tune_allocator() is True and runtime._ALLOCATOR_TUNED
    assert runtime.tune_allocator() is True  # a second call changes nothing and says the same


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_every_pixel_type_is_read_in_its_own_type_and_predicted(tiny_model, tmp_path, dtype, precision):
    rng = np.random.default_rng(0)
    pixels = (rng.random((3, 70, 90)) * 100).astype(dtype)
    scene = write_tif(tmp_path / "s.tif", pixels, transform=T)
    state = checkpoint.load(tiny_model)
    with pytest.warns() if dtype != "uint8" else contextlib.nullcontext():  # unlike the training images
        predict_probability(scene, state, tmp_path / "p.tif", TileOptions(tile_size=64, precision=precision))
    # the same pixels as float32 give the same probability: reading in the file's type changes nothing (both
    # stretched by their percentiles onto the 8-bit model's range; 8-bit pixels are the model's own, unstretched)
    as_float = write_tif(tmp_path / "f.tif", pixels.astype("float32"), transform=T)
    with pytest.warns():
        predict_probability(as_float, state, tmp_path / "q.tif", TileOptions(tile_size=64, precision=precision))
    if dtype != "uint8":
        assert np.abs(prob_of(tmp_path / "p.tif").astype(int) - prob_of(tmp_path / "q.tif")).max() <= 1


@pytest.mark.slow
def test_a_compiled_model_predicts_what_the_plain_one_does(tiny_model, synth_task, tmp_path):
    import warnings

    from geoseg.errors import GeosegWarning

    state = checkpoint.load(tiny_model)
    for compiled in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", GeosegWarning)  # no fallback to the plain model: it compiled
            predict_probability(synth_task["scene"], state, tmp_path / f"p{compiled}.tif",
                                TileOptions(tile_size=64, overlap=8, precision="fp32", compile=compiled))
    plain, compiled = prob_of(tmp_path / "pFalse.tif").astype(int), prob_of(tmp_path / "pTrue.tif").astype(int)
    assert np.abs(plain - compiled).max() <= 1


@pytest.mark.slow
def test_without_a_compiler_compile_says_so_once_and_predicts_uncompiled(tiny_model, synth_task, tmp_path):
    # a real failure: inductor finds no C++ compiler (and has no cached kernels to fall back on)
    import os
    import subprocess
    import sys

    env = {**os.environ, "CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    args = ["predict", synth_task["scene"], "--model", tiny_model, "--out", tmp_path / "c.gpkg", "--tile-size", "64",
            "--precision", "fp32", "--no-preview", "--quiet"]
    proc = subprocess.run([sys.executable, "-m", "geoseg.cli", *map(str, args), "--compile"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("torch.compile failed") == 1, proc.stderr
    plain = run_predict(synth_task["scene"], tiny_model, Outputs(tmp_path / "p.gpkg", preview=False),
                        TileOptions(tile_size=64, precision="fp32"))
    assert f"{plain.count} roof polygons" in proc.stdout


def _reader_threads() -> int:
    import threading

    return sum(t.name == "geoseg-read" for t in threading.enumerate())


def test_reading_in_a_thread_ahead_gives_the_same_probability(tiny_model, synth_task, tmp_path, monkeypatch):
    import geoseg.predict.prefetch

    monkeypatch.setattr(geoseg.predict.prefetch, "READ_BYTES", 1)  # a read per tile: many items through the thread
    pixels = scene_pixels(synth_task).copy()
    pixels[:, 50:90, 30:200] = 0
    scene = write_tif(tmp_path / "nd.tif", pixels, transform=T, nodata=0)
    state = checkpoint.load(tiny_model)
    for prefetch in (False, True):
        predict_probability(scene, state, tmp_path / f"p{prefetch}.tif",
                            TileOptions(tile_size=64, overlap=8, precision="fp32", prefetch=prefetch))
    assert np.array_equal(prob_of(tmp_path / "pFalse.tif"), prob_of(tmp_path / "pTrue.tif"))
    assert _reader_threads() == 0


def test_decoding_threads_are_gdals_during_the_reads(tiny_model, synth_task, tmp_path, monkeypatch):
    # GDAL decodes each read's blocks on the threads asked for, else on a CPU on torch's threads;
    # the probability is the same either way
    from geoseg.errors import InputError
    from geoseg.io.windows import RowBands

    seen = []
    real = RowBands.window

    def window(self, *a):
        seen.append(rasterio.env.getenv().get("GDAL_NUM_THREADS"))
        return real(self, *a)

    monkeypatch.setattr(RowBands, "window", window)
    state = checkpoint.load(tiny_model)
    for n in (None, 3):
        predict_probability(synth_task["scene"], state, tmp_path / f"p{n}.tif",
                            TileOptions(tile_size=64, overlap=8, device="cpu", decode_threads=n))
        assert set(seen) == {n or torch.get_num_threads()}
        seen.clear()
    assert np.array_equal(prob_of(tmp_path / "pNone.tif"), prob_of(tmp_path / "p3.tif"))
    with pytest.raises(InputError, match="`decode_threads` must be at least 1"):
        TileOptions(decode_threads=0)


def test_a_read_error_in_the_reading_thread_reaches_the_caller(tiny_model, synth_task, tmp_path):
    vrt = quadrant_vrt(scene_pixels(synth_task), tmp_path, drop=3)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RasterReadError, match="mosaic.vrt"):
        run_predict(vrt, tiny_model, Outputs(out / "r.gpkg", prob=out / "p.tif"), TileOptions(tile_size=64,
                                                                                              prefetch=True))
    assert list(out.iterdir()) == [] and _reader_threads() == 0


def test_stopping_a_prediction_early_stops_its_reading_thread(tiny_model, synth_task, tmp_path):
    from geoseg.predict.engine import predict_rows

    rows = predict_rows(synth_task["scene"], checkpoint.load(tiny_model), None,
                        TileOptions(tile_size=64, overlap=8, prefetch=True))
    next(rows)
    assert _reader_threads() == 1
    rows.close()
    assert _reader_threads() == 0


def test_work_beside_the_model_is_spread_by_device_and_cores(monkeypatch):
    import geoseg.runtime as rt
    from geoseg.predict.prefetch import PREFETCH_CORES, use_prefetch

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_prefetch(True, cpu) and not use_prefetch(False, cuda)
    monkeypatch.setattr(rt, "cores", lambda: 1)  # one core: every thread beside the main one costs
    monkeypatch.setattr("geoseg.predict.prefetch.cores", rt.cores)
    assert not use_prefetch(None, cuda) and rt.trace_threads(cuda) == 0 and rt.host_threads(cuda) == 1
    monkeypatch.setattr(rt, "cores", lambda: 2)
    monkeypatch.setattr("geoseg.predict.prefetch.cores", rt.cores)
    assert use_prefetch(None, cuda) and not use_prefetch(None, cpu) and rt.trace_threads(cpu) == 1
    assert rt.trace_threads(cuda) == 2
    assert rt.host_threads(cuda) == 1 and rt.host_threads(cpu) is None and rt.trace_workers(cuda) == 0
    monkeypatch.setattr(rt, "cores", lambda: PREFETCH_CORES)
    monkeypatch.setattr("geoseg.predict.prefetch.cores", rt.cores)
    assert use_prefetch(None, cpu) and rt.trace_workers(cpu) == 0 and rt.trace_workers(cuda) == 4


def _copy_as(scene, path, fn, dtype):
    import rasterio

    with rasterio.open(scene) as src:
        data, profile = src.read(), src.profile
    out = fn(data.astype(np.float64)).astype(dtype)
    with rasterio.open(path, "w", **{**profile, "dtype": dtype, "count": out.shape[0]}) as dst:
        dst.write(out)
    return path


def test_a_scene_of_another_data_type_is_stretched_onto_the_models_range(tiny_model, synth_task, tmp_path):
    """A 16-bit and a float rendering of one scene (other gains and offsets) reach an 8-bit
    model alike: each band's 1st–99th percentiles become 0 … 255; the polygons agree."""
    import geopandas as gpd
    import rasterio

    from geoseg.config import STRETCH_PERCENTILES, TileOptions
    from geoseg.io.raster import band_percentiles
    from geoseg.jobs.predict import Outputs, run_predict
    from geoseg.models import checkpoint
    from geoseg.predict.engine import scene_normalisation

    u16 = _copy_as(synth_task["scene"], tmp_path / "u16.tif", lambda x: x * 6 + 300, "uint16")
    f32 = _copy_as(synth_task["scene"], tmp_path / "f32.tif", lambda x: x / 100 - 0.5, "float32")
    ckpt = checkpoint.load(tiny_model)
    with rasterio.open(u16) as src:
        norm = scene_normalisation(ckpt.norm, src, [1, 2, 3], None, "u16")
        lo, hi = band_percentiles(src, [1, 2, 3], STRETCH_PERCENTILES)
    model_in = lambda x, n: (x / n.scale - np.array(n.mean)) / np.array(n.std)  # noqa: E731
    np.testing.assert_allclose(model_in(lo, norm), model_in(np.zeros(3), ckpt.norm), atol=1e-6)
    np.testing.assert_allclose(model_in(hi, norm), model_in(np.full(3, 255.0), ckpt.norm), atol=1e-6)
    opts = TileOptions(tile_size=128, precision="fp32")
    with pytest.warns(GeosegWarning, match="uint16 imagery, the model was trained on 8-bit"):
        a = run_predict(u16, tiny_model, Outputs(tmp_path / "a.gpkg", preview=False), opts)
    b = run_predict(f32, tiny_model, Outputs(tmp_path / "b.gpkg", preview=False), opts)
    pa, pb = (gpd.read_file(r.out, layer="roofs") for r in (a, b))
    assert len(pa) > 0 and len(pa) == len(pb)
    assert pa.union_all().symmetric_difference(pb.union_all()).area < 0.01 * pa.union_all().area


def test_a_one_band_scene_is_fed_as_grey_to_a_three_band_model(tiny_model, synth_task, tmp_path):
    import geopandas as gpd

    from geoseg.config import TileOptions
    from geoseg.jobs.predict import Outputs, run_predict

    grey = _copy_as(synth_task["scene"], tmp_path / "grey.tif", lambda x: x.mean(0, keepdims=True).round(), "uint8")
    with rasterio.open(grey) as src:
        assert src.count == 1
    opts = TileOptions(tile_size=128, precision="fp32")
    with pytest.warns(GeosegWarning, match="one band, fed as grey"):
        auto = run_predict(grey, tiny_model, Outputs(tmp_path / "a.gpkg", preview=False), opts)
    given = run_predict(grey, tiny_model, Outputs(tmp_path / "b.gpkg", preview=False),
                        TileOptions(tile_size=128, precision="fp32", bands=(1, 1, 1)))
    pa, pb = (gpd.read_file(r.out, layer="roofs") for r in (auto, given))
    assert len(pa) == len(pb) and pa.geometry.geom_equals(pb.geometry).all()
