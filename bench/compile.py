"""torch.compile: what compiling costs, what it saves, and from what scene size it pays.

    python -m bench.compile [--tile 512] [--tiles 100] [--size 8192] [--model M]

In fresh processes (so each compiles from scratch, as ``geoseg predict --compile`` does):
  compile  seconds to the first compiled output, with an empty inductor cache (cold)
           and again with the cache the cold run left (warm: a second run on this machine);
  forward  milliseconds per tile, fuse_for_inference's eager model against the compiled
           one, ``--tiles`` fresh tiles each, interleaved, best of ``--repeat``;
  outputs  share of pixels whose roof mask (p ≥ 0.5) agrees between the two;
  break-even  scene size above which the saved time pays the warm (cold) compile, for
           tiles of ``--tile`` px with a 32 px margin;
  predict  ``geoseg predict`` end to end on a ``--size``² scene, with and without
           ``--compile`` (warm cache), a process a run, best of ``--repeat``.
"""

from __future__ import annotations

import os
import tempfile

from bench._common import prepare, run_child, scene_args

CHILD = r"""
import json, sys, time, torch
from geoseg.models import checkpoint
from geoseg.inference import compile_for_inference, fuse_for_inference
from geoseg.runtime import autocast, resolve_device, resolve_precision, tune_allocator
model, tile, tiles, repeat, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tune_allocator()
device = resolve_device("auto")
precision = resolve_precision(precision, device)
state = checkpoint.load(model)
eager = fuse_for_inference(checkpoint.build_model(state, device)[0]).to(memory_format=torch.channels_last)
g = torch.Generator().manual_seed(0)
xs = [torch.rand(1, 3, tile, tile, generator=g).mul(4).sub(2).to(device).contiguous(memory_format=torch.channels_last)
      for _ in range(tiles)]
def run(m):
    t = time.perf_counter()
    for x in xs:
        m(x).float().softmax(1)[:, 1].cpu()
    return (time.perf_counter() - t) / len(xs)
with torch.no_grad(), autocast(device, precision):
    t = time.perf_counter()
    compiled = compile_for_inference(checkpoint.build_model(state, device)[0])
    compiled(xs[0])
    first = time.perf_counter() - t
    eager(xs[0])
    e, c = [], []
    for _ in range(repeat):
        e.append(run(eager))
        c.append(run(compiled))
    agree = sum(((eager(x).float().softmax(1)[:, 1] >= 0.5) == (compiled(x).float().softmax(1)[:, 1] >= 0.5))
                .float().mean().item() for x in xs[:10]) / 10
print(json.dumps(dict(first=first, eager=min(e), compiled=min(c), agree=agree, failed=compiled.failed,
                      precision=precision, threads=torch.get_num_threads())))
"""

PREDICT = r"""
import json, sys, tempfile, time
from pathlib import Path
from geoseg.config import TileOptions
from geoseg.jobs.predict import run_predict
scene, model, comp = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with tempfile.TemporaryDirectory() as tmp:
    t = time.perf_counter()
    run_predict(scene, model, Path(tmp) / "r.gpkg", TileOptions(compile=comp), preview=False)
    print(json.dumps(dict(seconds=time.perf_counter() - t)))
"""


def main() -> None:
    ap = scene_args(__doc__, size=8192, tile=512, precision="auto")
    ap.add_argument("--tiles", type=int, default=100, help="tiles per forward-pass timing")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-predict", action="store_true", help="no end-to-end runs")
    args = ap.parse_args()
    model, scene = prepare(args)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # children inherit it: the first compiles from nothing
        child = (CHILD, str(model), str(args.tile), str(args.tiles), str(args.repeat), args.precision)
        cold = run_child(*child)
        warm = run_child(*child)
        if warm["failed"]:
            print("torch.compile failed here; geoseg falls back to the uncompiled model (see its warning)")
            return
        e2e = {False: [], True: []}
        for _ in range(0 if args.skip_predict else args.repeat):  # a process a run: each compiles anew
            for comp in (False, True):
                e2e[comp].append(run_child(PREDICT, str(scene), str(model), str(int(comp)))["seconds"])
    eager, compiled = warm["eager"], warm["compiled"]
    print(f"tile {args.tile}, precision {warm['precision']}, {warm['threads']} threads, model {model}")
    print(f"compile      cold {cold['first']:5.1f} s   warm {warm['first']:5.1f} s  (to the first output)")
    print(f"forward      eager {1e3 * eager:6.1f} ms/tile   compiled {1e3 * compiled:6.1f} ms/tile"
          f"   → {eager / compiled:.2f}× faster")
    print(f"outputs      roof masks agree on {100 * warm['agree']:.3f} % of pixels")
    saved = eager - compiled
    new_mp = (args.tile - 2 * args.overlap) ** 2 / 1e6  # scene pixels each tile adds
    if saved > 0:
        for name, t in (("warm", warm["first"]), ("cold", cold["first"])):
            print(f"break-even   {name}: from {t / saved:6.0f} tiles ≈ {t / saved * new_mp:6.0f} MP of scene")
    if e2e[False]:
        plain, comp = min(e2e[False]), min(e2e[True])
        print(f"predict      {args.size}² ({args.size**2 / 1e6:.0f} MP): {plain:.1f} s, with --compile {comp:.1f} s"
              f" (warm; {plain / comp:.2f}×)")


if __name__ == "__main__":
    main()
