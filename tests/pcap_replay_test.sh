#!/usr/bin/env bash
# Capture and replay against real relayds on loopback:
#  - relayd --capture_file holds every datagram relayd received and sent
#    (checked against its own counters); loadgen --pcap_out holds what the
#    clients sent and received; both captures show the same 2 sessions
#  - pcap_replay replays each (captured at the relay, at the clients, and the
#    checked-in seed/IPv6 one as fast as possible) with nothing lost,
#    duplicated, corrupted or misdelivered, looping for --duration
#  - --hostile / --hostile_all: relayd answers none and drops each
#  - a relay killed mid-replay shows up as loss and a failing exit
#  - geneve_dump opens the handshakes with the relay key
set -euo pipefail
RELAYD="$1"; LOADGEN="$2"; REPLAY="$3"; DUMP="$4"; CLIENT="$5"; DATA="$(dirname "$6")"
work=$(mktemp -d)
pid=
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; tail -20 "$work"/*.log 2>/dev/null; exit 1; }
echo tok > "$work/token"
"$CLIENT" --key_file="$work/client.key" --print_public_key > "$work/allow"

source "$(dirname "$0")/relayd_lib.sh"
stop_relayd() { kill -TERM "$pid"; wait "$pid" || fail "relayd exit"; pid=; }
metric() {  # sum of a metric's series
  curl -sf "http://$admin/metrics" | awk -v n="$1" 'index($1, n "{") == 1 || $1 == n {s += $2} END {print s + 0}'
}
jfield() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(eval('j' + sys.argv[2]))" "$1" "$2"; }

# Bad flags and files.
for args in "--speed=-1 x.pcap" "--bogus x.pcap" "" "--relay=nowhere $DATA/current_v4_client.pcap"; do
  rc=0; "$REPLAY" $args > "$work/out" 2>&1 || rc=$?
  [ "$rc" = 2 ] && grep -q "^pcap_replay: " "$work/out" || fail "pcap_replay $args: exit $rc: $(cat "$work/out")"
done
rc=0; "$REPLAY" --list "$work/missing.pcap" > "$work/out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "missing.pcap" "$work/out" || fail "missing file: exit $rc: $(cat "$work/out")"

# 1. Record at the relay and at the clients at once.
start_relayd 127.0.0.1 --capture_file="$work/relay.pcap"
"$LOADGEN" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
  --pairs=2 --size=180 --rate=400 --max_datagrams=400 --duration=5s --direction=both \
  --check_payload --quiet --pcap_out="$work/client.pcap" --json="$work/lg.json" \
  > "$work/loadgen.log" 2>&1 || fail "loadgen"
received=$(metric peerrelay_received_datagrams_total)
forwarded=$(metric peerrelay_forwarded_packets_total)
challenges=$(metric peerrelay_challenges_sent_total)
stop_relayd
grep -q "capture $work/relay.pcap: " "$work/relayd.log" || fail "no capture summary in relayd's log"
"$REPLAY" --list "$work/relay.pcap" > "$work/relay.list" || fail "list relay.pcap"
"$REPLAY" --list "$work/client.pcap" > "$work/client.list" || fail "list client.pcap"
want=$((received + forwarded + challenges))
grep -q "^capture .*: $want packets, $want UDP datagrams ($want Geneve)" "$work/relay.list" \
  || fail "relay capture: want $want datagrams (received $received + forwarded $forwarded + challenges $challenges): $(head -1 "$work/relay.list")"
to_relay=$(jfield "$work/lg.json" "['datagrams_to_relay']")
[ "$to_relay" = "$received" ] || fail "loadgen sent $to_relay to the relay, relayd received $received"
for l in relay client; do
  grep -q "^relay 127.0.0.1:$port: 2 sessions, 0 datagrams not valid" "$work/$l.list" \
    || fail "$l capture: $(cat "$work/$l.list")"
  [ "$(grep -c 'handshake 6 datagrams' "$work/$l.list")" = 2 ] || fail "$l: handshakes: $(cat "$work/$l.list")"
done
# Both views yield the same datagrams to replay.
diff <(sed -n 's/.*; replay \(.*\)/\1/p' "$work/relay.list") \
     <(sed -n 's/.*; replay \(.*\)/\1/p' "$work/client.list") || fail "views differ"
echo "pcap_replay test: recorded $want datagrams at the relay, same sessions at the clients"

# 2. Replay both, in both loop and one-pass modes.
start_relayd 127.0.0.1
for l in relay client; do
  "$REPLAY" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
    --speed=4 --duration=2s --quiet --json="$work/r.json" "$work/$l.pcap" \
    > "$work/replay.log" 2>&1 || fail "replay $l: $(cat "$work/replay.log")"
  grep -q "^verdict: PASS" "$work/replay.log" || fail "replay $l verdict"
  loops=$(jfield "$work/r.json" "['loops']")
  sent=$(jfield "$work/r.json" "['total']['sent']")
  [ "$loops" -ge 2 ] || fail "$l: $loops loops in 2s at 4x of a 1s capture"
  [ "$(jfield "$work/r.json" "['total']['received']")" = "$sent" ] || fail "$l: received != sent"
  [ "$(jfield "$work/r.json" "['total']['lost']")" = 0 ] || fail "$l: loss"
  [ "$(jfield "$work/r.json" "['sessions'][1]['vni']")" != 0 ] || fail "$l: session 1 not set up"
  echo "pcap_replay test: $l capture: $loops loops, $sent sent, all delivered"
done
stop_relayd

# 3. The checked-in seed/IPv6 capture, as fast as possible, UDP allocation.
start_relayd ::1 --profile=seed --key_file="$work/seed.key"
key=$("$RELAYD" --key_file="$work/seed.key" --print_public_key)
"$REPLAY" --relay="[::1]:$port" --client_key_file="$work/client.key" --server_key="$key" \
  --profile=seed --speed=0 --quiet --json="$work/r.json" "$DATA/seed_v6_relay.pcap" \
  > "$work/replay.log" 2>&1 || fail "replay seed: $(cat "$work/replay.log")"
sent=$(jfield "$work/r.json" "['total']['sent']")
[ "$sent" -gt 100 ] && [ "$(jfield "$work/r.json" "['total']['received']")" = "$sent" ] \
  || fail "seed: $(cat "$work/replay.log")"
stop_relayd
echo "pcap_replay test: seed/IPv6 capture at full speed: $sent sent, all delivered"

# 4. Hostile: the invalid datagrams with the sessions, then everything unbound.
start_relayd 127.0.0.1
"$REPLAY" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
  --speed=2 --hostile --quiet --json="$work/r.json" "$DATA/hostile_v4_relay.pcap" \
  > "$work/replay.log" 2>&1 || fail "hostile: $(cat "$work/replay.log")"
hs=$(jfield "$work/r.json" "['hostile_sent']")
[ "$hs" -ge 40 ] && [ "$(jfield "$work/r.json" "['drops_counted']")" = "$hs" ] \
  && [ "$(jfield "$work/r.json" "['hostile_answered']")" = 0 ] || fail "hostile: $(cat "$work/replay.log")"
[ "$(jfield "$work/r.json" "['total']['lost']")" = 0 ] || fail "hostile: the session lost datagrams"
"$REPLAY" --relay="127.0.0.1:$port" --admin="$admin" --hostile_all --speed=0 --quiet \
  --json="$work/r.json" "$DATA/current_v4_client.pcap" > "$work/replay.log" 2>&1 \
  || fail "hostile_all: $(cat "$work/replay.log")"
ha=$(jfield "$work/r.json" "['hostile_sent']")
[ "$ha" -gt 100 ] && [ "$(jfield "$work/r.json" "['drops_counted']")" = "$ha" ] || fail "hostile_all: $(cat "$work/replay.log")"
stop_relayd
echo "pcap_replay test: hostile: $hs invalid + $ha unbound datagrams, none answered, each dropped"

# 5. The checker fails when the relay goes away mid-replay.
start_relayd 127.0.0.1
"$REPLAY" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
  --speed=1 --duration=3s --drain=300ms --quiet --json="$work/r.json" "$work/client.pcap" \
  > "$work/replay.log" 2>&1 &
rpid=$!
sleep 1.5
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
rc=0; wait "$rpid" || rc=$?
lost=$(jfield "$work/r.json" "['total']['lost']")
[ "$rc" = 1 ] && [ "$lost" -gt 0 ] && grep -q "^verdict: FAIL" "$work/replay.log" \
  || fail "killed relay: exit $rc, lost $lost: $(cat "$work/replay.log")"
echo "pcap_replay test: relay killed mid-replay: $lost lost, exit 1"

# 6. geneve_dump opens every handshake with the relay's key.
"$DUMP" --keys="$DATA/relay.key" "$DATA/hostile_v4_relay.pcap" > "$work/dump" 2> "$work/dump.err" || fail "geneve_dump"
for m in "Bind vni 1 gen 1" "Challenge vni 1 gen 1" "Answer vni 1 gen 1" "not geneve" "geneve v1" "proto 0x0800" \
         "wg transport (4) receiver 0 counter 0"; do
  grep -qF "$m" "$work/dump" || fail "geneve_dump: no '$m'"
done
[ "$(grep -c "\[sealed\]" "$work/dump")" -ge 39 ] || fail "forged Binds should stay sealed"
"$DUMP" --keys="$DATA/relay.key" "$DATA/seed_v6_relay.pcap" > "$work/dump" 2>/dev/null || fail "geneve_dump seed"
for m in "[AllocateRequest" "[AllocateResponse vni 1" "[Bind (seed)" "[Challenge (seed)" "[Answer (seed)"; do
  grep -qF "$m" "$work/dump" || fail "geneve_dump seed: no '$m'"
done
grep -q "254 packets, 254 UDP datagrams, 254 printed" "$work/dump.err" || fail "dump summary: $(cat "$work/dump.err")"
echo "pcap_replay test: geneve_dump opens the handshakes"
echo "PASS"
