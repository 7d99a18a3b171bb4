#!/usr/bin/env bash
# The end-to-end bulk figure: two real tailscaled nodes (built from the
# version bridge/go.mod pins) move TCP bulk data through a peer relay that
# relayd-bridge hands them, relayd or Tailscale's own relay server
# (tailscale.com/net/udprelay via bridge/cmd/tsrelay), rounds interleaved.
# Reports throughput and the relay process's CPU time per 100 MB. The relay
# is pinned to CPU 0, everything else to CPU 1.
#
#   bash bench/tailnet_bulk.sh [--rounds 3] [--seconds 8]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
seconds=8
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "tailnet_bulk: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(nproc)" -ge 2 ] || { echo "tailnet_bulk: needs 2 CPUs" >&2; exit 1; }
cd "$root"
bazel build -c opt //tools:relayd //tools:relayctl > /dev/null 2>&1 \
  || { echo "tailnet_bulk: bazel build -c opt //tools:relayd failed" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cp bazel-bin/tools/relayd bazel-bin/tools/relayctl "$bin/"
bazel shutdown > /dev/null 2>&1 || true
command -v go > /dev/null || export PATH="$PATH:/usr/local/go/bin"
cd bridge
BULK_BENCH=1 BULK_ROUNDS="$rounds" BULK_SECONDS="$seconds" \
  RELAYD_BIN="$bin/relayd" RELAYCTL_BIN="$bin/relayctl" \
  go test -count=1 -timeout 30m -run TestBulkThroughRelays -v ./e2e/ 2>&1 |
  grep -E '^bulk |round [0-9]+ |^(ok|FAIL|---)'
