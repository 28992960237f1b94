#!/usr/bin/env bash
# Trains on an emulated cluster on this machine: NODES network namespaces
# ("machines") joined through a bridge by links shaped to RATE in both
# directions, with one train_parallel node launcher in each (--nnodes NODES
# --node-rank i --iface eth0, as on a real cluster), meeting through a
# file:// rendezvous directory. Each node's processes are pinned to their
# own cores. Needs root (network namespaces, tc). Runs from the repository
# root (data/mnist); extra arguments go to train_parallel.
#
#   scripts/emulated_cluster.sh [-p PROCS_PER_NODE] NODES RATE[,DELAY] [train_parallel flags...]
#   scripts/emulated_cluster.sh 2 1gbit -e 1 --dropout 0 --save-results /tmp/r.json
#
# Ctrl-C stops every node. The namespaces, links and qdiscs belong to the
# emulated_cluster process and vanish with it however it ends, and so does
# the rendezvous directory. See docs/network-emulation.md.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo_root/build}"
usage="usage: scripts/emulated_cluster.sh [-p PROCS_PER_NODE] NODES RATE[,DELAY] [train_parallel flags...]"

procs=1
if [[ "${1:-}" == "-p" ]]; then
  procs="${2:?$usage}"
  shift 2
fi
if [[ $# -lt 2 ]]; then
  echo "$usage" >&2
  echo "  e.g. scripts/emulated_cluster.sh 2 1gbit -e 1" >&2
  exit 2
fi
nodes="$1" rate="$2"
shift 2
if ! [[ "$nodes" =~ ^[1-9][0-9]*$ ]]; then
  echo "emulated_cluster.sh: '$nodes' is not a number of nodes: NODES and RATE come first" >&2
  echo "$usage" >&2
  echo "  e.g. scripts/emulated_cluster.sh 2 1gbit -e 1" >&2
  exit 2
fi
if ! [[ "$procs" =~ ^[1-9][0-9]*$ ]]; then
  echo "emulated_cluster.sh: -p $procs: the processes per node must be a positive whole number" >&2
  echo "$usage" >&2
  exit 2
fi
for exe in emulated_cluster train_parallel; do
  if [[ ! -x "$build/$exe" ]]; then
    echo "emulated_cluster.sh: $build/$exe is missing; build it first: scripts/build.sh" >&2
    exit 1
  fi
done

# One compute thread per core of the node, shared by its processes, unless
# the flags say otherwise (train_parallel's default counts the whole machine).
threads=()
if [[ " $* " != *" --threads "* ]]; then
  threads=(--threads "{ncores}")
  [[ "$procs" != 1 ]] && threads=(--threads 1)
fi

cd "$repo_root"
# emulated_cluster makes the rendezvous directory ({rendezvous}) and a job
# secret for the nodes, and removes the directory however it ends; Ctrl-C
# reaches it, and it stops the nodes and returns 130.
exec "$build/emulated_cluster" --nodes "$nodes" --rate "$rate" -- \
  "$build/train_parallel" --nnodes "{nnodes}" --node-rank "{node}" --nproc-per-node "$procs" \
  --rendezvous "file://{rendezvous}" --iface "{iface}" "${threads[@]}" "$@"
