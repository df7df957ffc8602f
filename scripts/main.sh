#!/usr/bin/env bash
# The main job on the embedded default data: install, train a U-Net on scikit-learn's 8x8 digits for a few
# minutes, draw 1000 samples, evaluate them against the training digits (classifier-feature FID, class coverage,
# memorization check) and write the pictures into runs/digits/. About 6 minutes on a 2-core CPU.
# MINUTES=10 bash scripts/main.sh trains longer.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e .
rm -rf runs/digits
plume train --data digits --out runs/digits --minutes "${MINUTES:-4}"
plume sample runs/digits --seeds 0-999 --sampler dpm++3m --steps 20 --out runs/digits/samples.npz --trajectory
echo "done: runs/digits/ holds the checkpoint, loss.csv, samples.npz (uint8 NHWC), samples.png (grid),"
echo "      samples-trajectory.png (x_t and x0_hat along the sampler's steps) and samples.json (evaluation)"
