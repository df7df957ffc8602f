#!/usr/bin/env bash
# The main job on the embedded default data: install, train on the 8-Gaussians toy set, sample, evaluate,
# and write pictures into runs/8gaussians/ (about a minute on a 2-core CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e .
rm -rf runs/8gaussians
plume train --data 8gaussians --out runs/8gaussians --quiet
plume sample runs/8gaussians --n 2000 --sampler dpm++2m --steps 20 --out runs/8gaussians/samples.npz
echo "done: runs/8gaussians/ holds the checkpoint, loss.csv, samples.npz, samples.png and samples.json"
