#!/usr/bin/env bash
# The README's test command: install what the tests need (quick when already there), then run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python -m pytest tests -q -p no:cacheprovider "$@"
