#!/usr/bin/env bash
# Layering kept by a test: every quoted #include of every C++ source in the
# repository must point at a floor its own floor may use (docs/design.md,
# "Layers"):
#
#   common                     nothing else
#   geneve, disco              common, each other
#   relay                      common, geneve, disco
#   client                     common, geneve, disco         (no relay)
#   engine                     the above but client, and relay
#   control                    engine's, and engine
#   tools                      everything but loadtest, bench, tests
#   loadtest                   common, geneve, disco, client  (no relay,
#                              engine or control)
#   bench, tests               anything (they measure and test the rest)
#
# Test code anywhere (*_test.cc, *_benchmark.cc, *_fuzzer.cc and the
# *_testing.{h,cc} helpers) may include anything. A C++ source in a
# directory that is not a known floor fails the test: a new floor must be
# placed here first.
# Usage: check_layers.sh [REPO_ROOT]; under `bazel test` the root is found
# through the WORKSPACE file in the runfiles.
set -euo pipefail
root="${1:-}"
if [ -z "$root" ]; then
  root="$(dirname "$(readlink -f "$TEST_SRCDIR/peerrelay/WORKSPACE")")"
fi
cd "$root"

# allowed FLOOR: the floors FLOOR's sources may include ("*": any floor).
allowed() {
  case "$1" in
    common) echo "common" ;;
    geneve|disco) echo "common geneve disco" ;;
    relay) echo "common geneve disco relay" ;;
    client) echo "common geneve disco client" ;;
    engine) echo "common geneve disco relay engine" ;;
    control) echo "common geneve disco relay engine control" ;;
    tools) echo "common geneve disco relay client engine control tools" ;;
    loadtest) echo "common geneve disco client loadtest" ;;
    bench|tests) echo "*" ;;
    *) echo "" ;;
  esac
}
known="common geneve disco relay client engine control tools loadtest bench tests"

bad=0
checked=0
declare -A seen=()
while IFS= read -r file; do
  file="${file#./}"
  dir="${file%%/*}"
  rules=$(allowed "$dir")
  if [ -z "$rules" ]; then
    echo "layering: $file is in '$dir', which is not a known floor ($known)"
    bad=$((bad + 1))
    continue
  fi
  seen[$dir]=1
  checked=$((checked + 1))
  test_code=0
  case "$file" in
    *_test.cc|*_benchmark.cc|*_fuzzer.cc|*_testing.cc|*_testing.h) test_code=1 ;;
  esac
  while IFS= read -r inc; do
    to_dir="${inc%%/*}"
    [ "$inc" = "$to_dir" ] && continue        # a bare header name
    to_rules=$(allowed "$to_dir")
    if [ -z "$to_rules" ]; then
      # Not one of ours (gtest/, absl/, benchmark/ ... come as <> or from
      # the system); a quoted include into an unknown directory of ours is
      # caught above when that directory holds sources.
      [ -d "$to_dir" ] && {
        echo "layering: $file includes $inc, in '$to_dir', not a known floor"
        bad=$((bad + 1))
      }
      continue
    fi
    # Exists in the tree, or a genrule of its package writes it.
    [ -e "$inc" ] || grep -q "outs = \[\"${inc##*/}\"\]" "$to_dir/BUILD.bazel" || {
      echo "layering: $file includes $inc, which does not exist"
      bad=$((bad + 1))
    }
    [ "$test_code" = 1 ] && continue
    [ "$rules" = "*" ] && continue
    case " $rules " in
      *" $to_dir "*) ;;
      *)
        echo "layering: $file ($dir) includes $inc ($to_dir); $dir may use: $rules"
        bad=$((bad + 1))
        ;;
    esac
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(find . -path ./bazel-\* -prune -o -path ./.git -prune -o \
              \( -name '*.cc' -o -name '*.h' \) -print | sort)

for floor in $known; do
  [ -n "${seen[$floor]:-}" ] || {
    echo "layering: no source found in floor '$floor' under $root"
    bad=$((bad + 1))
  }
done
if [ "$bad" -gt 0 ]; then
  echo "layering: $bad problem(s)"
  exit 1
fi
echo "layering: $checked sources in ${#seen[@]} floors, every include allowed"
