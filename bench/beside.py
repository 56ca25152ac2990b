"""The work beside the model: geoseg predict with a stand-in for the forward pass.

    python bench/beside.py [--size 8192] [--repeat 2] [--cores 1,2] [--real]

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

Prints megapixels per second beside the model (best of ``--repeat``) and the share of
each stage, timed exclusively (a stage's time excludes the stages it calls):
read (GDAL reads and decoding), normalise (to tensors, scaled), stand-in (the model's
place), blend (the stitcher), prob→uint8, trace (strip masks, components, polygons, the
joins), clean (to map coordinates, simplification, areas), write (the vector file), other.
``--cores 1,2`` repeats the measure pinned to 1 and to 2 cores (``os.sched_setaffinity``
in a child process, inherited by its trace workers) with n − 1 processes tracing polygons
beside the main one (``--trace-workers``), and prints the scaling. ``--real``: also the real model end to end
and ``MP / (geoseg − bare)`` from the bare forward time, which must agree with the
stand-in's figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _common import prepare, scene_args

ROOT = Path(__file__).resolve().parent.parent


class StageClock:
    """Exclusive time per stage of wrapped functions: a stage called inside another is
    taken out of the outer one's time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [stage, start, time spent in inner stages]

    def wrap(self, owner, name: str, stage: str) -> None:
        inner = getattr(owner, name)
        clock = self

        def timed(*a, **k):
            clock._stack.append([stage, time.perf_counter(), 0.0])
            try:
                return inner(*a, **k)
            finally:
                st, t0, nested = clock._stack.pop()
                spent = time.perf_counter() - t0
                clock.seconds[st] += spent - nested
                if clock._stack:
                    clock._stack[-1][2] += spent

        setattr(owner, name, timed)


class StandIn:
    """The stored probability of an earlier run, handed back per tile in the order geoseg
    predicts them (row by row; the grid is the one ``choose_grid`` gave)."""

    def __init__(self, prob: np.ndarray) -> None:
        self.prob, self.tiles, self.padded = prob, None, None

    def start(self, grid) -> None:
        pad = grid.size
        self.padded = np.pad(self.prob, pad, mode="reflect")
        self.tiles = iter([(t, pad) for r in range(grid.rows) for t in grid.row_tiles(r)])

    def __call__(self, model, x, tta=False):
        import torch

        out = []
        for _ in range(x.shape[0]):
            t, pad = next(self.tiles)
            r, c = t.row_off + pad, t.col_off + pad
            out.append(torch.from_numpy(self.padded[r : r + t.size, c : c + t.size]))
        return torch.stack(out).float().mul_(1 / 255)


def measure(scene: Path, model: Path, prob_file: Path, tile: int, overlap: int, workers: int | None = None) -> dict:
    """One stand-in run in this process: seconds per stage and the polygons' count and area.
    ``workers``: processes tracing polygons beside it (None: geoseg's choice). Stages run
    in those processes are not seen by the clock: their share is in the main process's
    waits (``other``)."""
    import rasterio

    import geoseg.predict as gp
    import geoseg.vectorize as gv
    from geoseg import export, stitch
    from geoseg.config import VectorizeOptions
    from geoseg.pipeline import Outputs, run_predict
    from geoseg.predict import TileOptions

    with rasterio.open(prob_file) as src:
        stand_in = StandIn(src.read(1))
    choose = gp.choose_grid

    def grid_and_start(*a, **k):
        grid = choose(*a, **k)
        stand_in.start(grid)
        return grid

    gp.choose_grid = grid_and_start
    gp.roof_probability = stand_in
    clock = StageClock()
    clock.wrap(gp, "read_window", "read")
    clock.wrap(gp, "_as_tensor_type", "normalise")
    clock.wrap(gp.torch, "addcmul", "normalise")
    clock.wrap(gp, "roof_probability", "stand-in")
    clock.wrap(stitch.Stitcher, "add", "blend")
    clock.wrap(stitch.Stitcher, "end_row", "blend")
    clock.wrap(gv, "_strip_mask", "trace")
    clock.wrap(gv, "_strip_parts", "trace")
    clock.wrap(gv, "_join", "trace")
    clock.wrap(gv.StripTracer, "_carried", "trace")
    clock.wrap(gv, "_to_frame", "clean")
    clock.wrap(export.VectorWriter, "write", "write")
    clock.wrap(export.VectorWriter, "__exit__", "write")
    with tempfile.TemporaryDirectory(dir=scene.parent) as tmp:
        out = Path(tmp) / "roofs.geojson"
        t0 = time.perf_counter()
        vector = VectorizeOptions() if workers is None else VectorizeOptions(trace_workers=workers)
        r = run_predict(scene, model, Outputs(out, preview=False), TileOptions(tile_size=tile, overlap=overlap),
                        vector)
        total = time.perf_counter() - t0
        area = geojson_area(out)
    stages = dict(clock.seconds)
    stages["other"] = total - sum(stages.values())
    return {"seconds": total, "stages": stages, "count": r.count, "area": area}


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
import torch
torch.set_num_threads({cores})
from beside import measure
from pathlib import Path
if {workers}:
    from geoseg.vectorize import trace_pool
    trace_pool({workers})  # started before the clock, as a run's workers start while the model loads
print(json.dumps(measure(Path({scene!r}), Path({model!r}), Path({prob!r}), {tile}, {overlap}, {workers})))
"""


def pinned(cores: int, scene: Path, model: Path, prob: Path, tile: int, overlap: int, workers: int) -> dict:
    """``measure`` in a child process pinned to ``cores`` cores (its trace workers too)."""
    code = CHILD.format(bench=str(Path(__file__).parent), cores=cores, scene=str(scene), model=str(model),
                        prob=str(prob), tile=tile, overlap=overlap, workers=workers)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def stored_probability(scene: Path, model: Path, tile: int, overlap: int) -> tuple[Path, dict]:
    """The real model's probability of the scene and its polygons (cached)."""
    from geoseg.pipeline import Outputs, run_predict
    from geoseg.predict import TileOptions

    prob, roofs = scene.with_name(f"{scene.stem}-prob-{tile}-{overlap}.tif"), scene.with_name(
        f"{scene.stem}-roofs-{tile}-{overlap}.geojson")
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
    shares = "  ".join(f"{k} {100 * v / best['seconds']:.0f} %" for k, v in
                       sorted(best["stages"].items(), key=lambda kv: -kv[1]))
    print(f"{name}: {best['seconds']:.2f} s = {mp / best['seconds']:.1f} MP/s beside the model"
          f" (runs {each})\n  {shares}", flush=True)
    return best


def main() -> None:
    ap = scene_args(__doc__, size=8192, tile=512, precision="auto")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cores", default="", help="e.g. 1,2: measure pinned to these numbers of cores")
    ap.add_argument("--real", action="store_true", help="also the real model end to end and the bare forward")
    args = ap.parse_args()
    model, scene = prepare(args)
    mp = args.size**2 / 1e6
    prob, real = stored_probability(scene, model, args.tile, args.overlap)
    print(f"scene {args.size}² ({mp:.1f} MP), tile {args.tile}, overlap {args.overlap}, {os.cpu_count()} cores;"
          f" real run: {real['count']} polygons", flush=True)
    best = report("stand-in, all cores", mp, [measure(scene, model, prob, args.tile, args.overlap)
                                               for _ in range(args.repeat)])
    same = abs(best["count"] / real["count"] - 1) <= 1e-3 and abs(best["area"] / real["area"] - 1) <= 1e-3
    print(f"  polygons as the real run's (count and area within 0.1 %): {'yes' if same else 'NO'}"
          f" ({best['count']} vs {real['count']}, area ratio {best['area'] / real['area']:.5f})")
    pins = {}
    for n in (int(c) for c in args.cores.split(",") if c):  # n cores: the main process and n - 1 tracers
        pins[n] = report(f"stand-in, {n} core(s), {n - 1} trace worker(s)", mp,
                         [pinned(n, scene, model, prob, args.tile, args.overlap, n - 1) for _ in range(args.repeat)])
    if len(pins) >= 2:
        lo, hi = min(pins), max(pins)
        print(f"scaling {lo} → {hi} cores: {pins[lo]['seconds'] / pins[hi]['seconds']:.2f}×")
    if args.real:
        sys.path.insert(0, str(Path(__file__).parent))
        import speed  # the bare forward of bench/speed.py, on the same tiles

        from geoseg import checkpoint
        from geoseg.runtime import resolve_device

        state = checkpoint.load(model)
        batches = speed.scene_tiles(scene, state, args.tile, args.overlap, 1, resolve_device("auto"))
        bare = speed.bare_forward(batches, state, args.precision)
        del batches
        with tempfile.TemporaryDirectory(dir=scene.parent) as tmp:
            from geoseg.pipeline import Outputs, run_predict
            from geoseg.predict import TileOptions

            t0 = time.perf_counter()
            run_predict(scene, model, Outputs(Path(tmp) / "roofs.geojson", preview=False),
                        TileOptions(tile_size=args.tile, overlap=args.overlap))
            ours = time.perf_counter() - t0
        print(f"real: geoseg {ours:.1f} s, bare forward {bare:.1f} s ({100 * bare / ours:.1f} % of bare);"
              f" MP / (geoseg − bare) = {mp / max(ours - bare, 1e-9):.1f} MP/s"
              f" (stand-in: {mp / best['seconds']:.1f})")


if __name__ == "__main__":
    main()
