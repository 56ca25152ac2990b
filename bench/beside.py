"""The work beside the model: geoseg predict with a stand-in for the forward pass.

    python -m bench.beside [--size 8192] [--repeat 2] [--cores 1,2] [--real]

On a GPU the model runs at hundreds of megapixels per second, and what is left is the
work beside it: reading and decoding, normalising, blending, tracing, cleaning, writing.
This bench measures that work on this machine, whatever its matrix units:

1. once, ``geoseg predict`` with the real model writes the scene's probability (cached
   in bench-out/);
2. then ``run_predict`` runs end to end (same scene, tiles and outputs: roofs.geojson)
   with the forward pass replaced by a stand-in that hands back that stored probability,
   tile by tile, in the order geoseg asks for the tiles: realistic probabilities, at next
   to no cost. Polygons must be the real run's (count and area within 0.1 %; the real
   run is cached, so after a change of the tracer they compare the new code to the old).

The work is spread as geoseg spreads it on a GPU machine with this machine's cores
(``gpu_plan``: the read-ahead thread, the tracing thread, trace worker processes and
torch's threads on the host, all from ``geoseg.runtime``; the stand-in itself runs on the
CPU). ``--model``: another model's probability (e.g. ``geoseg/models/weights/starter.pt``, a
trained one: fewer, cleaner roofs than the benches' briefly trained model's speckle).

``--gpu-host``: also the host's part of a GPU run, emulated: on a GPU the window's tiles are
normalised, predicted and blended on the device, and only the finished rows come back, as
bytes; here those device stages are replaced by handing back the stored probability's rows
as the device would (a copy of the bytes), and the window's pixels are copied once, as
into page-locked memory. What is left is the host's work: reading and decoding, the
hand-overs, tracing, cleaning, writing (the tiles are still stacked on the host here: on a
GPU that too is the device's). The device's own time is not in it: an emulation of a GPU
that keeps up, not a measurement of one.

Prints megapixels per second beside the model (best of ``--repeat``) and the share of
each stage, timed exclusively (a stage's time excludes the stages it calls) and added up
over the threads: read (GDAL reads and decoding), normalise (to tensors, scaled),
stand-in (the model's place), blend (the stitcher), trace (strip masks, components,
polygons, the carry from strip to strip), clean (to map coordinates, simplification,
areas), write (the vector file), other (the rest of the main thread's time: the
probability to uint8, the hand-over of rows, waits). ``--cores 1,2`` repeats the measure
pinned to 1 and to 2 cores (``os.sched_setaffinity`` in a child process, inherited by its
threads and workers, which geoseg then plans for), and prints the scaling. ``--real``:
also the real model end to end and ``MP / (geoseg − bare)`` from the bare forward time,
which must agree with the stand-in's figure.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench._common import prepare, scene_args

ROOT = Path(__file__).resolve().parent.parent


class StageClock:
    """Exclusive time per stage of wrapped functions: a stage called inside another is
    taken out of the outer one's time. Each thread keeps its own stack; ``seconds`` adds up
    every thread's time, ``main`` the main thread's alone."""

    def __init__(self) -> None:
        import threading

        self.seconds: dict[str, float] = defaultdict(float)
        self.main = 0.0
        self._local = threading.local()  # .stack: [stage, start, time spent in inner stages]
        self._saved: list[tuple] = []  # (owner, name, the function wrapped)

    def wrap(self, owner, name: str, stage: str) -> None:
        import threading

        inner = getattr(owner, name)
        self._saved.append((owner, name, inner))
        clock = self

        def timed(*a, **k):
            stack = clock._local.__dict__.setdefault("stack", [])
            stack.append([stage, time.perf_counter(), 0.0])
            try:
                return inner(*a, **k)
            finally:
                st, t0, nested = stack.pop()
                spent = time.perf_counter() - t0
                clock.seconds[st] += spent - nested
                if threading.current_thread() is threading.main_thread():
                    clock.main += spent - nested
                if stack:
                    stack[-1][2] += spent

        setattr(owner, name, timed)

    def restore(self) -> None:
        """Put every wrapped function back."""
        while self._saved:
            setattr(*self._saved.pop())


class StandIn:
    """The stored probability of an earlier run, handed back per tile in the order geoseg
    predicts them (row by row; the grid is the one ``choose_grid`` gave). A tile reaching
    past the scene is padded by reflection, that tile alone (padding the whole scene when
    the grid is chosen took 0.17 s of the run's clock)."""

    def __init__(self, prob: np.ndarray) -> None:
        self.prob, self.tiles = prob, None

    def start(self, grid) -> None:
        self.tiles = iter([t for r in range(grid.rows) for t in grid.row_tiles(r)])

    def __call__(self, model, x, tta=False):
        import torch

        out = []
        h, w = self.prob.shape
        for _ in range(x.shape[0]):
            t = next(self.tiles)
            r0, c0 = max(t.row_off, 0), max(t.col_off, 0)
            r1, c1 = min(t.row_off + t.size, h), min(t.col_off + t.size, w)
            tile = self.prob[r0:r1, c0:c1]
            pad = ((r0 - t.row_off, t.row_off + t.size - r1), (c0 - t.col_off, t.col_off + t.size - c1))
            out.append(torch.from_numpy(np.pad(tile, pad, mode="reflect") if any(sum(pad, ())) else tile))
        return torch.stack(out).float().mul_(1 / 255)


def gpu_plan() -> dict:
    """geoseg's own choices for the work beside the model on a CUDA machine with the cores
    this process may use (``runtime``): read-ahead and tracing threads, trace workers, and
    torch's threads on the host."""
    import torch

    from geoseg import runtime
    from geoseg.predict.prefetch import use_prefetch

    cuda = torch.device("cuda")
    plan = {"prefetch": use_prefetch(None, cuda), "trace_threads": runtime.trace_threads(cuda),
            "trace_workers": runtime.trace_workers(cuda), "torch_threads": runtime.host_threads(cuda)}
    if hasattr(runtime, "decode_threads"):  # an older checkout decodes on torch's threads
        plan["decode_threads"] = runtime.decode_threads(cuda)
    return plan


def measure(scene: Path, model: Path, prob_file: Path, tile: int, overlap: int, plan: dict | None = None,
            device_free: bool = False) -> dict:
    """One stand-in run in this process: seconds per stage and the polygons' count and area.
    ``plan``: how the work is spread (``gpu_plan``'s keys; None: ``gpu_plan()``, as on a GPU
    machine, where the model costs next to nothing). Stages run in trace workers are not
    seen by the clock: their share is in the main thread's waits (``other``).
    ``device_free``: the device's stages too are stood in for (``use_device_stand_in``)."""
    try:
        import geoseg.predict.engine as gp
    except ImportError:  # a checkout of the flat layout (before 0.2)
        import geoseg.predict as gp

    restore = (use_device_stand_in if device_free else use_stand_in)(gp, prob_file)
    try:
        return _timed_run(scene, model, tile, overlap, plan)
    finally:  # the real engine back, for a real run after this one
        restore()


def use_stand_in(gp, prob_file: Path):
    """Put ``StandIn`` (the probability stored in ``prob_file``) in the place of the forward
    pass of ``gp`` (``geoseg.predict``, of this checkout or an older one); returns the
    function that puts the real one back."""
    import rasterio

    with rasterio.open(prob_file) as src:
        stand_in = StandIn(src.read(1))
    # the engine's forward pass: class_probability (N, K-1, H, W) since classes; roof_probability before
    forward = "class_probability" if hasattr(gp, "class_probability") else "roof_probability"
    real = gp.choose_grid, getattr(gp, forward)

    def grid_and_start(*a, **k):
        grid = real[0](*a, **k)
        stand_in.start(grid)
        return grid

    def classes_in(model, x, tta=False):
        return stand_in(model, x, tta)[:, None]

    gp.choose_grid = grid_and_start
    setattr(gp, forward, classes_in if forward == "class_probability" else stand_in)

    def restore() -> None:
        gp.choose_grid = real[0]
        setattr(gp, forward, real[1])

    return restore


def use_device_stand_in(gp, prob_file: Path):
    """Stand in for a GPU that keeps up (``--gpu-host``): in ``gp`` (``geoseg.predict``) the
    window's pixels are copied once (into page-locked memory, on a GPU), normalising and the
    forward pass do nothing, and the stitcher hands the stored probability's rows on as the
    device's bytes would come back (a copy), on the grid rows the real stitcher emits them.
    Returns the function that puts the real ones back."""
    import rasterio
    import torch

    from geoseg.predict import stitch

    with rasterio.open(prob_file) as src:
        stored = src.read(1)

    class DeviceRows(stitch.Stitcher):
        def __init__(self, grid, sink, window="hann", start_row=0, first_emitted=0, quantise=None, device="cpu"):
            self.grid, self.sink = grid, sink
            self.start = self.row = start_row
            self.emitted = first_emitted

        def add(self, tile, prob) -> None:
            pass

        def flush(self) -> None:
            pass

        def end_row(self) -> None:
            n = self.grid.size if self.row == self.grid.rows - 1 else self.grid.stride
            r0, r1 = max(self.top, self.emitted), min(self.top + n, self.grid.height)
            if r1 > r0:
                self.sink(r0, stored[r0:r1].copy())
                self.emitted = r1
            self.row += 1

    forward = "class_probability" if hasattr(gp, "class_probability") else "roof_probability"
    real = gp.host_pixels, gp.normalised, getattr(gp, forward), gp.Stitcher
    gp.host_pixels = lambda data, device: torch.from_numpy(data).clone()
    gp.normalised = lambda x, shift, gain: x
    shape = (1, 1, 1) if forward == "class_probability" else (1, 1)
    setattr(gp, forward, lambda model, x, tta=False: torch.zeros(x.shape[0], *shape))
    gp.Stitcher = DeviceRows

    def restore() -> None:
        gp.host_pixels, gp.normalised, _, gp.Stitcher = real
        setattr(gp, forward, real[2])

    return restore


def _timed_run(scene: Path, model: Path, tile: int, overlap: int, plan: dict | None) -> dict:
    """``run_predict`` with each stage's functions timed (``StageClock``), put back after."""
    try:
        import geoseg.predict.engine as gp
    except ImportError:  # a checkout of the flat layout (before 0.2)
        import geoseg.predict as gp
    import geoseg.vector.stream as gv
    import geoseg.vector.strips as gs
    from geoseg.config import TileOptions, VectorizeOptions
    from geoseg.jobs.predict import Outputs, run_predict
    from geoseg.outputs import export
    from geoseg.predict import stitch

    clock = StageClock()
    from geoseg.io import windows as io
    from geoseg.predict import prefetch

    if hasattr(io, "RowBands"):  # the rows of each grid row's windows, read once
        clock.wrap(io.RowBands, "window", "read")
    else:  # before: a read per window (an older checkout, ``before_after.py``)
        clock.wrap(gp, "read_window", "read")
    clock.wrap(prefetch, "as_tensor_type", "normalise")
    if hasattr(gp, "normalised"):  # the batch cut from the window, then scaled into floats
        clock.wrap(gp.torch, "stack", "normalise")
        clock.wrap(gp, "normalised", "normalise")
    else:  # an older checkout
        clock.wrap(gp.torch, "addcmul", "normalise")
    clock.wrap(gp, "class_probability" if hasattr(gp, "class_probability") else "roof_probability", "stand-in")
    clock.wrap(stitch.Stitcher, "add", "blend")
    clock.wrap(stitch.Stitcher, "end_row", "blend")
    clock.wrap(gs, "strip_mask", "trace")
    clock.wrap(gs, "strip_parts", "trace")
    clock.wrap(gs, "join_parts", "trace")
    clock.wrap(gs.StripTracer, "_carried", "trace")
    clock.wrap(gv, "to_table", "clean")
    clock.wrap(export.VectorWriter, "write", "write")
    clock.wrap(export.VectorWriter, "__exit__", "write")
    import torch

    from geoseg.runtime import torch_threads

    plan = plan or gpu_plan()
    if plan["trace_workers"]:
        gv.trace_pool(plan["trace_workers"])  # started before the clock, as a run's start while the model loads
    try:
        with tempfile.TemporaryDirectory(dir=scene.parent) as tmp, torch_threads(plan["torch_threads"]):
            out = Path(tmp) / "roofs.geojson"
            t0 = time.perf_counter()
            vector = VectorizeOptions(trace_workers=plan["trace_workers"], trace_threads=plan["trace_threads"])
            decoding = {"decode_threads": plan["decode_threads"]} if plan.get("decode_threads") else {}
            tiles = TileOptions(tile_size=tile, overlap=overlap, prefetch=plan["prefetch"], device="cpu", **decoding)
            r = run_predict(scene, model, Outputs(out, preview=False), tiles, vector)
            total = time.perf_counter() - t0
            threads = torch.get_num_threads()
            area = geojson_area(out)
    finally:
        clock.restore()
    stages = dict(clock.seconds)
    stages["other"] = total - clock.main
    return {"seconds": total, "stages": stages, "count": r.count, "area": area,
            "plan": {**plan, "torch_threads": threads}}


def geojson_area(path: Path) -> float:
    """Total area of a GeoJSON's polygons (read with shapely alone: no OGR needed)."""
    import shapely

    with open(path) as f:
        features = json.load(f)["features"]
    return float(shapely.area(shapely.from_geojson([json.dumps(g["geometry"]) for g in features])).sum())


CHILD = """
import json, os, sys
sys.path.insert(0, {bench!r})
os.sched_setaffinity(0, set(range({cores})))
from bench.beside import measure
from pathlib import Path
print(json.dumps(measure(Path({scene!r}), Path({model!r}), Path({prob!r}), {tile}, {overlap},
                         device_free={device_free})))
"""


def pinned(cores: int, scene: Path, model: Path, prob: Path, tile: int, overlap: int,
           device_free: bool = False) -> dict:
    """``measure`` in a child process pinned to ``cores`` cores (its threads and trace
    workers too), with geoseg's choices for that many cores (``gpu_plan``)."""
    code = CHILD.format(bench=str(Path(__file__).parent), cores=cores, scene=str(scene), model=str(model),
                        prob=str(prob), tile=tile, overlap=overlap, device_free=device_free)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def stored_probability(scene: Path, model: Path, tile: int, overlap: int, chosen: Path | None = None
                       ) -> tuple[Path, dict]:
    """The real model's probability of the scene and its polygons (cached, named after
    ``chosen``, the ``--model`` given, when it is not the benches' own)."""
    from geoseg.config import TileOptions
    from geoseg.jobs.predict import Outputs, run_predict

    tag = "" if chosen is None else "-" + hashlib.sha1(str(chosen.resolve()).encode()).hexdigest()[:8]
    prob, roofs = scene.with_name(f"{scene.stem}-prob-{tile}-{overlap}{tag}.tif"), scene.with_name(
        f"{scene.stem}-roofs-{tile}-{overlap}{tag}.geojson")
    seconds = None
    if not roofs.exists():
        t0 = time.perf_counter()
        run_predict(scene, model, Outputs(roofs, prob=prob, preview=False, overwrite=True),
                    TileOptions(tile_size=tile, overlap=overlap))
        seconds = time.perf_counter() - t0
    with open(roofs) as f:
        count = len(json.load(f)["features"])
    return prob, {"count": count, "area": geojson_area(roofs), "seconds": seconds}


def report(name: str, mp: float, runs: list[dict]) -> dict:
    best = min(runs, key=lambda r: r["seconds"])
    each = " ".join(f"{r['seconds']:.2f}" for r in runs)
    busy = sum(best["stages"].values())  # every thread's stages, and the main thread's waits
    shares = "  ".join(f"{k} {100 * v / busy:.0f} %" for k, v in
                       sorted(best["stages"].items(), key=lambda kv: -kv[1]))
    plan = best["plan"]
    how = (f"{plan['torch_threads']} torch thread(s), read-ahead {'on' if plan['prefetch'] else 'off'},"
           f" {plan['trace_threads']} tracing thread(s), {plan['trace_workers']} trace worker(s)")
    print(f"{name}: {best['seconds']:.2f} s = {mp / best['seconds']:.1f} MP/s beside the model"
          f" (runs {each}; {how})\n  {shares} of {busy:.2f} s in all threads", flush=True)
    return best


def main() -> None:
    ap = scene_args(__doc__, size=8192, tile=512, precision="auto")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cores", default="", help="e.g. 1,2: measure pinned to these numbers of cores")
    ap.add_argument("--real", action="store_true", help="also the real model end to end and the bare forward")
    ap.add_argument("--gpu-host", action="store_true",
                    help="also the host's part of a GPU run, the device's stages stood in for (an emulation)")
    args = ap.parse_args()
    model, scene = prepare(args)
    mp = args.size**2 / 1e6
    prob, real = stored_probability(scene, model, args.tile, args.overlap, args.model)
    print(f"scene {args.size}² ({mp:.1f} MP), tile {args.tile}, overlap {args.overlap}, {os.cpu_count()} cores;"
          f" real run: {real['count']} polygons", flush=True)
    best = report("stand-in, all cores", mp, [measure(scene, model, prob, args.tile, args.overlap)
                                               for _ in range(args.repeat)])
    same = abs(best["count"] / real["count"] - 1) <= 1e-3 and abs(best["area"] / real["area"] - 1) <= 1e-3
    print(f"  polygons as the real run's (count and area within 0.1 %): {'yes' if same else 'NO'}"
          f" ({best['count']} vs {real['count']}, area ratio {best['area'] / real['area']:.5f})")
    pins = {}
    for n in (int(c) for c in args.cores.split(",") if c):
        pins[n] = report(f"stand-in, {n} core(s)", mp,
                         [pinned(n, scene, model, prob, args.tile, args.overlap) for _ in range(args.repeat)])
    if len(pins) >= 2:
        lo, hi = min(pins), max(pins)
        print(f"scaling {lo} → {hi} cores: {pins[lo]['seconds'] / pins[hi]['seconds']:.2f}×")
    if args.gpu_host:
        runs = [measure(scene, model, prob, args.tile, args.overlap, device_free=True) for _ in range(args.repeat)]
        host = report("the host's part of a GPU run (emulated), all cores", mp, runs)
        same = abs(host["count"] / real["count"] - 1) <= 1e-3 and abs(host["area"] / real["area"] - 1) <= 1e-3
        print(f"  polygons as the real run's: {'yes' if same else 'NO'} ({host['count']} vs {real['count']})")
        for n in (int(c) for c in args.cores.split(",") if c):
            report(f"the host's part of a GPU run (emulated), {n} core(s)", mp,
                   [pinned(n, scene, model, prob, args.tile, args.overlap, True) for _ in range(args.repeat)])
    if args.real:
        sys.path.insert(0, str(Path(__file__).parent))
        import speed  # the bare forward of bench/speed.py, on the same tiles

        from geoseg.models import checkpoint
        from geoseg.runtime import resolve_device

        state = checkpoint.load(model)
        batches = speed.scene_tiles(scene, state, args.tile, args.overlap, 1, resolve_device("auto"))
        bare = speed.bare_forward(batches, state, args.precision)
        del batches
        with tempfile.TemporaryDirectory(dir=scene.parent) as tmp:
            from geoseg.config import TileOptions
            from geoseg.jobs.predict import Outputs, run_predict

            t0 = time.perf_counter()
            run_predict(scene, model, Outputs(Path(tmp) / "roofs.geojson", preview=False),
                        TileOptions(tile_size=args.tile, overlap=args.overlap))
            ours = time.perf_counter() - t0
        print(f"real: geoseg {ours:.1f} s, bare forward {bare:.1f} s ({100 * bare / ours:.1f} % of bare);"
              f" MP / (geoseg − bare) = {mp / max(ours - bare, 1e-9):.1f} MP/s"
              f" (stand-in: {mp / best['seconds']:.1f})")


if __name__ == "__main__":
    main()
