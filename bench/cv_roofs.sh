#!/usr/bin/env bash
# 5-fold cross-validated held-out pixel IoU of the three losses on the reference roof tiles.
#   bash bench/cv_roofs.sh [MINUTES_PER_FOLD]   (the budget: 15; figures in the README: 1.8)
set -euo pipefail
minutes=${1:-15}
data=${ROOFS:-../shared/data/roofs}
geoseg cv "$data" --out bench-out/cv-roofs --folds 5 --loss dice,pixel-softmax,softmax \
  --epochs 1000 --time-limit "$minutes" --lr-max 1e-3 --lr-min 1e-4 --seed 0
