"""MkDocs hook: the benchmarks page is generated from the harness's kept results
(``bench/results``, ``python -m bench report``) before every build, never written by hand."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def on_pre_build(config, **kwargs):
    """Write docs/benchmarks.md from bench/results before the pages are read."""
    sys.path.insert(0, str(ROOT))
    from bench.harness import report

    report(ROOT / "docs" / "benchmarks.md")
