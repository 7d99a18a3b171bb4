#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan), writes seed corpora
# from real handshakes, and runs each fuzzer for SECONDS (default 30).
# Fails on any finding (crash, leak, sanitizer report, invariant trap).
#   scripts/run_fuzzers.sh [SECONDS]
# Corpora grow under ${FUZZ_DIR:-/tmp/peerrelay-fuzz}; keep that folder to
# continue a longer campaign.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
dir="${FUZZ_DIR:-/tmp/peerrelay-fuzz}"
mkdir -p "$dir"
bazel build --config=fuzz //tests/fuzz:geneve_fuzzer //tests/fuzz:envelope_fuzzer \
  //tests/fuzz:message_fuzzer //tests/fuzz:datagram_fuzzer //tests/fuzz:http_parser_fuzzer \
  //tests/fuzz:pcap_fuzzer
bazel run //tests/fuzz:make_corpus -- "$dir"
bin=$(bazel info --config=fuzz bazel-bin)/tests/fuzz
status=0
# Seeds for the HTTP parser: two piece-size bytes, then requests.
mkdir -p "$dir/http_parser_fuzzer"
printf '\x03\x05GET /livez HTTP/1.1\r\nHost: x\r\n\r\n' > "$dir/http_parser_fuzzer/seed-get"
printf '\x01\x07POST /v0/relay/endpoint HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' \
  > "$dir/http_parser_fuzzer/seed-chunked"
printf '\x00\x02POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /x?a=1 HTTP/1.1\r\n\r\n' > "$dir/http_parser_fuzzer/seed-cl"
# Seeds for the capture reader: the test captures (pcap, both families).
mkdir -p "$dir/pcap_fuzzer"
cp tests/data/*.pcap "$dir/pcap_fuzzer/"
for f in geneve_fuzzer envelope_fuzzer message_fuzzer datagram_fuzzer http_parser_fuzzer pcap_fuzzer; do
  echo "== $f (${secs}s)"
  mkdir -p "$dir/$f" "$dir/findings"
  if ! "$bin/$f" "$dir/$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$dir/findings/$f-" -print_final_stats=1 2> "$dir/$f.log"; then
    echo "FINDING in $f:"; tail -40 "$dir/$f.log"; status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$dir/$f.log" || true
  fi
done
[ $status -eq 0 ] && echo "fuzzers: 6 passed, 0 failed"
exit $status
