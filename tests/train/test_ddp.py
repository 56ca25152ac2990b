"""Data-parallel training: two CPU processes (gloo) stay one model, rank 0 writes, resume works."""

import json
from dataclasses import replace

import pytest

from geoseg.config import TileOptions, TrainConfig
from geoseg.jobs.predict import Outputs, run_predict
from geoseg.models import checkpoint
from geoseg.train.loop import fit
from geoseg.train.processes import spawn

pytestmark = pytest.mark.slow


def config(synth_task, out, **kw):
    return TrainConfig(data_dir=str(synth_task["train"]), out_dir=str(out), epochs=2, batch_size=2, tile_size=64,
                       encoder="unet", depth=3, width=4, samples_per_epoch=8, lr_max=1e-3, seed=0, **kw)


def test_two_processes_keep_identical_weights_and_their_model_predicts(synth_task, tmp_path):
    run = spawn(config(synth_task, tmp_path / "run"), nproc=2, progress=False)
    record = json.loads((run / "distributed.json").read_text())
    assert record["processes"] == 2 and record["backend"] == "gloo"
    assert len(record["weight_checksums"]) == 2 and record["identical"]
    assert json.loads((run / "config.json").read_text())["processes"] == 2
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header and two epochs, written once
    state = checkpoint.load(run / "last.pt").extra
    assert len(state["rank_rngs"]) == 2 and state["step"] == 2 * 2  # 8 tiles an epoch: 4 per rank, 2 steps
    res = run_predict(synth_task["scene"], run / "model.pt", Outputs(tmp_path / "roofs.gpkg", preview=False),
                      TileOptions(tile_size=64))
    assert res.out.exists()
    # resume continues the same run with both processes; rank 0 alone then makes the averaged model
    spawn(replace(config(synth_task, tmp_path / "run"), epochs=4, average=1, resume=True), nproc=2, progress=False)
    assert checkpoint.load(run / "last.pt").epoch == 4
    assert checkpoint.load(run / "model.pt").metrics["averaged_cycles"] == 1  # epoch 4 ends a cycle
    assert json.loads((run / "distributed.json").read_text())["identical"]


def test_a_failing_process_is_one_clear_error(synth_task, tmp_path):
    from geoseg.errors import GeosegError

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("the user's")
    with pytest.raises(GeosegError, match="run folder exists"):  # said before any process starts
        spawn(config(synth_task, tmp_path / "run"), nproc=2, progress=False)
    assert (tmp_path / "run" / "keep.txt").read_text() == "the user's"
    # an error inside the processes: resuming a run of another architecture
    fit(replace(config(synth_task, tmp_path / "one"), epochs=1), progress=False)
    with pytest.raises(GeosegError, match="^a training process failed: .*another architecture"):
        spawn(replace(config(synth_task, tmp_path / "one"), width=8, resume=True), nproc=2, progress=False)
