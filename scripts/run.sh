#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, fetches MNIST
# and runs the main job.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
scripts/install_deps.sh
scripts/fetch_data.sh
scripts/build.sh
mkdir -p results
build/train_serial --epochs 10 --save-results results/serial_results.json "$@"
