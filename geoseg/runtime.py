"""Where and in what precision torch runs: one choice for training and prediction.

``auto`` picks CUDA when there is one, else the CPU; on the CPU it uses bfloat16
autocast with channels-last memory where the processor has bfloat16 instructions
(about 3–4× faster for this U-Net on the development machines), on CUDA float16 AMP.
"""

from __future__ import annotations

import contextlib
import os

import torch

from geoseg.config import DEVICES, PRECISIONS
from geoseg.errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``auto``, ``cpu`` or ``cuda`` (refused where there is no CUDA)."""
    if name not in DEVICES:
        raise InputError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("`device` cuda asked but torch sees no CUDA GPU; use `device` cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX-512 BF16 or AMX), so bf16 autocast pays."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """The concrete precision for ``name`` on ``device``: fp32, bf16 or fp16."""
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"
    if name == "fp16" and device.type == "cpu":
        raise InputError("fp16 runs on CUDA only; use `precision` bf16 or fp32 on a CPU")
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def cores() -> int:
    """The cores this process may run on (``taskset``, a container's CPU set), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """Torch threads for each of ``processes`` processes sharing this machine's cores (at least 1)."""
    return max(1, cores() // max(processes, 1))


def trace_workers(device: torch.device) -> int:
    """Processes that trace polygons beside the model (``VectorizeOptions.trace_workers``):
    on CUDA the model leaves the cores to the work beside it, so the cores less two (the
    main process and GDAL's reads), at most 4; on a CPU none, the model keeping every core
    busy (``bench/beside.py`` measures the stages with and without them)."""
    if device.type != "cuda":
        return 0
    return max(0, min(4, cores() - 2))


def trace_threads(device: torch.device) -> int:
    """Threads tracing polygons beside the prediction (``VectorizeOptions.trace_threads``):
    none on one core (the switching costs what it hides); on a CPU one, beside the model
    that keeps the cores busy (8192² scene, starter model, 2 cores: 67.1 → 62.3 s); on CUDA
    the cores, at most 4 (on 2 cores the weak model's speckle, 67 MP, went 18.6 s on one
    core → 16.3 s with one thread, 13.5 s with two)."""
    n = cores()
    if n < 2:
        return 0
    return min(4, n) if device.type == "cuda" else 1


def host_threads(device: torch.device) -> int | None:
    """Torch's threads for the work on the host while a scene is predicted: on CUDA the
    cores less the read-ahead and tracing threads' (torch's waiting threads would take
    their cores: on 2 cores, 2 torch threads made the work beside the model 1.5× slower
    than 1), at least 1; on a CPU None (torch's own choice: the model needs every core)."""
    return max(1, cores() - 2) if device.type == "cuda" else None


def decode_threads(device: torch.device) -> int | None:
    """GDAL's threads decoding the blocks of a read (``TileOptions.decode_threads``): on
    CUDA every core, the host's heaviest work being the decoding (the host's part of a GPU
    run, emulated on 2 cores by ``bench/beside.py --gpu-host``: 1.51 → 1.33 s, median of 5,
    with 2 threads against 1; with the stages a GPU does on the device run on the CPU too,
    no difference); on a CPU None: as many as torch has, the model's cores, idle while it
    waits for its tiles."""
    return cores() if device.type == "cuda" else None


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Torch's intra-op threads set to ``n`` inside (None: left as they are)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def loader_workers(device: torch.device, processes: int = 1) -> int:
    """Processes cutting and augmenting training tiles beside the training loop
    (``TrainConfig.loader_workers``): on CUDA the GPU would wait for them (a batch of 8
    tiles of 256² takes about 0.2 s of one core to cut and augment, more than a GPU step
    of these networks), so the cores less one for each training process, at most 4; on a
    CPU none, the model's steps keeping every core busy (the tiles are a tenth of a step)."""
    if device.type != "cuda":
        return 0
    return max(0, min(4, cores() // max(processes, 1) - 1))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    import random

    random.seed(seed)
    torch.manual_seed(seed)


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep glibc's malloc from handing the model's large activations back to the kernel
    after every forward pass (allocations up to 32 MiB come from the heap, which is not
    trimmed below 1 GiB of free space): otherwise each pass maps them anew and faults in
    every page. Measured on 2 cores (``bench/speed.py``): ``geoseg predict`` on an 8192²
    scene 15.3 → 11.3 s, the same peak memory. Once per process; False where the C
    library is not glibc (musl, macOS, Windows), where nothing is changed."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok
