import numpy as np
import pytest
import torch

from geoseg.datasets.weightmap import unet_weight_map
from geoseg.errors import InputError
from geoseg.train.losses import LOSSES, get_loss


def batch():
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, 4:10, 4:10] = 1
    valid = torch.ones(2, 16, 16)
    weight = torch.from_numpy(np.stack([unet_weight_map(t.numpy()) for t in target]))
    return target, valid, weight


def logits_for(target, confidence):
    return torch.stack([-confidence * (target == 1).float(), confidence * (target == 1).float()], 1) + \
        torch.stack([confidence * (target == 0).float(), -confidence * (target == 0).float()], 1)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_falls_as_the_prediction_gets_right(name):
    target, valid, weight = batch()
    loss = get_loss(name)
    wrong = loss(logits_for(1 - target, 3.0), target, valid, weight)
    unsure = loss(torch.zeros(2, 2, 16, 16), target, valid, weight)
    right = loss(logits_for(target, 8.0), target, valid, weight)
    assert wrong > unsure > right >= 0
    assert right < 0.01


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_invalid_pixels_do_not_count(name):
    target, valid, weight = batch()
    valid[:, :, :2] = 0
    logits = torch.randn(2, 2, 16, 16)
    a = get_loss(name)(logits, target, valid, weight)
    logits[:, :, :, :2] = torch.randn(2, 2, 16, 2) * 50
    assert torch.allclose(a, get_loss(name)(logits, target, valid, weight))


def test_weight_map_peaks_in_the_gap_between_close_roofs():
    m = np.zeros((40, 60), np.uint8)
    m[10:30, 5:25] = 1
    m[10:30, 28:48] = 1  # 3 px gap at columns 25..27
    w = unet_weight_map(m)
    gap, far = w[20, 26], w[2, 55]
    assert gap > far + 5  # w0 = 10 at a gap of 3 px: 10·exp(-(2+2)²/50) ≈ 7.3
    assert w[m > 0].min() > w[m == 0].min()  # class balance: the rarer class weighs more
    single = np.zeros_like(m)
    single[10:30, 5:25] = 1
    assert len(np.unique(unet_weight_map(single))) == 2  # one roof: class weights only, no separation term


def test_unknown_loss_lists_the_names():
    with pytest.raises(InputError, match="dice, pixel-softmax, softmax, dice\\+ce"):
        get_loss("focal")


def test_class_weights_from_frequencies_favour_rare_classes_and_enter_the_loss():
    import numpy as np
    import torch

    from geoseg.train.losses import class_weighted, frequency_weights, get_loss

    w = frequency_weights(np.array([900.0, 100.0, 0.0]))
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 1.0 and np.mean(w[:2]) == pytest.approx(1.0)
    logits = torch.randn(1, 3, 4, 4)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0] = 1
    ones = torch.ones(1, 4, 4)
    plain = get_loss("softmax")
    heavy = class_weighted(plain, torch.tensor([1.0, 100.0, 1.0]))
    only_rare = class_weighted(plain, torch.tensor([0.0, 1.0, 0.0]))
    expect = plain(logits, target, (target == 1).float(), ones)
    assert torch.isclose(only_rare(logits, target, ones, ones), expect)
    assert not torch.isclose(heavy(logits, target, ones, ones), plain(logits, target, ones, ones))
