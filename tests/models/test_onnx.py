"""ONNX export for QGIS's Deepness plugin: same probabilities as geoseg, metadata it reads."""

import json

import numpy as np
import onnxruntime
import pytest
import rasterio
import torch
from click.testing import CliRunner

from cli import main
from geoseg.errors import CheckpointError, InputError, OutputExistsError
from geoseg.models import checkpoint
from geoseg.models.inference import fuse_for_inference
from geoseg.models.onnx import export_onnx
from geoseg.predict.engine import roof_probability


@pytest.mark.slow
def test_a_deepness_style_run_of_the_onnx_model_gives_geoseg_probabilities(tiny_model, synth_task, tmp_path):
    res = export_onnx(tiny_model, tmp_path / "roofs.onnx", tile_size=64, resolution_cm=30)
    assert res.max_abs_diff < 1e-4
    session = onnxruntime.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert meta["model_type"] == "Segmentor" and meta["class_names"] == {"0": "background", "1": "roof"}
    assert meta["tiles_size"] == 64 and meta["resolution"] == 30
    assert meta["tiles_overlap"] == 25  # 8 px margins on 64 px tiles
    # Deepness: 8-bit pixels / 255, minus standardization_mean, over standardization_std
    with rasterio.open(synth_task["scene"]) as src:
        pixels = src.read(window=((100, 164), (200, 264))).astype(np.float32)
    x = (pixels / 255 - np.array(meta["standardization_mean"])[:, None, None]) / np.array(
        meta["standardization_std"])[:, None, None]
    onnx_roof = session.run(None, {"image": x[None].astype(np.float32)})[0][0, 1]
    # geoseg, from its own checkpoint and normalisation
    state = checkpoint.load(tiny_model)
    model, _ = checkpoint.build_model(state)
    norm = state.norm
    t = (torch.from_numpy(pixels) / norm.scale - torch.tensor(norm.mean)[:, None, None]) / torch.tensor(
        norm.std)[:, None, None]
    with torch.no_grad():
        ours = roof_probability(fuse_for_inference(model), t[None].float())[0].numpy()
    np.testing.assert_allclose(onnx_roof, ours, atol=1e-4)
    # a batch of several tiles, as Deepness may send
    assert session.run(None, {"image": np.repeat(x[None], 3, 0).astype(np.float32)})[0].shape == (3, 2, 64, 64)


@pytest.mark.slow
def test_export_onnx_on_the_command_line_and_its_bad_inputs(tiny_model, tmp_path):
    out = tmp_path / "roofs.onnx"
    res = CliRunner().invoke(main, ["export-onnx", str(tiny_model), "--out", str(out), "--tile-size", "64"])
    assert res.exit_code == 0, res.output
    assert "onnxruntime matches torch" in res.output and "--resolution" in res.output
    with pytest.raises(OutputExistsError):
        export_onnx(tiny_model, out, tile_size=64)
    with pytest.raises(InputError, match="multiple of"):
        export_onnx(tiny_model, tmp_path / "b.onnx", tile_size=63)
    with pytest.raises(InputError, match=".onnx"):
        export_onnx(tiny_model, tmp_path / "b.pt", tile_size=64)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        export_onnx(tmp_path / "junk.pt", tmp_path / "c.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt", "roofs.onnx"]


@pytest.mark.slow
def test_a_resnet_encoder_model_exports_and_predicts_like_geoseg(tiny_model, synth_task, tmp_path):
    from geoseg.models.registry import create_model
    from geoseg.models.unet import UNetConfig

    state = checkpoint.load(tiny_model)
    model = create_model(UNetConfig(depth=6, width=4, encoder="resnet18")).eval()
    checkpoint.save(tmp_path / "resnet.pt", model, state.norm, 64)
    res = export_onnx(tmp_path / "resnet.pt", tmp_path / "resnet.onnx", tile_size=64)
    assert res.max_abs_diff < 1e-4 and res.tile_size == 64
    from geoseg.config import TileOptions
    from geoseg.predict.engine import predict_probability

    predict_probability(synth_task["scene"], checkpoint.load(tmp_path / "resnet.pt"), tmp_path / "p.tif",
                        TileOptions(tile_size=64))
    with rasterio.open(tmp_path / "p.tif") as src, rasterio.open(synth_task["scene"]) as scene:
        assert (src.width, src.height) == (scene.width, scene.height)
