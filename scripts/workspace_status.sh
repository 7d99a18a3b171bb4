#!/bin/sh
# Bazel's --workspace_status_command (.bazelrc): the git commit the binaries
# are built from, for `relayd --version` and the build_info metric. A tree
# with uncommitted changes says so ("-dirty"); outside git, "unknown".
commit=$(git rev-parse --short=12 HEAD 2>/dev/null) || commit=unknown
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
  commit="$commit-dirty"
fi
echo "STABLE_GIT_COMMIT $commit"
