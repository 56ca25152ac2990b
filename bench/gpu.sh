#!/usr/bin/env bash
# The GPU figures, in one short run on a lent GPU machine (README, Figures):
#
#   bash bench/gpu.sh OUT_DIR [ROOFS] [STARTER] [MODEL] [STEPS]
#
# 1. bench/peers.py: 5 folds of the reference tiles, geoseg's defaults, fine-tuned from a
#    synthetic-only start, and smp's U-Net (ResNet-34), STEPS steps each (default 165: 7 minutes
#    of the 2-core development CPU), all 15 runs at once (one process and one CPU thread
#    each, the GPU shared); meanwhile the 8192² scene is drawn;
# 2. bench/speed.py: geoseg predict against the bare forward pass on the GPU, batch 8;
# 3. bench/beside.py: the work beside the model with 1 and 2 cores.
# Each step has its own time limit, so one that hangs cannot eat the rest; logs go to OUT_DIR.
set -u
out=${1:?OUT_DIR}
roofs=${2:-../shared/data/roofs}
starter=${3:-bench-out/finetune/synthetic/starter/model.pt}
model=${4:-bench-out/model-batch/model.pt}
steps=${5:-165}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore GDAL_NUM_THREADS=ALL_CPUS
mkdir -p "$out" bench-out
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/gpu.txt"

t0=$(date +%s)
timeout 130 python3 bench/peers.py --roofs "$roofs" --steps "$steps" --jobs 15 --starter "$starter" \
  --arms geoseg,fine-tuned,smp-resnet34 --work bench-out/peers-gpu >"$out/peers.log" 2>&1 &
timeout 130 python3 -c "from geoseg.datasets.synth import write_mosaic; write_mosaic('bench-out/mosaic-8192.tif', 8192)" \
  >"$out/mosaic.log" 2>&1
echo "mosaic drawn after $(( $(date +%s) - t0 )) s"
wait
pkill -9 -f "bench/peers.py" 2>/dev/null
echo "peers done after $(( $(date +%s) - t0 )) s"
cat bench-out/peers-gpu/rows/*.json >"$out/peers-rows.jsonl" 2>/dev/null
tail -6 "$out/peers.log"

timeout 90 python3 bench/speed.py --size 8192 --batch 8 --repeat 2 --skip-peers --model "$model" \
  >"$out/speed.log" 2>&1
cat "$out/speed.log"
timeout 110 python3 bench/beside.py --size 8192 --repeat 1 --cores 1,2 --model "$model" >"$out/beside.log" 2>&1
cat "$out/beside.log"
