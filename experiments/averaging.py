"""Weight averaging against the weights it averages, on finished cross-validation runs.

    python -m experiments.averaging bench-out/peers/geoseg/fold-*

Each run folder (``geoseg train`` with ``--average N`` and a held-out fold, e.g. the rows
of ``bench/peers.py``) holds ``model.pt`` (the mean of the weights at the last cycle ends,
BatchNorm statistics measured again) and ``last.pt`` (the last epoch's weights and the
cycle-end snapshots). Scores three models of the same run on the fold's held-out tiles
(``bench/finetune.py``'s pixel IoU over all held-out pixels): the average, the last
epoch, the last cycle end alone. Nothing is trained: the same run, three choices of
weights, so the difference is the choice alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torch

    from experiments.finetune import score
    from geoseg.config import TrainConfig
    from geoseg.datasets.sources import split_pairs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders with model.pt, last.pt and config.json")
    args = ap.parse_args()
    kinds = ("average", "last epoch", "last cycle end")
    rows = []
    for run in args.runs:
        saved = json.loads((run / "config.json").read_text())
        config = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})
        _, held = split_pairs(config)
        last = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
        model = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
        row = {"run": str(run), "snapshots": len(last["snapshots"]),
               "average": score(run / "model.pt", held)["pixel_iou"]}
        with tempfile.TemporaryDirectory() as tmp:
            for kind, weights in (("last epoch", last["state_dict"]),
                                  ("last cycle end", last["snapshots"][-1] if last["snapshots"] else None)):
                if weights is not None:
                    torch.save({**model, "state_dict": weights}, Path(tmp) / "m.pt")
                    row[kind] = score(Path(tmp) / "m.pt", held)["pixel_iou"]
        print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        rows.append(row)
    for kind in kinds:
        values = [r[kind] for r in rows if kind in r]
        spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
        print(f"{kind}: pixel IoU {statistics.mean(values):.3f}{spread} ({' '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
