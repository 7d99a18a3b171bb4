#!/usr/bin/env bash
# loadgen against a real relayd on loopback: exact delivered counts at a
# fixed rate in both profiles, over IPv4 and IPv6, with HTTP and UDP
# allocation, plain and GSO bursts; relayd's own counters agree; and a relay
# stopped mid-run shows up as loss.
set -euo pipefail
RELAYD="$1"
LOADGEN="$2"
CLIENT="$3"
REFERENCE="$4"
work=$(mktemp -d)
pid=
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work"/*.log 2>/dev/null | tail -20; exit 1; }
echo "tok" > "$work/token"
"$CLIENT" --key_file="$work/client.key" --print_public_key > "$work/allow"

source "$(dirname "$0")/relayd_lib.sh"
field() { sed -n "s/^  \"$1\": \([^,]*\),\{0,1\}$/\1/p" "$2" | tr -d '"'; }
metric_sum() {  # name: sum over series
  curl -sf "http://$admin/metrics" | awk -v n="$1" 'index($1, n "{") == 1 || $1 == n {s += $2} END {print s + 0}'
}

# Bad flags: exit 2 with a message.
for args in "--relay=nowhere" "--relay=127.0.0.1:1 --pairs=0" "--relay=127.0.0.1:1 --burst=huge" \
            "--relay=127.0.0.1:1 --size=10" "--relay=127.0.0.1:1 --bogus"; do
  rc=0; "$LOADGEN" $args > "$work/out" 2>&1 || rc=$?
  [ "$rc" = 2 ] && grep -q "^loadgen: " "$work/out" || fail "loadgen $args: exit $rc: $(cat "$work/out")"
done

# relay listen | relay address | profile | allocation | burst | direction
for row in "127.0.0.1|127.0.0.1|current|http|plain|both" \
           "::1|[::1]|current|http|gso|a2b" \
           "127.0.0.1|127.0.0.1|seed|udp|gso|both" \
           "::1|[::1]|seed|http|plain|a2b"; do
  IFS='|' read -r listen host profile alloc burst dir <<< "$row"
  start_relayd "$listen" --profile="$profile"
  if [ "$alloc" = udp ]; then
    how=(--client_key_file="$work/client.key" --server_key="$key")
  else
    how=(--admin="$admin" --token_file="$work/token")
  fi
  "$LOADGEN" --relay="$host:$port" "${how[@]}" --profile="$profile" --pairs=3 \
    --size=200 --rate=3000 --max_datagrams=3000 --duration=10s --burst="$burst" \
    --burst_size=8 --direction="$dir" --check_payload --quiet --json="$work/r.json" \
    > "$work/loadgen.log" 2>&1 || fail "loadgen ($row): $(cat "$work/loadgen.log")"
  for f in "sent:3000" "received:3000" "lost:0" "corrupted:0" "misdelivered:0" \
           "duplicates:0" "pairs:3" "pairs_failed:0" "send_errors:0" "foreign:0"; do
    [ "$(field "${f%%:*}" "$work/r.json")" = "${f#*:}" ] || fail "$row: ${f%%:*} is $(field "${f%%:*}" "$work/r.json"), want ${f#*:}"
  done
  [ "$(field bound "$work/r.json")" = rate-limited ] || fail "$row: bound label $(field bound "$work/r.json")"
  # relayd's view: the 3000 plus one probe per pair (and any retried probe).
  relayed=$(metric_sum peerrelay_forwarded_packets_total)
  [ "$relayed" -ge 3003 ] && [ "$relayed" -le 3020 ] || fail "$row: relayd relayed $relayed"
  [ "$(metric_sum peerrelay_handshakes_completed_total)" -ge 6 ] || fail "$row: handshakes"
  kill -TERM $pid; wait $pid || fail "$row: relayd exit"
  echo "loadgen test: $row: 3000 sent, 3000 delivered, relayd relayed $relayed"
done

# The compare bench's reference relays, driven with --reference: every mode
# relays every datagram of a paced run.
for mode in mmsg mmsg_gso gro_gso; do
  "$REFERENCE" --mode=$mode > "$work/ref.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on port" "$work/ref.log" && break; sleep 0.05; done
  port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$work/ref.log")
  [ -n "$port" ] || fail "reference relay $mode did not start"
  "$LOADGEN" --reference --relay="127.0.0.1:$port" --pairs=2 --size=300 --rate=2000 \
    --max_datagrams=1000 --duration=10s --burst=gso --burst_size=4 --direction=both \
    --check_payload --quiet --json="$work/r.json" > "$work/loadgen.log" 2>&1 \
    || fail "loadgen --reference ($mode): $(cat "$work/loadgen.log")"
  kill -TERM $pid; wait $pid || fail "reference relay $mode exit"
  grep -q "reference_relay: received=.* send_errors=0" "$work/ref.log" || fail "reference relay $mode: $(tail -1 "$work/ref.log")"
  for f in "sent:1000" "received:1000" "lost:0" "corrupted:0" "misdelivered:0"; do
    [ "$(field "${f%%:*}" "$work/r.json")" = "${f#*:}" ] || fail "reference $mode: ${f%%:*} is $(field "${f%%:*}" "$work/r.json"); relay: $(tail -1 "$work/ref.log")"
  done
  echo "loadgen test: reference relay $mode: 1000 sent, 1000 delivered"
done

# The relay stopped mid-run: the datagrams sent after it are lost.
start_relayd 127.0.0.1
"$LOADGEN" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" --pairs=2 \
  --rate=2000 --duration=2s --quiet --json="$work/loss.json" > "$work/loadgen.log" 2>&1 &
lg=$!
sleep 1
kill -9 $pid; wait $pid 2>/dev/null || true
wait $lg || fail "loadgen exit after the relay died: $(cat "$work/loadgen.log")"
sent=$(field sent "$work/loss.json"); received=$(field received "$work/loss.json"); lost=$(field lost "$work/loss.json")
[ "$lost" -gt 500 ] && [ "$received" -gt 500 ] && [ $((received + lost)) = "$sent" ] \
  || fail "loss not seen: sent $sent received $received lost $lost"
echo "loadgen test: relay killed mid-run: sent $sent, delivered $received, lost $lost"
echo "loadgen test: 1 passed, 0 failed"
