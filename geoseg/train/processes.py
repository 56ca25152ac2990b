"""``--nproc N``: N data-parallel training processes on this machine (``torch.distributed``)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import torch

from geoseg.errors import GeosegError, InputError, Interrupted
from geoseg.outputs.atomic import fresh_folder, refuse_inputs_in_folder
from geoseg.runtime import (
    threads_per_process,
)
from geoseg.train.loop import fit
from geoseg.train.run_folder import run_inputs

# --- several processes on this machine (``geoseg train --nproc N``) ---------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, config, world: int, port: int, progress: bool) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads_per_process(world))  # the cores shared out, not oversubscribed
    fit(config, progress=progress and rank == 0)


def spawn(config, nproc: int, progress: bool = True) -> Path:
    """Train ``config`` in ``nproc`` processes on this machine (what ``--nproc`` does)."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise InputError("`nproc` must be at least 1")
    config.check()  # bad options and an occupied run folder are said here, once, before any process starts
    out = Path(config.out_dir)
    refuse_inputs_in_folder("`out`", out, run_inputs(config))
    if not config.resume:
        fresh_folder(out, config.overwrite, "run folder", ", `resume`", empty_it=False)
    if nproc > 1 and torch.cuda.is_available() and config.device != "cpu" and nproc > torch.cuda.device_count():
        raise InputError(f"`nproc` {nproc} but only {torch.cuda.device_count()} GPU(s); one process per GPU")
    context = mp.start_processes(_worker, args=(config, nproc, _free_port(), progress), nprocs=nproc,
                                 start_method="spawn", join=False)
    try:
        try:
            while not context.join():
                pass
        except KeyboardInterrupt:
            # the processes got the same Ctrl-C: rank 0 saves last.pt; wait for them to stop
            with contextlib.suppress(mp.ProcessRaisedException, mp.ProcessExitedException):
                while not context.join(timeout=60):
                    pass
            raise Interrupted(f"stopped; the weights are in {Path(config.out_dir) / 'last.pt'} if an epoch"
                              " had ended; continue with `resume`") from None
    except mp.ProcessRaisedException as exc:
        text = str(exc).strip().splitlines()
        # the child's own error: the last line of its traceback (not its first), without the exception's class
        last = text[-1] if text else str(exc)
        raise GeosegError(f"a training process failed: {last.split(': ', 1)[-1]}") from None
    except mp.ProcessExitedException as exc:
        raise GeosegError(f"a training process died ({exc}); see its messages above") from None
    return Path(config.out_dir)
