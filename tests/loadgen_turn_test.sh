#!/usr/bin/env bash
# loadgen's TURN mode against Debian's coturn (turnserver) on loopback, no
# authentication: every pair allocates, creates permissions, binds a channel
# and sends ChannelData; exact delivered counts at a fixed rate, plain and
# GSO bursts. Skipped, with a message, when coturn is not installed.
set -euo pipefail
LOADGEN="$1"
if ! command -v turnserver > /dev/null; then
  echo "loadgen TURN test: skipped: coturn (turnserver) is not installed"
  exit 0
fi
work=$(mktemp -d)
turn_pid=
trap 'kill $turn_pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; tail -20 "$work/turn.log" 2>/dev/null || true; exit 1; }

# A free UDP port for the TURN listener, and a relay port range of its own.
for _ in $(seq 20); do
  port=$((20000 + RANDOM % 20000))
  ss -Hlun "sport = :$port" | grep -q . || break
done
turnserver -n --no-auth --listening-ip=127.0.0.1 --listening-port="$port" \
  --relay-ip=127.0.0.1 --min-port=$((port + 1)) --max-port=$((port + 200)) \
  --allow-loopback-peers --no-cli --no-tls --no-dtls --relay-threads=1 \
  --userdb="$work/turndb" --pidfile="$work/turn.pid" --log-file=stdout --simple-log \
  > "$work/turn.log" 2>&1 &
turn_pid=$!
for _ in $(seq 100); do ss -Hlun "sport = :$port" | grep -q . && break; sleep 0.05; done
ss -Hlun "sport = :$port" | grep -q . || fail "turnserver did not listen on $port"

field() { sed -n "s/^  \"$1\": \([^,]*\),\{0,1\}$/\1/p" "$2" | tr -d '"'; }
for burst in plain gso; do
  "$LOADGEN" --turn --relay="127.0.0.1:$port" --pairs=3 --size=300 --rate=2000 \
    --max_datagrams=2000 --duration=10s --burst="$burst" --burst_size=8 --direction=both \
    --check_payload --quiet --json="$work/r.json" > "$work/lg.log" 2>&1 \
    || fail "loadgen --turn ($burst): $(cat "$work/lg.log")"
  for f in "sent:2000" "received:2000" "lost:0" "corrupted:0" "misdelivered:0" \
           "pairs:3" "pairs_failed:0" "foreign:0"; do
    [ "$(field "${f%%:*}" "$work/r.json")" = "${f#*:}" ] \
      || fail "$burst: ${f%%:*} is $(field "${f%%:*}" "$work/r.json"), want ${f#*:}"
  done
  echo "loadgen TURN test: $burst: 2000 sent, 2000 delivered through coturn"
done
echo "loadgen TURN test: 1 passed, 0 failed"
