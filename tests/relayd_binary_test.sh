#!/usr/bin/env bash
# Drives the relayd binary as operators run it: bad flags fail clearly; a
# started relayd allocates over UDP for an allowlisted key, binds two
# clients, relays their data byte for byte on 127.0.0.1 and on ::1, keeps
# its key across a restart, and exits 0 on SIGTERM.
set -euo pipefail
RELAYD="$1"
CLIENT="$2"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work"/*.log 2>/dev/null || true; exit 1; }

# Bad flags: non-zero exit and a message naming the flag.
for args in "--profile=bogus" "--engine=dpdk" "--port=70000" \
            "--bind_lifetime=-1s" "--listen=not-an-ip" "--allocate_allowlist=/nonexistent"; do
  if "$RELAYD" $args --key_file="$work/k" > "$work/out" 2>&1; then
    fail "relayd $args exited 0"
  fi
  grep -q "relayd:" "$work/out" || fail "no message for $args"
done

"$CLIENT" --key_file="$work/a.key" --print_public_key > "$work/allow"
key1=$("$RELAYD" --key_file="$work/server.key" --print_public_key)
[ "$(stat -c %a "$work/server.key")" = 600 ] || fail "key file mode"
key2=$("$RELAYD" --key_file="$work/server.key" --print_public_key)
[ "$key1" = "$key2" ] || fail "key changed across restarts"

for listen in 127.0.0.1 ::1; do
  for engine in mmsg auto; do
    log="$work/relayd-$engine-${listen//:/_}.log"
    "$RELAYD" --listen="$listen" --port=0 --workers=2 --engine=$engine \
      --key_file="$work/server.key" --allocate_allowlist="$work/allow" 2> "$log" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
    port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$log" | head -1)
    [ -n "$port" ] || fail "relayd did not start"
    grep -q "server_key=$key1" "$log" || fail "start-up line lacks the key"
    if [ "$listen" = "::1" ]; then relay="[::1]:$port"; else relay="$listen:$port"; fi
    "$CLIENT" --relay="$relay" --server_key="$key1" --key_file="$work/a.key" \
      --seconds=0.5 --size=300 > "$work/client.out" || fail "client ($engine, $listen): $(cat "$work/client.out")"
    grep -q "mismatched=0" "$work/client.out" || fail "mismatch"
    kill -TERM $pid
    wait $pid || fail "relayd exit code $? on SIGTERM"
    grep -q "final: endpoints=1 " "$log" || fail "final counters"
    grep -q "handshakes=2 " "$log" || fail "handshakes"
    # Probes sent before the last Answer was processed may be not_bound;
    # any other drop is a failure.
    grep -Eq " dropped=(0|[0-9]+ \(not_bound=[0-9]+\))$" "$log" || fail "unexpected drops"
  done
done
echo "relayd binary test: 1 passed, 0 failed"
