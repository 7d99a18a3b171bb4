#!/usr/bin/env bash
# Drives the relayd binary as operators run it: bad flags fail clearly; a
# started relayd allocates over UDP for an allowlisted key, binds two
# clients, relays their data byte for byte on 127.0.0.1 and on ::1, keeps
# its key across a restart, and exits 0 on SIGTERM. Then the operator
# flows: relayctl against the admin API, SIGHUP reload of allowlist and
# token, SIGUSR1 drain.
set -euo pipefail
RELAYD="$1"
CLIENT="$2"
CTL="$3"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work"/*.log 2>/dev/null || true; exit 1; }

# Bad flags: non-zero exit and a message naming the flag.
for args in "--profile=bogus" "--engine=dpdk" "--port=70000" \
            "--bind_lifetime=-1s" "--listen=not-an-ip" "--allocate_allowlist=/nonexistent" \
            "--admin_listen=localhost:80" "--admin_token_file=/nonexistent" "--alloc_rate=0" \
            "extra-argument"; do
  if "$RELAYD" $args --key_file="$work/k" > "$work/out" 2>&1; then
    fail "relayd $args exited 0"
  fi
  grep -q "relayd:" "$work/out" || fail "no message for $args"
done

# Advertised addresses: ip, ip:port, ip6, [ip6], [ip6]:port.
"$RELAYD" --check_config --advertise=203.0.113.7,198.51.100.1:9999,2001:db8::1,[2001:db8::2],[2001:db8::3]:7 \
  > /dev/null || fail "valid --advertise forms refused"
for bad in "[2001:db8::1" "300.1.1.1" "host.example" "[::1]:99999"; do
  if "$RELAYD" --check_config --advertise="$bad" > /dev/null 2>&1; then fail "--advertise=$bad accepted"; fi
done

# --check_config: a dry run that creates nothing; --flagfile holds flags.
"$RELAYD" --check_config --key_file="$work/dry.key" --port=7777 > "$work/check.out" \
  || fail "check_config: $(cat "$work/check.out")"
grep -q "config ok: port 7777" "$work/check.out" || fail "check_config output"
[ ! -e "$work/dry.key" ] || fail "check_config created the key file"
printf -- "--port=7778\n--profile=seed\n" > "$work/relayd.flags"
"$RELAYD" --flagfile="$work/relayd.flags" --check_config > "$work/check.out"
grep -q "port 7778.*profile seed" "$work/check.out" || fail "flagfile: $(cat "$work/check.out")"
if "$RELAYD" --check_config --profile=nope > /dev/null 2>&1; then fail "check_config accepted a bad flag"; fi

"$CLIENT" --key_file="$work/a.key" --print_public_key > "$work/allow"
# Printing and checking never write a key: only a serving relayd creates it.
if "$RELAYD" --key_file="$work/server.key" --print_public_key > /dev/null 2> "$work/err"; then
  fail "--print_public_key without a key file succeeded"
fi
grep -q "no key file at" "$work/err" || fail "print without key: $(cat "$work/err")"
"$RELAYD" --key_file="$work/server.key" --check_config > /dev/null || fail "check_config without key"
[ ! -e "$work/server.key" ] || fail "print/check created the key file"
"$RELAYD" --key_file="$work/server.key" --listen=127.0.0.1 --port=0 \
  --admin_listen=off --run_for=0.2s 2> /dev/null || fail "first start"
key1=$("$RELAYD" --key_file="$work/server.key" --print_public_key)
[ "$(stat -c %a "$work/server.key")" = 600 ] || fail "key file mode"
# An existing key that cannot be read is an error, never replaced.
mkdir "$work/dirkey"
if "$RELAYD" --key_file="$work/dirkey" --listen=127.0.0.1 --port=0 \
    --admin_listen=off --run_for=0.2s 2> "$work/err"; then
  fail "unreadable key accepted"
fi
grep -q "not a regular file" "$work/err" || fail "unreadable key: $(cat "$work/err")"
# A group-readable key warns.
cp "$work/server.key" "$work/open.key"; chmod 644 "$work/open.key"
"$RELAYD" --key_file="$work/open.key" --check_config > /dev/null 2> "$work/err"
grep -q "warning: key file .*(mode 0644)" "$work/err" || fail "no mode warning"
key2=$("$RELAYD" --key_file="$work/server.key" --print_public_key)
[ "$key1" = "$key2" ] || fail "key changed across restarts"

# listen address | address the clients use: IPv4, IPv6, and the default
# dual-stack [::] reached over both families.
for pair in "127.0.0.1|127.0.0.1" "::1|[::1]" "::|127.0.0.1" "::|[::1]"; do
  listen=${pair%%|*}
  host=${pair#*|}
  for engine in mmsg auto; do
    log="$work/relayd-$engine-${listen//:/_}-${host//[:\[\]]/_}.log"
    "$RELAYD" --listen="$listen" --port=0 --workers=2 --engine=$engine --admin_listen=off \
      --advertise="$host" \
      --key_file="$work/server.key" --allocate_allowlist="$work/allow" 2> "$log" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
    port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$log" | head -1)
    [ -n "$port" ] || fail "relayd did not start"
    grep -q "server_key=$key1" "$log" || fail "start-up line lacks the key"
    grep -q "max_endpoints=[0-9]* (auto: a quarter of [0-9]* MiB" "$log" || fail "start-up line lacks the endpoint cap"
    relay="$host:$port"
    "$CLIENT" --relay="$relay" --server_key="$key1" --key_file="$work/a.key" \
      --seconds=0.5 --size=300 > "$work/client.out" || fail "client ($engine, $listen, $host): $(cat "$work/client.out")"
    grep -q "mismatched=0" "$work/client.out" || fail "mismatch"
    kill -TERM $pid
    wait $pid || fail "relayd exit code $? on SIGTERM"
    grep -q "final: endpoints=1 " "$log" || fail "final counters"
    grep -q "handshakes_completed=2 " "$log" || fail "handshakes"
    grep -q "send_failed=0 " "$log" || fail "failed sends"
    # Probes sent before the last Answer was processed may be not_bound;
    # any other drop is a failure.
    grep -Eq " dropped=(0|[0-9]+ \(not_bound=[0-9]+\))$" "$log" || fail "unexpected drops"
  done
done

# ---- Operator flows ----
start_relayd() {  # args: log file, extra flags
  local log="$1"; shift
  "$RELAYD" --listen=127.0.0.1 --port=0 --workers=1 --admin_listen=127.0.0.1:0 \
    --key_file="$work/server.key" "$@" 2> "$log" &
  pid=$!
  for _ in $(seq 100); do grep -q "admin API on" "$log" && break; sleep 0.05; done
  port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$log" | head -1)
  admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && [ -n "$admin" ] || fail "relayd did not start: $(cat "$log")"
}

echo "tok-1" > "$work/token"
: > "$work/allow-empty"
start_relayd "$work/ops.log" --admin_token_file="$work/token" \
  --allocate_allowlist="$work/allow-empty"
# A twin on the relay port exits 2, naming the port and the first relayd.
rc=0
"$RELAYD" --listen=127.0.0.1 --port="$port" --admin_listen=off --run_for=1s \
  2> "$work/twin.err" || rc=$?
[ "$rc" = 2 ] || fail "twin relayd exit code $rc: $(cat "$work/twin.err")"
grep -q "relayd: UDP port $port is already served by another relayd: pid $pid (relayd)" \
  "$work/twin.err" || fail "twin: $(cat "$work/twin.err")"
"$CTL" --admin="$admin" health | grep -q ok || fail "health"
# UDP allocation refused: A is not on the (empty) allowlist.
if "$CLIENT" --relay="127.0.0.1:$port" --server_key="$key1" --key_file="$work/a.key" \
     --seconds=0.2 > "$work/client.out" 2>&1; then fail "allocated without allowlist"; fi
# HTTP allocation with the token works; without it, 403.
kb=$("$CLIENT" --key_file="$work/b.key" --print_public_key)
ka=$(cat "$work/allow")
"$CTL" --admin="$admin" --token_file="$work/token" allocate "$ka" "$kb" > "$work/alloc.json" \
  || fail "relayctl allocate: $(cat "$work/alloc.json")"
grep -q '"VNI": 1' "$work/alloc.json" || fail "allocate output"
grep -q '"BindLifetime": "30s"' "$work/alloc.json" || fail "allocate lifetimes"
if "$CTL" --admin="$admin" allocate "$ka" "$kb" 2> "$work/err"; then fail "allocated without token"; fi
grep -q "HTTP 403" "$work/err" || fail "no 403: $(cat "$work/err")"
# SIGHUP: new allowlist and new token, no restart.
cp "$work/allow" "$work/allow-empty"
echo "tok-2" > "$work/token"
kill -HUP $pid
for _ in $(seq 50); do grep -q "SIGHUP: reloaded" "$work/ops.log" && break; sleep 0.05; done
grep -q "SIGHUP: reloaded allowlist (1 keys)" "$work/ops.log" || fail "no reload"
"$CLIENT" --relay="127.0.0.1:$port" --server_key="$key1" --key_file="$work/a.key" \
  --seconds=0.3 --size=100 > "$work/client.out" || fail "client after reload: $(cat "$work/client.out")"
if "$CTL" --admin="$admin" --token_file="$work/token" allocate "$kb" "$(cat "$work/allow")" > /dev/null; then :; else fail "new token refused"; fi
echo "tok-1" > "$work/old-token"
if "$CTL" --admin="$admin" --token_file="$work/old-token" allocate "$ka" "$kb" 2>/dev/null; then fail "old token still works"; fi
# The session view and the metrics show the traffic.
"$CTL" --admin="$admin" sessions > "$work/sessions.txt"
grep -q "Sessions: " "$work/sessions.txt" || fail "sessions: $(cat "$work/sessions.txt")"
grep -q "127.0.0.1:[0-9]*(d:" "$work/sessions.txt" || fail "no bound leg in sessions"
"$CTL" --admin="$admin" metrics > "$work/metrics.txt"
grep -q "^relayed_datagrams_total" "$work/metrics.txt" || fail "metrics: $(cat "$work/metrics.txt")"
grep -q "^handshakes_completed_total *2" "$work/metrics.txt" || fail "handshakes metric"
# A reload that cannot read its file (a FIFO with no writer, as a hung
# mount would) never blocks the signal loop: it fails, the old settings
# stay, and SIGTERM is still handled at once.
rm -f "$work/token"; mkfifo "$work/token"
kill -HUP $pid
for _ in $(seq 50); do grep -q "SIGHUP: reload failed" "$work/ops.log" && break; sleep 0.05; done
grep -q "SIGHUP: reload failed.*not a regular file" "$work/ops.log" || fail "fifo reload: $(tail -2 "$work/ops.log")"
"$CTL" --admin="$admin" --token_file="$work/old-token" health > /dev/null || fail "health after failed reload"
kill -TERM $pid
for _ in $(seq 40); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then fail "SIGTERM not handled after a blocked reload"; fi
wait $pid || fail "exit code on SIGTERM"
rm -f "$work/token"; echo "tok-2" > "$work/token"

# SIGUSR1 drain: no new allocations, healthz 503, exit once endpoints expire.
start_relayd "$work/drain.log" --admin_token_file="$work/token" --bind_lifetime=1s
"$CTL" --admin="$admin" --token_file="$work/token" allocate "$ka" "$kb" > /dev/null || fail "allocate"
kill -USR1 $pid
for _ in $(seq 50); do grep -q "draining" "$work/drain.log" && break; sleep 0.05; done
if "$CTL" --admin="$admin" health > /dev/null; then fail "healthy while draining"; fi
if "$CTL" --admin="$admin" --token_file="$work/token" allocate "$kb" "$(cat "$work/allow")" 2> "$work/err"; then
  fail "allocated while draining"
fi
grep -q "HTTP 500: server closed" "$work/err" || fail "drain refusal: $(cat "$work/err")"
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then fail "did not exit after draining"; fi
wait $pid || fail "drain exit code"
grep -q "drained: stopping" "$work/drain.log" || fail "drain log"

echo "relayd binary test: 1 passed, 0 failed"
