#!/usr/bin/env bash
# The README's test command: installs what is missing (Debian packages, the
# MNIST files), builds, and runs the whole test suite with CTest.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
scripts/install_deps.sh
scripts/fetch_data.sh
scripts/build.sh
cd build
ctest --output-on-failure -j1 --timeout 900
