#!/usr/bin/env bash
# Layering kept by a test: every quoted #include in a non-test source must
# point at the same floor or one below (docs/design.md, "Layers"):
#   0 common   1 geneve, disco   2 relay   3 engine   4 control
#   5 tools, bench, tests
# Test sources (*_test.cc, tests/, bench/, fuzzers) may include anything.
# Usage: check_layers.sh [REPO_ROOT]; under `bazel test` the root is found
# through the WORKSPACE file in the runfiles.
set -euo pipefail
root="${1:-}"
if [ -z "$root" ]; then
  root="$(dirname "$(readlink -f "$TEST_SRCDIR/peerrelay/WORKSPACE")")"
fi
cd "$root"

floor() {
  case "$1" in
    common) echo 0 ;;
    geneve|disco) echo 1 ;;
    relay) echo 2 ;;
    engine) echo 3 ;;
    control) echo 4 ;;
    tools|bench|tests) echo 5 ;;
    *) echo -1 ;;
  esac
}

bad=0
checked=0
while IFS= read -r file; do
  dir="${file%%/*}"
  from=$(floor "$dir")
  [ "$from" -lt 0 ] && continue
  case "$file" in *_test.cc|*_benchmark.cc|*_fuzzer.cc) continue ;; esac
  [ "$from" -eq 5 ] && continue
  checked=$((checked + 1))
  while IFS= read -r inc; do
    to_dir="${inc%%/*}"
    to=$(floor "$to_dir")
    [ "$to" -lt 0 ] && continue
    if [ "$to" -gt "$from" ]; then
      echo "layering: $file (floor $from, $dir) includes $inc (floor $to, $to_dir)"
      bad=$((bad + 1))
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(find common geneve disco relay engine control -name '*.h' -o -name '*.cc' | sort)

if [ "$checked" -eq 0 ]; then
  echo "layering: no source found under $root" >&2
  exit 1
fi
if [ "$bad" -gt 0 ]; then
  echo "layering: $bad upward include(s)"
  exit 1
fi
echo "layering: $checked sources, every include points down or level"
