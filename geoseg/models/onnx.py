"""A trained model as ONNX, for QGIS users without Python: the Deepness plugin runs it.

The graph takes a batch of tiles ``(N, bands, T, T)`` scaled to 0…1 the way Deepness
feeds them (8-bit values / 255) and standardised with the mean and standard deviation in
the metadata; it returns class probabilities ``(N, 2, T, T)`` (background, roof), the
softmax included. BatchNorm is folded into the convolutions first. The metadata are the
keys Deepness reads (``model_type``, ``class_names``, ``resolution`` in cm/px when
known, ``tiles_size``, ``tiles_overlap`` in percent, ``seg_thresh``,
``standardization_mean``/``_std``), JSON-encoded as its documentation asks. After
writing, the file is run in onnxruntime on random tiles and compared with torch.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geoseg.errors import InputError
from geoseg.models import checkpoint
from geoseg.models.inference import fuse_for_inference
from geoseg.outputs.atomic import atomic_output, refuse_inputs_as_outputs
from geoseg.samplers.grid import choose_tile

OPSET = 18


@dataclass(frozen=True)
class OnnxResult:
    """The written ONNX file, its tile size and how closely onnxruntime matched torch."""

    path: Path
    tile_size: int
    max_abs_diff: float  # largest |onnxruntime − torch| over the check's probabilities
    metadata: dict


class _Probabilities(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image).softmax(1)


def export_onnx(model_path: str | os.PathLike, out: str | os.PathLike, tile_size: int | None = None,
                resolution_cm: float | None = None, overlap: int | None = None, overwrite: bool = False) -> OnnxResult:
    """Write ``model_path``'s model as ONNX to ``out`` with Deepness metadata; returns the check."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise InputError(f"ONNX export needs onnx and onnxruntime ({exc}); pip install 'geoseg[onnx]'") from None
    if Path(out).suffix.lower() != ".onnx":
        raise InputError(f"{out}: name the output *.onnx")
    refuse_inputs_as_outputs([("`out`", out)], [("the model", model_path)])
    if resolution_cm is not None and resolution_cm <= 0:
        raise InputError("`resolution` must be a positive number of centimetres per pixel")
    ckpt = checkpoint.load(model_path)
    model, mcfg, norm = ckpt.build("cpu"), ckpt.model, ckpt.norm
    tile, overlap = choose_tile(mcfg.multiple, tile_size, overlap, ckpt.fixed_tile)  # as geoseg predict
    if not 0 <= overlap < tile // 2:
        raise InputError(f"`overlap` must be between 0 and {tile // 2 - 1} pixels")
    net = _Probabilities(fuse_for_inference(model, onednn=False)).eval()
    # Deepness divides 8-bit pixels by 255, then standardises; geoseg divides by the
    # training images' scale: fold the difference into the standardisation
    k = norm.scale / 255.0
    metadata = {
        "model_type": "Segmentor",
        "class_names": {0: "background", 1: "roof"},
        "tiles_size": tile,
        "tiles_overlap": round(100 * 2 * overlap / tile),
        "seg_thresh": 0.5,
        "standardization_mean": [float(m * k) for m in norm.mean],
        "standardization_std": [float(s * k) for s in norm.std],
    }
    if resolution_cm is not None:
        metadata["resolution"] = float(resolution_cm)
    example = torch.rand(1, mcfg.in_channels, tile, tile)
    with atomic_output(out, overwrite) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's chatter about its own internals
            program = torch.onnx.export(
                net, (example,), input_names=["image"], output_names=["probabilities"],
                dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=1024)}},
                opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
            )
        proto = program.model_proto
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        proto.producer_name = "geoseg"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        diff = _check(tmp, net, mcfg.in_channels, tile, onnxruntime)
    return OnnxResult(Path(out), tile, diff, metadata)


def _check(path: Path, net: torch.nn.Module, bands: int, tile: int, onnxruntime) -> float:
    """Largest absolute difference between onnxruntime's and torch's probabilities."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, bands, tile, tile)).astype(np.float32))
    with torch.no_grad():
        expected = net(x).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    return float(np.abs(got - expected).max())
