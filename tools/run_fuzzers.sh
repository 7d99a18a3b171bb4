#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan), writes seed corpora
# from real handshakes, and runs each fuzzer for SECONDS (default 30).
# Fails on any finding (crash, leak, sanitizer report, invariant trap).
#   tools/run_fuzzers.sh [SECONDS]
# Corpora grow under ${FUZZ_DIR:-/tmp/peerrelay-fuzz}; keep that folder to
# continue a longer campaign.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
dir="${FUZZ_DIR:-/tmp/peerrelay-fuzz}"
mkdir -p "$dir"
bazel build --config=fuzz //tests/fuzz:geneve_fuzzer //tests/fuzz:envelope_fuzzer \
  //tests/fuzz:message_fuzzer //tests/fuzz:datagram_fuzzer
bazel run //tests/fuzz:make_corpus -- "$dir"
bin=$(bazel info --config=fuzz bazel-bin)/tests/fuzz
status=0
for f in geneve_fuzzer envelope_fuzzer message_fuzzer datagram_fuzzer; do
  echo "== $f (${secs}s)"
  mkdir -p "$dir/$f" "$dir/findings"
  if ! "$bin/$f" "$dir/$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$dir/findings/$f-" -print_final_stats=1 2> "$dir/$f.log"; then
    echo "FINDING in $f:"; tail -40 "$dir/$f.log"; status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$dir/$f.log" || true
  fi
done
[ $status -eq 0 ] && echo "fuzzers: 4 passed, 0 failed"
exit $status
