#!/usr/bin/env bash
# The README's benchmark command: builds ddp_bench (and the two training
# programs it runs) in build/, then prints the table: this machine's FP32
# peak, serial throughput on 1 and 2 threads, the split of a step by layer,
# data-parallel throughput at 2, 4 and 8 ranks, start-up time and peak RSS.
# Takes a few minutes. Arguments go to ddp_bench (see build/bench/ddp_bench
# --help), e.g. scripts/bench.sh --repeats 5 --json results/bench.json
# BUILD_DIR=dir builds elsewhere than build/.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build="${BUILD_DIR:-build}"
[ -f data/mnist/train-images-idx3-ubyte ] || [ -f data/mnist/train-images-idx3-ubyte.gz ] || scripts/fetch_data.sh
cmake -S "$repo_root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target ddp_bench >/dev/null
echo "uptime: $(uptime)"
exec "$build/bench/ddp_bench" --data-dir data/mnist "$@"
