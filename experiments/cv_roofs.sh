#!/usr/bin/env bash
# 5-fold cross-validated held-out pixel IoU of losses on the reference roof tiles.
#   bash bench/cv_roofs.sh [MINUTES_PER_FOLD] [LOSSES] [EXTRA OPTIONS...]
#   (the budget: 15 min per fold; figures in the README: 1.8)
# EXTRA OPTIONS go to 'geoseg cv' (e.g. --nodata 0 for the tiles' blanked-out black areas).
set -euo pipefail
minutes=${1:-15}
losses=${2:-dice,pixel-softmax,softmax}
shift $(( $# > 2 ? 2 : $# ))
data=${ROOFS:-../shared/data/roofs}
out=bench-out/cv-roofs-$(echo "$losses $*" | tr -c 'a-z0-9' '-')
geoseg cv "$data" --out "$out" --folds 5 --loss "$losses" \
  --epochs 1000 --time-limit "$minutes" --lr-max 1e-3 --lr-min 1e-4 --seed 0 "$@"
