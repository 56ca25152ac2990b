"""One polygon over the whole scene: joining it across strips must cost what each strip adds.

    python bench/large_polygons.py [--width 16384] [--heights 2048,8192]

When a model calls most of a scene roof (a badly trained model, an undeclared nodata fill),
one polygon crosses every strip, with holes wherever the model saw ground. This feeds the
strip tracer (``vectorize.StripTracer``, what ``geoseg predict`` traces its rows with) a
probability that is roof everywhere but for 3 × 3 px holes (1,600 every 256 rows), for
each height in turn in a fresh process, and prints seconds per megapixel and peak RSS:
both should stay flat as the height grows. (``bench/predict_scale.py --all-roof`` measures
the whole of ``geoseg predict`` with a model made to call every pixel roof.)
"""

from __future__ import annotations

import argparse

from _common import PEAK_RSS, run_child

CHILD = f"""
import json, sys, time
import numpy as np
from geoseg.vectorize import StripTracer
w, h = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
tracer = StripTracer(h, w, 0.5)
seconds, parts, holes = 0.0, [], 0
for r0 in range(0, h, 256):
    rows = np.full((min(256, h - r0), w), 255, np.uint8)
    ys, xs = rng.integers(0, rows.shape[0] - 2, 1600), rng.integers(0, w - 3, 1600)
    for y, x in zip(ys, xs):
        rows[y:y + 3, x:x + 3] = 0
    t = time.perf_counter()
    parts += tracer.feed(r0, rows)
    seconds += time.perf_counter() - t
t = time.perf_counter()
parts += tracer.close()
seconds += time.perf_counter() - t
holes = sum(len(p.geom.interiors) for p in parts)
{PEAK_RSS}
print(json.dumps(dict(seconds=seconds, polygons=len(parts), holes=holes, peak_rss_mib=peak_rss_mib)))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=16384)
    ap.add_argument("--heights", default="2048,8192")
    args = ap.parse_args()
    rows = []
    for h in [int(v) for v in args.heights.split(",")]:
        r = run_child(CHILD, str(args.width), str(h))
        r.update(height=h, s_per_mp=r["seconds"] / (h * args.width / 1e6))
        rows.append(r)
        print(f"{args.width} x {h:>6}  {r['seconds']:6.2f} s  {r['s_per_mp']:.3f} s/MP  {r['polygons']} polygon(s)"
              f" with {r['holes']} holes  peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    a, b = rows[0], rows[-1]
    print(f"s/MP ratio {b['height']} / {a['height']}: {b['s_per_mp'] / a['s_per_mp']:.2f};"
          f" peak RSS ratio: {b['peak_rss_mib'] / a['peak_rss_mib']:.3f}")


if __name__ == "__main__":
    main()
