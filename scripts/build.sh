#!/usr/bin/env bash
# Configures and builds the project in build/ (Release, -O2, warnings on).
# Usage: scripts/build.sh [extra cmake -D options]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmake -S "$repo_root" -B "$repo_root/build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$repo_root/build" -j"$(nproc)"
