#!/usr/bin/env bash
# The README's test command: installs what is missing (Debian packages, the
# MNIST files), builds, and runs every test:
#   1. the whole suite (CTest) on the release build;
#   2. the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the two fuzzers (IDX reader, checkpoint reader) for FUZZ_SECONDS (20) each.
# Set SANITIZE=0 or FUZZ_SECONDS=0 to skip a stage.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# Each stage says how long it took (CI's budget is 20 minutes on 2 cores).
stage_start=$SECONDS
stage_done() { echo "== $1: $((SECONDS - stage_start)) s"; stage_start=$SECONDS; }
scripts/install_deps.sh
scripts/fetch_data.sh
stage_done "dependencies and data"
scripts/build.sh
stage_done "release build"

echo "== tests (release build)"
(cd build && ctest --output-on-failure --timeout 900 -j"$(nproc)")
stage_done "tests"

if [[ "${SANITIZE:-1}" != 0 ]]; then
  echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
  # -g1: line tables are all a sanitizer report needs, and build faster than -g.
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDDP_SANITIZE=ON -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" >/dev/null
  cmake --build build-asan -j"$(nproc)" --target test_common test_sys test_data test_nn test_dist test_train test_results test_launch
  # LeakSanitizer needs ptrace, which some sandboxes forbid; leaks are not the point here.
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure --timeout 900 -j"$(nproc)" -R '^(Idx|Dataset|Sampler|Cnn|Gloo|Launcher|GradSync|BindToCores|CommCallPriority|RunnableWait|RanksOnThisMachine|Safetensors|Checkpoint|LearningRate|TrainLoop|Accumulate|LocalSgd|StaleGradients|PowerSgd|LowRank|CnnBf16|NodeRounds|Layouts/MaxPool2d)')
  # The rooms whose tests are all unit tests: every one of them.
  (cd build-asan && ctest --output-on-failure --timeout 900 -j"$(nproc)" -L '^(common|sys|results)$')
  stage_done "sanitizer build and tests"
fi

if [[ "${FUZZ_SECONDS:-20}" != 0 ]]; then
  echo "== fuzzing, ${FUZZ_SECONDS:-20} s per target"
  scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
  stage_done "fuzzing"
fi
echo "== all tests passed"
