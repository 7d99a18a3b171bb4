#!/usr/bin/env bash
# Quick-start demo: installs what it needs, builds, starts relayd on
# 127.0.0.1, and runs two clients through it for a few seconds (UDP
# allocation, bind handshakes, data both ways, every byte checked). relayd
# prints its counters when it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bazel build -c opt //tools:relayd //loadtest:demo_client //tools:relayctl
BIN=bazel-bin/tools
work=$(mktemp -d)
trap 'kill $relayd_pid 2>/dev/null || true; rm -rf "$work"' EXIT

"bazel-bin/loadtest/demo_client" --key_file="$work/client-a.key" --print_public_key > "$work/allowlist"
head -c 24 /dev/urandom | base64 > "$work/admin_token"  # the session list needs it
"$BIN/relayd" --listen=127.0.0.1 --port=0 --key_file="$work/server.key" \
  --admin_listen=127.0.0.1:0 --admin_token_file="$work/admin_token" \
  --allocate_allowlist="$work/allowlist" \
  --stats_interval=1s 2> "$work/relayd.log" &
relayd_pid=$!
for _ in $(seq 50); do grep -q "admin API on" "$work/relayd.log" && break; sleep 0.1; done
cat "$work/relayd.log"
port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$work/relayd.log" | head -1)
key=$("$BIN/relayd" --key_file="$work/server.key" --print_public_key)
admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$work/relayd.log" | head -1)

status=0
"bazel-bin/loadtest/demo_client" --relay="127.0.0.1:$port" --server_key="$key" \
  --key_file="$work/client-a.key" --seconds=3 || status=$?
echo "--- relayctl sessions"
"$BIN/relayctl" --admin="$admin" --token_file="$work/admin_token" sessions
echo "--- relayctl metrics"
"$BIN/relayctl" --admin="$admin" --token_file="$work/admin_token" metrics
kill -INT $relayd_pid
wait $relayd_pid || true
echo "--- relayd log"
cat "$work/relayd.log"
exit $status
