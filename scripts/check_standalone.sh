#!/usr/bin/env bash
# The repository stands alone: no file may point at the development
# notes that live beside it (the sibling "shared" folder), which a user of
# this repository does not have. What a maintainer needs is in docs/.
# Usage: check_standalone.sh [REPO_ROOT]; under `bazel test` the root is
# found through the WORKSPACE file in the runfiles.
set -euo pipefail
root="${1:-}"
if [ -z "$root" ]; then
  root="$(dirname "$(readlink -f "$TEST_SRCDIR/peerrelay/WORKSPACE")")"
fi
cd "$root"
[ -f WORKSPACE ] || { echo "standalone: $root is not the repository" >&2; exit 1; }
# Built from parts so that this file does not match itself.
pattern='\.\./'"shared"
hits=$(grep -rIlE "$pattern" --exclude-dir=.git --exclude-dir='bazel-*' . || true)
if [ -n "$hits" ]; then
  echo "standalone: these files point outside the repository:"
  grep -rInE "$pattern" --exclude-dir=.git --exclude-dir='bazel-*' . || true
  exit 1
fi
files=$(find . -path ./.git -prune -o -path './bazel-*' -prune -o -type f -print | wc -l)
echo "standalone: $files files, none points outside the repository"
