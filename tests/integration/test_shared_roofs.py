"""On the reference roof tiles in ../shared/data/roofs (never copied into the project)."""

import numpy as np
import pytest
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.datasets.tiles import find_pairs, load_samples
from geoseg.errors import GeosegWarning
from tests.conftest import ROOFS

pytestmark = pytest.mark.skipif(
    not ROOFS.is_dir(), reason=f"{ROOFS} absent: the shared roof tiles come beside a developer's checkout only"
)


def test_original_layout_is_found_and_grey_masks_are_thresholded():
    pairs = find_pairs(ROOFS)
    assert len(pairs) == 20 and pairs[0].image.parent.name == "train_X"
    with pytest.warns(GeosegWarning) as said:
        samples, scale = load_samples(pairs[:3])
    assert [str(w.message) for w in said].count(
        "masks with values other than 0/1/255 (anti-aliased grey) are thresholded at 128") == 1  # said once
    assert scale == 255.0
    for s in samples:
        assert s.image.shape == (3, 256, 256) and set(np.unique(s.mask)) <= {0, 1}
        assert 0.0 < s.mask.mean() < 0.4


@pytest.mark.slow
def test_train_then_predict_an_unlabelled_tile(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["train", str(ROOFS), "--out", str(tmp_path / "run"), "--epochs", "1",
                             "--encoder", "unet", "--depth", "3", "--width", "4", "--samples-per-epoch", "8",
                             "--quiet"])
    assert r.exit_code == 0, r.output
    tile = ROOFS / "test_X" / "535.png"
    r = runner.invoke(main, ["predict", str(tile), "--model", str(tmp_path / "run" / "model.pt"),
                             "--out", str(tmp_path / "roofs.gpkg"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "pixel coordinates" in r.output and (tmp_path / "roofs.preview.png").exists()
