#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a lent GPU machine (no network there): the CUDA tests,
# the main job's CLI on the GPU (bf16 autocast, then torch.compile), and bench/throughput.py on CUDA beside
# diffusers. Wheels that the machine lacks (diffusers, importlib_metadata) travel in .whl/.
# Logs and docs/throughput-cuda.* go to $OUT (default: runs/gpu-check).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi -L
python3 -c "import torch, plume; print('torch', torch.__version__, torch.cuda.get_device_name())"
step() { echo "== $1 ($(date +%T))"; }
step "CUDA tests"
timeout 240 python3 -m pytest -q -rs tests/test_gpu.py tests/test_backbones.py -k "cuda or fused" 2>&1 | tee "$OUT/tests.log"
step "plume train on digits, bf16 autocast"
timeout 100 python3 -m plume train --data digits --out /tmp/gpu-digits --steps 3000 --device cuda --precision bf16 \
  2>&1 | tail -5 | tee "$OUT/train.log"
timeout 60 python3 -m plume sample /tmp/gpu-digits --seeds 0-999 --sampler dpm++3m --steps 20 --device cuda \
  --out /tmp/gpu-digits/samples.npz 2>&1 | tail -5 | tee -a "$OUT/train.log"
cp /tmp/gpu-digits/samples.png "$OUT/digits-samples-cuda.png" 2>/dev/null
step "bench/throughput.py on CUDA"
timeout 300 python3 bench/throughput.py --device cuda 2>&1 | tee "$OUT/throughput.log" | grep -v "^$"
cp docs/throughput-cuda.md docs/throughput-cuda.json "$OUT/" 2>/dev/null
step "plume train --compile"
timeout 150 python3 -m plume train --data digits --out /tmp/gpu-compiled --steps 500 --device cuda --compile \
  2>&1 | tail -3 | tee "$OUT/compile.log"
step done
