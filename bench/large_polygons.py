"""One polygon over the whole scene: joining it across strips must cost what each strip adds.

    python -m bench large-polygons [--width 16384] [--heights 2048,8192]

When a model calls most of a scene roof (a badly trained model, an undeclared nodata fill),
one polygon crosses every strip, with holes wherever the model saw ground. This feeds the
strip tracer (``vectorize.StripTracer``, what ``geoseg predict`` traces its rows with) a
probability that is roof everywhere but for 3 × 3 px holes (1,600 every 256 rows), for
each height in turn in a fresh process, and prints seconds per megapixel and peak RSS:
both should stay flat as the height grows. (``bench/predict_scale.py --all-roof`` measures
the whole of ``geoseg predict`` with a model made to call every pixel roof.)
"""

from __future__ import annotations

from bench._common import PEAK_RSS, run_child
from bench.harness import benchmark

CHILD = f"""
import json, sys, time
import numpy as np
from geoseg.vector.strips import StripTracer
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


@benchmark("speed")
def large_polygons(width: int = 16384, heights: tuple[int, ...] = (2048, 8192)) -> dict:
    """Tracing one polygon over the whole scene: seconds per MP and peak RSS as it grows taller."""
    figures: dict = {}
    for h in heights:
        r = run_child(CHILD, str(width), str(h))
        figures[f"s_per_mp_{h}"] = r["seconds"] / (h * width / 1e6)
        figures[f"peak_rss_mib_{h}"] = r["peak_rss_mib"]
        figures[f"holes_{h}"] = r["holes"]
    figures["s_per_mp_ratio"] = figures[f"s_per_mp_{heights[-1]}"] / figures[f"s_per_mp_{heights[0]}"]
    figures["peak_rss_ratio"] = figures[f"peak_rss_mib_{heights[-1]}"] / figures[f"peak_rss_mib_{heights[0]}"]
    return figures
