#!/usr/bin/env bash
# The project's size rules for src/ and apps/: files under ~400 lines,
# functions under ~80 lines. A function may be longer when a comment says
# why, on the line before it:
#   // NOLINTNEXTLINE(readability-function-size): <the reason>
# Functions are measured by clang-tidy's readability-function-size (lines
# including comments and blank lines), which needs the compile database of a
# configured build (cmake -DCMAKE_EXPORT_COMPILE_COMMANDS=ON; the project's
# CMakeLists turns it on).
#
# usage: scripts/check_sizes.sh [BUILD_DIR] [FILE...]   (default: build, every .cpp/.h in src/ and apps/)
# Exit status: 0 when everything is within the limits, 1 otherwise, 2 when it cannot check.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
max_file_lines=${MAX_FILE_LINES:-400}
max_function_lines=${MAX_FUNCTION_LINES:-80}

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find src apps -name '*.cpp' -o -name '*.h' | sort); fi

status=0
for f in "${files[@]}"; do
  n=$(wc -l <"$f")
  if [ "$n" -gt "$max_file_lines" ]; then
    echo "$f: $n lines (limit ~$max_file_lines): split it by purpose"
    status=1
  fi
done

if ! command -v clang-tidy >/dev/null; then
  echo "check_sizes: clang-tidy not found: function sizes not checked (fix: apt-get install clang-tidy)" >&2
  exit 2
fi
if [ ! -f "$build/compile_commands.json" ]; then
  echo "check_sizes: $build/compile_commands.json not found (fix: cmake -S . -B $build -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)" >&2
  exit 2
fi

config="{CheckOptions: [{key: readability-function-size.LineThreshold, value: $max_function_lines}]}"
sources=()
for f in "${files[@]}"; do [[ $f == *.cpp ]] && sources+=("$f"); done
# Headers are checked through the sources that include them.
out=$(printf '%s\n' "${sources[@]}" |
  xargs -P "${JOBS:-2}" -n 4 clang-tidy -p "$build" --quiet --checks='-*,readability-function-size' \
    --config="$config" --header-filter="^$PWD/(src|apps)/" 2>/dev/null |
  grep -E "warning: function '.*readability-function-size|note: [0-9]+ lines including" || true)
if [ -n "$out" ]; then
  # "FILE:L:C: warning: function 'F' exceeds ..." then "FILE:L:C: note: N lines including ..."
  # -> "FILE:L: F: N lines", each function once.
  paste -d' ' - - <<<"$out" |
    sed -E "s|^$PWD/||; s/^([^:]+:[0-9]+):[0-9]+: warning: function '([^']*)'.* note: ([0-9]+) lines.*/\1: \2: \3 lines (limit ~$max_function_lines)/" |
    sort -u
  status=1
fi
exit $status
