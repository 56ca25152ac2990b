"""One tester for every network ``create_model`` makes (as segmentation-models-pytorch tests
its models): class scores at the input's size for non-square sizes and any band count, the
same output after a checkpoint round trip, and (slow) the same probabilities from ONNX."""

import pytest
import torch

from geoseg.datasets.normalisation import Normalisation
from geoseg.models import checkpoint
from geoseg.models.registry import ARCHITECTURES, create_model
from geoseg.models.unet import UNetConfig

NETWORKS = {
    "unet-batch": UNetConfig(depth=3, width=4, norm="batch"),
    "unet-instance": UNetConfig(depth=4, width=4, norm="instance", in_channels=4),
    "resnet18": UNetConfig(encoder="resnet18", depth=6, width=8, in_channels=4),
    "resnet34-instance": UNetConfig(encoder="resnet34", depth=6, width=8, norm="instance"),
    "efficientnet-lite0-grey": UNetConfig(encoder="efficientnet-lite0", depth=6, width=8, in_channels=1),
    "efficientnet-lite2": UNetConfig(encoder="efficientnet-lite2", depth=6, width=8),
}


def test_every_architecture_is_tested():
    assert {next(k for k in ARCHITECTURES if c.encoder.startswith(k)) for c in NETWORKS.values()} == set(ARCHITECTURES)


@pytest.fixture(params=sorted(NETWORKS), scope="module")
def network(request):
    torch.manual_seed(0)
    return create_model(NETWORKS[request.param]).eval()


def _input(config: UNetConfig, rows: int, cols: int) -> torch.Tensor:
    side = 2 * config.multiple  # instance norm needs more than one pixel at the bottom
    return torch.rand(2, config.in_channels, rows * side, cols * side, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3), (5, 2)])
def test_class_scores_come_at_the_inputs_size(network, rows, cols):
    x = _input(network.config, rows, cols)
    with torch.no_grad():
        y = network(x)
    assert y.shape == (2, network.config.classes, *x.shape[2:]) and torch.isfinite(y).all()


def test_a_checkpoint_round_trip_gives_the_same_output(network, tmp_path):
    bands = network.config.in_channels
    norm = Normalisation(scale=255.0, mean=(0.5,) * bands, std=(0.25,) * bands)
    checkpoint.save(tmp_path / "model.pt", network, norm, tile_size=64)
    ckpt = checkpoint.load(tmp_path / "model.pt")
    again = ckpt.build("cpu")
    x = _input(network.config, 2, 1)
    with torch.no_grad():
        assert ckpt.model == network.config and torch.equal(network(x), again(x))


@pytest.mark.slow
def test_onnx_gives_torchs_probabilities(network, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX export needs the [onnx] extra")
    from geoseg.models.onnx import export_onnx

    bands = network.config.in_channels
    checkpoint.save(tmp_path / "model.pt", network, Normalisation(255.0, (0.5,) * bands, (0.25,) * bands), 64)
    result = export_onnx(tmp_path / "model.pt", tmp_path / "model.onnx", tile_size=64, overlap=8)
    assert result.max_abs_diff < 1e-3
