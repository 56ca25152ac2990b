"""The work beside the model, this checkout against an older one, interleaved in one run.

    git worktree add ../before COMMIT
    python -m bench.before_after --before ../before [--cores 1,2] [--rounds 2] [--model M]

The stand-in of ``bench/beside.py`` (the stored probability of a real run, handed back
tile by tile) drives ``run_predict`` of each checkout in turn, pinned to each number of
cores, round after round (the machine's load drifts: interleaving puts both sides under
the same drift); prints the best of the rounds, the ratio after/before on each number of
cores, and each side's scaling. The work is spread as each side would spread it on a GPU
machine of that many cores: each by its own ``runtime`` choices (``beside.gpu_plan``); a
checkout older than those choices without a read-ahead thread, with one trace worker
process from 2 cores (what its own bench used), torch on every core. Polygon counts are
printed for both: they must agree within 0.1 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def child(code: str, cores: int, prob: str, model: str, scene: str, tile: int, overlap: int) -> None:
    """One stand-in run of the geoseg in ``code``, pinned to ``cores`` cores; prints JSON."""
    os.sched_setaffinity(0, set(range(cores)))
    sys.path.insert(0, code)
    import torch

    try:
        import geoseg.predict.engine as gp
    except ImportError:  # a checkout of the flat layout (before 0.2)
        import geoseg.predict as gp
    from geoseg.config import TileOptions, VectorizeOptions
    from geoseg.jobs.predict import Outputs, run_predict

    assert Path(gp.__file__).resolve().is_relative_to(Path(code).resolve()), f"geoseg from {gp.__file__}, not {code}"
    sys.path.insert(1, str(BENCH))
    from bench.beside import gpu_plan, use_stand_in  # numpy and torch only: work with either checkout

    try:  # the checkout's own plan (``gpu_plan`` reads it from the geoseg imported)
        plan = gpu_plan()
    except (ImportError, AttributeError):  # a checkout older than its runtime's choices
        plan = {"prefetch": False, "trace_workers": 1 if cores > 1 else 0, "torch_threads": cores}
    torch.set_num_threads(plan.pop("torch_threads"))
    use_stand_in(gp, Path(prob))
    if plan.get("trace_workers"):
        from geoseg.vector.stream import trace_pool

        trace_pool(plan["trace_workers"])  # started before the clock, as a run's start while the model loads
    fields = VectorizeOptions.__dataclass_fields__
    vector = VectorizeOptions(**{k: v for k, v in plan.items() if k in fields})
    decoding = {"decode_threads": plan["decode_threads"]} if plan.get("decode_threads") else {}
    tiles = TileOptions(tile_size=tile, overlap=overlap, prefetch=plan["prefetch"], device="cpu", **decoding)
    with tempfile.TemporaryDirectory(dir=Path(scene).parent) as tmp:
        t0 = time.perf_counter()
        r = run_predict(scene, model, Outputs(Path(tmp) / "roofs.geojson", preview=False), tiles, vector)
        print(json.dumps({"seconds": time.perf_counter() - t0, "count": r.count}))


def main() -> None:
    sys.path.insert(0, str(BENCH))
    from bench._common import prepare, scene_args
    from bench.beside import stored_probability

    ap = scene_args(__doc__, size=8192, tile=512, precision="auto")
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the older geoseg")
    ap.add_argument("--cores", default="1,2")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    model, scene = prepare(args)
    prob, real = stored_probability(scene, model, args.tile, args.overlap, args.model)
    mp = args.size**2 / 1e6
    cores = [int(c) for c in args.cores.split(",")]
    sides = {"before": str(args.before.resolve()), "after": str(ROOT)}
    best: dict = {}
    for k in range(args.rounds):
        for n in cores:
            for side, code in sides.items():
                out = subprocess.run([sys.executable, __file__, "--child", code, str(n), str(prob), str(model),
                                      str(scene), str(args.tile), str(args.overlap)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"round {k + 1}, {n} core(s), {side}: {r['seconds']:.2f} s, {r['count']} polygons", flush=True)
                if (side, n) not in best or r["seconds"] < best[side, n]["seconds"]:
                    best[side, n] = r
    print(f"scene {args.size}² ({mp:.1f} MP), real run {real['count']} polygons; best of {args.rounds}:")
    for n in cores:
        b, a = best["before", n], best["after", n]
        print(f"  {n} core(s): before {b['seconds']:.2f} s = {mp / b['seconds']:.1f} MP/s, after {a['seconds']:.2f} s"
              f" = {mp / a['seconds']:.1f} MP/s: {b['seconds'] / a['seconds']:.2f}× ({b['count']} vs {a['count']}"
              " polygons)")
    if len(cores) >= 2:
        lo, hi = min(cores), max(cores)
        for side in sides:
            print(f"  {side}: {lo} → {hi} cores {best[side, lo]['seconds'] / best[side, hi]['seconds']:.2f}×")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        code, cores, prob, model, scene, tile, overlap = sys.argv[2:9]
        child(code, int(cores), prob, model, scene, int(tile), int(overlap))
    else:
        main()
