#!/usr/bin/env bash
# Gloo vs MPI at 2 ranks (1 thread each) against serial, in one session:
# rounds of serial / gloo / mpi runs interleaved (so that a busy machine
# slows all three alike), medians of the samples/s each reports, and the
# median time of one all-reduce of the model's 1.7 MB gradient (MPI and Gloo).
# Each round also runs two independent serial trainings at once, one per
# core: their summed samples/s is the ceiling of any 2-rank run here (two
# busy cores, no communication at all). Speedups are given twice: from the
# mean throughput, and from the median step time (epochs[].median_step_s),
# which a shared machine's bursts of stolen CPU do not move.
#
#   scripts/bench_backends.sh [BUILD_DIR] [REPEATS] [LIMIT]
#     defaults: build 5 19200 (one epoch on the first LIMIT samples)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo_root/build}"
repeats="${2:-5}"
limit="${3:-19200}"
data="$repo_root/data/mnist"
out="$(mktemp -d "${TMPDIR:-/tmp}/bench-backends-XXXXXX")"
trap 'rm -rf "$out"' EXIT
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

common=(-e 1 --limit "$limit" --threads 1 --no-progress --data-dir "$data")
field() { sed -n "s/.*\"$2\": *\([0-9.eE+-]*\).*/\1/p" "$1" | head -1; }
throughput() { field "$1" throughput_samples_per_s; }
# Milliseconds per step of an epoch field (one epoch per run).
per_step_ms() { awk -v x="$(field "$1" "$2")" -v n="$(field "$1" steps_per_epoch)" 'BEGIN { if (x == "" || n == 0) print "nan"; else print 1e3 * x / n }'; }
# The median step time of a run, in seconds.
step() { field "$1" median_step_s; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "bench_backends: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 1; i <= repeats; i++)); do
  "$build/train_serial" "${common[@]}" --save-results "$out/serial$i.json" >/dev/null
  taskset -c 0 "$build/train_serial" "${common[@]}" --save-results "$out/pairA$i.json" >/dev/null &
  taskset -c 1 "$build/train_serial" "${common[@]}" --save-results "$out/pairB$i.json" >/dev/null
  wait
  awk -v a="$(throughput "$out/pairA$i.json")" -v b="$(throughput "$out/pairB$i.json")" 'BEGIN { print a + b }' >"$out/pair$i.txt"
  "$build/train_parallel" -w 2 --backend gloo "${common[@]}" --save-results "$out/gloo$i.json" >/dev/null
  "$build/train_parallel" -w 2 --backend mpi "${common[@]}" --save-results "$out/mpi$i.json" >/dev/null
  printf 'round %d: serial %.0f  two independent serial %.0f  gloo %.0f  mpi %.0f samples/s  (load %s)\n' "$i" \
    "$(throughput "$out/serial$i.json")" "$(cat "$out/pair$i.txt")" "$(throughput "$out/gloo$i.json")" \
    "$(throughput "$out/mpi$i.json")" \
    "$(cut -d' ' -f1 /proc/loadavg)"
done
s=$(for f in "$out"/serial*.json; do throughput "$f"; done | median)
g=$(for f in "$out"/gloo*.json; do throughput "$f"; done | median)
m=$(for f in "$out"/mpi*.json; do throughput "$f"; done | median)
# What communication cost the cores, per step and rank (medians): the CPU the
# all-reduces used (on the gradient thread, or on the training thread with
# --overlap none), and the time the compute thread was ready but preempted.
cost() { # backend
  printf '%s (overlap %s): all-reduce CPU %.2f ms/step, compute thread preempted %.2f ms/step\n' "$1" \
    "$(sed -n 's/.*"overlap": *"\([a-z]*\)".*/\1/p' "$(ls "$out"/"$1"*.json | head -1)" | head -1)" \
    "$(for f in "$out"/"$1"*.json; do per_step_ms "$f" comm_cpu_s; done | median)" \
    "$(for f in "$out"/"$1"*.json; do per_step_ms "$f" compute_preempted_s; done | median)"
}
p=$(cat "$out"/pair*.txt | median)
ss=$(for f in "$out"/serial*.json; do step "$f"; done | median)
gs=$(for f in "$out"/gloo*.json; do step "$f"; done | median)
ms=$(for f in "$out"/mpi*.json; do step "$f"; done | median)
awk -v s="$s" -v g="$g" -v m="$m" -v p="$p" 'BEGIN {
  printf "median samples/s: serial %.0f, gloo x2 %.0f (speedup %.2f, efficiency %.0f%%), mpi x2 %.0f (speedup %.2f, efficiency %.0f%%)\n",
         s, g, g / s, 50 * g / s, m, m / s, 50 * m / s
  printf "ceiling: two independent serial runs %.0f (%.2fx serial): gloo reaches %.0f%% of it, mpi %.0f%%\n",
         p, p / s, 100 * g / p, 100 * m / p }'
awk -v s="$ss" -v g="$gs" -v m="$ms" 'BEGIN {
  printf "median step: serial %.2f ms, gloo x2 %.2f ms (speedup %.2f), mpi x2 %.2f ms (speedup %.2f)\n",
         1e3 * s, 1e3 * g, 2 * s / g, 1e3 * m, 2 * s / m }'
cost gloo
cost mpi
mpirun -np 2 "$build/tests/test_dist" --gtest_color=no --gtest_also_run_disabled_tests \
  --gtest_filter=MpiInside.DISABLED_AllreduceBench 2>&1 | grep "MPI allreduce" || true
if [[ -x "$build/tests/dist_test_worker" ]]; then
  printf 'Gloo '
  "$build/tests/dist_test_worker" launch 2 bench 421642 300 2>&1 | grep allreduce || true
fi
echo "bench_backends: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
