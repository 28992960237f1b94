#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan + UBSan) in build-fuzz/ and
# runs each for SECONDS (default 60) from the seeds in fuzz/corpus/<target>.
# First it replays fuzz/regressions/<target>/* (inputs that once found a
# bug). Exits non-zero if anything fails: a crash, a sanitizer report, an
# exception other than ddp::UserError, a timeout, or a single allocation of
# more than MALLOC_LIMIT_MB (32: inputs are at most 8 KiB, so even a gzip'd
# one cannot legitimately need more; a reader that allocates from a size the
# file merely claims does). A new reproducer is left in
# build-fuzz/artifacts/<target>/ (replay it with build-fuzz/<target>_fuzz FILE).
#
#   scripts/fuzz.sh [SECONDS]   env: BUILD_DIR (build-fuzz), JOBS (2), MALLOC_LIMIT_MB (32)
#
# Needs clang and its runtime: apt-get install -y clang libclang-rt-14-dev
set -euo pipefail

DURATION=${1:-60}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-fuzz}
CLANGXX=${CLANGXX:-$(command -v clang++ || command -v clang++-14 || true)}

if [[ ! "$DURATION" =~ ^[0-9]+$ ]] || (( DURATION < 1 )); then
  echo "usage: $0 [SECONDS]   (got '$DURATION': give a whole number of seconds)" >&2
  exit 2
fi
if [[ -z "$CLANGXX" ]]; then
  echo "fuzz.sh: clang++ not found; install it: apt-get install -y clang libclang-rt-14-dev" >&2
  exit 2
fi

cmake -S "$ROOT/fuzz" -B "$BUILD" -DCMAKE_CXX_COMPILER="$CLANGXX" >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}"

shopt -s nullglob
# Runs a fuzzer; afterwards removes the temp file idx_fuzz may leave behind
# when an input kills it (/dev/shm/ddp_idx_fuzz_<pid>.*).
run() {
  local log=$1 rc=0 pid
  shift
  "$@" >"$log" 2>&1 &
  pid=$!
  wait "$pid" || rc=$?
  rm -f /dev/shm/ddp_idx_fuzz_"$pid".* /tmp/ddp_idx_fuzz_"$pid".*
  return "$rc"
}
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb="${MALLOC_LIMIT_MB:-32}")
status=0
for target in idx checkpoint; do
  regressions=("$ROOT/fuzz/regressions/$target"/*)
  if (( ${#regressions[@]} )); then
    echo "== ${target}_fuzz: replaying ${#regressions[@]} regression input(s)"
    for f in "${regressions[@]}"; do
      if ! run "$BUILD/$target.replay.log" "$BUILD/${target}_fuzz" "${limits[@]}" "$f"; then
        echo "!! ${target}_fuzz fails on $f:" >&2
        grep -E '^==[0-9]+==|SUMMARY|broken promise|uncaught|terminate' "$BUILD/$target.replay.log" | head -5 >&2
        status=1
      fi
    done
  fi
  work="$BUILD/corpus/$target"      # what this run finds goes here, not into the checked-in seeds
  artifacts="$BUILD/artifacts/$target"
  mkdir -p "$work" "$artifacts"
  args=(-max_total_time="$DURATION" "${limits[@]}" -max_len=8192
        -artifact_prefix="$artifacts/" -print_final_stats=1)
  [[ -f "$ROOT/fuzz/$target.dict" ]] && args+=(-dict="$ROOT/fuzz/$target.dict")
  echo "== ${target}_fuzz for ${DURATION}s"
  if run "$BUILD/$target.log" "$BUILD/${target}_fuzz" "${args[@]}" "$work" "$ROOT/fuzz/corpus/$target"; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$BUILD/$target.log" || true
  else
    echo "!! ${target}_fuzz found a problem (log: $BUILD/$target.log, reproducer in $artifacts/):" >&2
    grep -E 'ERROR|SUMMARY|Test unit written|broken promise|uncaught|terminate' "$BUILD/$target.log" >&2 || tail -30 "$BUILD/$target.log" >&2
    status=1
  fi
done
exit $status
