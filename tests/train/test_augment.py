import numpy as np
import torch
from torchvision import tv_tensors

from geoseg.train.augment import train_transform


def test_image_and_mask_move_together_and_rotated_corners_are_invalid():
    torch.manual_seed(0)
    mask = np.zeros((64, 64), np.int64)
    mask[8:30, 20:50] = 1
    mask[40:60, 5:15] = 1
    image = np.repeat(mask[None].astype(np.float32), 3, 0)  # the image *is* the mask
    transform = train_transform(3, photometric=False)
    corners = 0
    for _ in range(20):
        img, m, valid, _ = transform((
            tv_tensors.Image(torch.from_numpy(image)), tv_tensors.Mask(torch.from_numpy(mask)),
            tv_tensors.Mask(torch.ones(64, 64)), tv_tensors.Mask(torch.ones(64, 64)),
        ))
        v = valid > 0
        agree = ((img[0] > 0.5) == (m == 1))[v].float().mean()
        assert agree > 0.97, "mask drifted from its image"
        assert set(torch.unique(m).tolist()) <= {0, 1}  # nearest-neighbour for masks
        corners += int((~v).sum())
    assert corners > 0, "rotation never brought in corners"


def test_photometric_jitter_touches_the_image_only():
    torch.manual_seed(1)
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[4:20, 4:20] = 1
    img = tv_tensors.Image(torch.rand(3, 32, 32))
    transform = train_transform(3, photometric=True)
    _, m, _, w = transform((img, tv_tensors.Mask(mask), tv_tensors.Mask(torch.ones(32, 32)),
                            tv_tensors.Mask(torch.full((32, 32), 2.0))))
    assert set(torch.unique(w).tolist()) <= {0.0, 2.0}
    assert int(m.sum()) > 0



def test_a_four_band_image_gets_a_gain_and_offset_per_band_and_its_mask_is_untouched():
    # contrast and hue are 1- or 3-band operations in torchvision: a 4-band image gets BandJitter
    from geoseg.train.augment import BandJitter

    torch.manual_seed(2)
    image = torch.full((4, 16, 16), 0.5)
    mask = torch.zeros(16, 16, dtype=torch.long)
    mask[2:9, 3:12] = 1
    jitter = BandJitter(gain=0.2, offset=0.05)
    out, m = jitter(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert torch.equal(m, mask)
    per_band = out.reshape(4, -1)
    assert torch.allclose(per_band, per_band[:, :1].expand_as(per_band))  # one gain and offset a band
    assert len(set(per_band[:, 0].tolist())) == 4  # drawn per band
    assert ((per_band[:, 0] - 0.5).abs() <= 0.5 * 0.2 + 0.05 + 1e-6).all()  # within the gain and offset asked
    steps = [type(t).__name__ for t in train_transform(4).transforms]
    assert "BandJitter" in steps and "ColorJitter" not in steps
    img, m4 = train_transform(4, photometric=True)((tv_tensors.Image(torch.rand(4, 32, 32)),
                                                    tv_tensors.Mask(torch.ones(32, 32, dtype=torch.long))))
    assert img.shape == (4, 32, 32) and set(torch.unique(m4).tolist()) <= {0, 1}
