#!/usr/bin/env bash
# Install Plume and what its tests and benchmarks compare against. torch 2.13.0 first: on these machines
# it is a CPU build on local disk; a looser requirement could pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
# k-diffusion's sampling module, without its heavy package dependencies (torchvision does not import here); pinned:
# tests/test_vs_kdiffusion.py loads k_diffusion/sampling.py by path, and a skip under CI=true fails (tests/conftest.py)
python -m pip install --quiet --disable-pip-version-check --no-deps "k-diffusion==0.1.1.post1" "torchsde==0.2.6" \
    "torchdiffeq==0.2.5" "trampoline==0.1.2"
