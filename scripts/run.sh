#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, fetches MNIST
# and runs the main job: the experiment suite (serial, then 2 and 4
# processes, 10 epochs each; about 10 minutes on 2 cores). Extra arguments go
# to run_experiments (e.g. scripts/run.sh -e 2 -p 2 4 8).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
scripts/install_deps.sh
scripts/fetch_data.sh
scripts/build.sh
build/run_experiments --output-dir results "$@"
