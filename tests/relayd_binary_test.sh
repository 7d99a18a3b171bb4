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
pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work"/*.log 2>/dev/null || true; exit 1; }

# Bad flags, abseil's parse errors included: exit 2 and "relayd: <why>".
for args in "--profile=bogus" "--engine=dpdk" "--port=70000" \
            "--bind_lifetime=-1s" "--listen=not-an-ip" "--allocate_allowlist=/nonexistent" \
            "--admin_listen=localhost:80" "--admin_token_file=/nonexistent" "--alloc_rate=0" \
            "extra-argument" "--bogus_flag=1" "--port=abc" "--workers" "--bind_lifetime=5" \
            "--log_level=loud" "--metrics_listen=nowhere" "--flagfile=/nonexistent" \
            "--uring_sends=fast" "--uring_max_sqe_sends=0" "--napi_busy_poll_us=2000000"; do
  rc=0
  "$RELAYD" $args --key_file="$work/k" > "$work/out" 2>&1 || rc=$?
  [ "$rc" = 2 ] || fail "relayd $args: exit code $rc, want 2"
  grep -q "^relayd: " "$work/out" || fail "no 'relayd:' message for $args: $(cat "$work/out")"
  if grep -q "^ERROR" "$work/out"; then fail "abseil's own message for $args"; fi
done
# NAPI busy polling (NIC deployments): accepted on Linux 6.9+, refused with a
# warning (and relayd runs on) before; never a failure to start.
rc=0
"$RELAYD" --engine=io_uring --napi_busy_poll_us=50 --listen=127.0.0.1 --port=0 \
  --admin_listen=off --workers=1 --run_for=500ms > "$work/napi.log" 2>&1 || rc=$?
if grep -q "io_uring engine requested but unavailable" "$work/napi.log"; then
  echo "relayd test: io_uring unavailable, NAPI option not checked"
else
  [ "$rc" = 0 ] || fail "relayd with --napi_busy_poll_us exited $rc: $(cat "$work/napi.log")"
  kernel=$(uname -r | awk -F. '{print $1 * 100 + $2}')
  if [ "$kernel" -ge 609 ]; then
    grep -q "NAPI busy polling on: 50 us" "$work/napi.log" || fail "NAPI refused on $(uname -r): $(cat "$work/napi.log")"
  else
    grep -q "NAPI busy polling refused" "$work/napi.log" || fail "no NAPI warning on $(uname -r)"
  fi
fi
"$RELAYD" --bind_lifetime=5 > "$work/out" 2>&1 || true
grep -q "relayd: --bind_lifetime=5: a duration needs a unit, e.g. 5s" "$work/out" \
  || fail "duration without a unit: $(cat "$work/out")"
"$RELAYD" --admin_token_file=/nonexistent --check_config > "$work/out" 2>&1 || true
grep -q "^relayd: cannot read /nonexistent: no such file$" "$work/out" || fail "missing secret: $(cat "$work/out")"
"$RELAYD" --admin_token_file=credential:admin_token --check_config > "$work/out" 2>&1 || true
grep -q "CREDENTIALS_DIRECTORY is not set" "$work/out" || fail "credential without systemd"
# A secret the service user may not read: the message names both sides.
if [ "$(id -u)" = 0 ] && setpriv --reuid=65534 --regid=65534 --clear-groups true 2> /dev/null; then
  echo "tok" > "$work/root-token"; chmod 600 "$work/root-token"; chmod 755 "$work"
  cp "$RELAYD" "$work/relayd-copy"  # the build tree may not be reachable for uid 65534
  setpriv --reuid=65534 --regid=65534 --clear-groups "$work/relayd-copy" \
    --admin_token_file="$work/root-token" --check_config > "$work/out" 2>&1 || true
  grep -q "permission denied (this process runs as uid 65534 gid 65534; the file is owned by uid 0 gid 0 with mode 0600)" \
    "$work/out" || fail "permission message: $(cat "$work/out")"
else
  echo "relayd binary test: skipping the permission-denied message (not root, or no other uid here)"
fi
# systemd credentials: credential:NAME is read from $CREDENTIALS_DIRECTORY.
mkdir "$work/creds"; echo "cred-token" > "$work/creds/admin_token"
CREDENTIALS_DIRECTORY="$work/creds" "$RELAYD" --admin_token_file=credential:admin_token \
  --check_config > "$work/out" || fail "credential check"
grep -q "HTTP allocation token required" "$work/out" || fail "credential token"

# --help / -h (exit 0, signals, flag file, admin API), --version (commit).
for h in --help -h; do
  "$RELAYD" $h > "$work/help" || fail "$h exit code"
  for want in SIGHUP SIGUSR1 --flagfile /v0/relay/endpoint --metrics_listen --log_level; do
    grep -q -- "$want" "$work/help" || fail "$h lacks $want"
  done
done
"$RELAYD" --version | grep -Eq "^relayd [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-f]{12}(-dirty)?|unknown\)" \
  || fail "version: $("$RELAYD" --version)"

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
# The advertised list, with what is wrong with each address.
"$RELAYD" --check_config --advertise=203.0.113.7,10.1.2.3:9,[fd00::1],127.0.0.1,100.101.102.103 > "$work/check.out"
grep -q "advertised addresses (from --advertise):" "$work/check.out" || fail "advertise list"
grep -q "^  203.0.113.7:7777$" "$work/check.out" || fail "public address: $(cat "$work/check.out")"
grep -q "^  10.1.2.3:9  (private (RFC 1918): " "$work/check.out" || fail "private address"
grep -q "^  \[fd00::1\]:7777  (unique local (ULA): " "$work/check.out" || fail "ULA address"
grep -q "^  127.0.0.1:7777  (loopback: " "$work/check.out" || fail "loopback address"
# 100.64.0.0/10 is named as what it most likely is on such a host.
grep -q "^  100.101.102.103:7777  (shared (RFC 6598 CGNAT; also Tailscale's range: on a host running tailscaled, probably its tailnet address" \
  "$work/check.out" || fail "CGNAT address: $(cat "$work/check.out")"
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
# The fd limit: the soft limit is raised to the hard one; what the admin
# listeners may hold is clamped to it with a warning (else accept would hit
# EMFILE under a connection flood).
prlimit --nofile=1024:1024 "$RELAYD" --listen=127.0.0.1 --port=0 --admin_listen=127.0.0.1:0 \
  --run_for=0.3s 2> "$work/fd.log" || fail "relayd under a 1024 fd limit: $(cat "$work/fd.log")"
grep -q "warning: file descriptor limit 1024: admin HTTP connections capped at 768 per listener" \
  "$work/fd.log" || fail "fd clamp warning: $(cat "$work/fd.log")"
prlimit --nofile=1024:8192 "$RELAYD" --listen=127.0.0.1 --port=0 --admin_listen=127.0.0.1:0 \
  --run_for=0.3s 2> "$work/fd.log" || fail "relayd with a raisable fd limit"
if grep -q "capped at" "$work/fd.log"; then fail "soft fd limit not raised: $(cat "$work/fd.log")"; fi

# A reload of a large allowlist (14 000 keys: one Curve25519 each, ~0.7 s)
# computes on the reload's thread: a SIGTERM 400 ms after the SIGHUP is
# handled at once, before the reload ends. (It used to wait: the signal
# loop, which wakes every 200 ms, computed the keys itself.)
python3 -c 'import os
for _ in range(14000): print("discokey:" + os.urandom(32).hex())' > "$work/big.allow"
: > "$work/small.allow"
"$RELAYD" --listen=127.0.0.1 --port=0 --admin_listen=off --allocate_allowlist="$work/small.allow" \
  2> "$work/reload.log" &
rpid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/reload.log" && break; sleep 0.05; done
cp "$work/big.allow" "$work/small.allow"
kill -HUP $rpid
sleep 0.4
kill -TERM $rpid
wait $rpid || true
stop_line=$(grep -n "Terminated: stopping" "$work/reload.log" | cut -d: -f1)
reload_line=$(grep -n "SIGHUP: reloaded allowlist" "$work/reload.log" | cut -d: -f1 || true)
[ -n "$stop_line" ] || fail "no stop line: $(cat "$work/reload.log")"
if [ -n "$reload_line" ] && [ "$reload_line" -lt "$stop_line" ]; then
  fail "SIGTERM waited for the allowlist's key computations: $(cat "$work/reload.log")"
fi

# The port guard cannot be squatted: python3 holding the guard's abstract
# name and a socket on 127.0.0.2:P do not stop a relayd on 127.0.0.1:P; the
# log names the squatter.
sq_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -c '
import socket, sys, time
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind("\0peerrelay-relayd-udp-" + sys.argv[1]); u.listen(8)
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.bind(("127.0.0.2", int(sys.argv[1])))
print("ready", flush=True); time.sleep(30)' "$sq_port" > "$work/squat.out" &
squat_pid=$!
for _ in $(seq 100); do grep -q ready "$work/squat.out" && break; sleep 0.05; done
"$RELAYD" --listen=127.0.0.1 --port="$sq_port" --admin_listen=off --run_for=0.3s 2> "$work/squat.log" \
  || fail "relayd refused by a squatter: $(cat "$work/squat.log")"
grep -q "warning: the guard name of UDP port $sq_port .* is held by pid $squat_pid (python3" \
  "$work/squat.log" || fail "squatter not named: $(cat "$work/squat.log")"
# The wildcard listen address does collide with the socket on 127.0.0.2.
if "$RELAYD" --port="$sq_port" --admin_listen=off --run_for=0.3s 2> "$work/squat2.log"; then
  fail "relayd on [::]:$sq_port beside a socket on 127.0.0.2"
fi
grep -q "already in use by pid $squat_pid (python3)" "$work/squat2.log" \
  || fail "wildcard conflict: $(cat "$work/squat2.log")"
kill $squat_pid; wait $squat_pid 2>/dev/null || true

start_relayd() {  # args: log file, extra flags
  local log="$1"; shift
  "$RELAYD" --listen=127.0.0.1 --port=0 --workers=1 --admin_listen=127.0.0.1:0 \
    --key_file="$work/server.key" --stop_timeout=0 "$@" 2> "$log" &
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
# Ready with only a loopback address, saying so.
[ "$("$CTL" --admin="$admin" health)" = "ok (advertising only non-global addresses: reachable only from their networks; set --advertise for a public relay)" ] \
  || fail "health: $("$CTL" --admin="$admin" health)"
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
if "$CTL" --admin="$admin" sessions 2> "$work/err"; then fail "sessions without a token"; fi
grep -q "HTTP 403" "$work/err" || fail "sessions 403: $(cat "$work/err")"
"$CTL" --admin="$admin" --token_file="$work/token" sessions > "$work/sessions.txt"
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
grep -q "HTTP 503: draining: this relay takes no new allocations" "$work/err" || fail "drain refusal: $(cat "$work/err")"
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then fail "did not exit after draining"; fi
wait $pid || fail "drain exit code"
grep -q "notice: drained: exiting (0 endpoints left)" "$work/drain.log" || fail "drain log: $(tail -3 "$work/drain.log")"

# ---- Logs ----
# Every line: UTC timestamp, program, level. Start-up warnings say what to do.
"$RELAYD" --listen=127.0.0.1 --port=0 --admin_listen=off --run_for=0.3s 2> "$work/plain.log" \
  || fail "plain start"
bad_lines=$(grep -Evc '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z relayd: (error|warning|notice|info|debug): ' \
  "$work/plain.log" || true)
[ "$bad_lines" = 0 ] || fail "log lines without timestamp/level: $(cat "$work/plain.log")"
grep -q "warning: no --key_file" "$work/plain.log" || fail "no key-file warning"
grep -q "warning: advertising 127.0.0.1:[0-9]*, a loopback address taken from --listen" \
  "$work/plain.log" || fail "no loopback advertise warning"
grep -q "info: relayd [0-9.]* (commit .*) starting" "$work/plain.log" || fail "no version line"
# Under journald (stderr is the stream $JOURNAL_STREAM names): "<N>" priorities.
: > "$work/journal.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$work/journal.log") "$RELAYD" --listen=127.0.0.1 --port=0 \
  --admin_listen=off --run_for=0.3s 2>> "$work/journal.log" || fail "journald start"
grep -q "^<4>warning: no --key_file" "$work/journal.log" || fail "journald warning: $(cat "$work/journal.log")"
grep -q "^<6>info: listening on" "$work/journal.log" || fail "journald info"
if grep -Eqv '^<[3-7]>(error|warning|notice|info|debug): ' "$work/journal.log"; then
  fail "journald line without a priority: $(cat "$work/journal.log")"
fi
# A bad flag under journald is an error (<3>) too.
: > "$work/journal.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$work/journal.log") "$RELAYD" --port=-1 2>> "$work/journal.log" || true
grep -q "^<3>relayd: --port must be 0..65535" "$work/journal.log" || fail "journald usage error"

# --log_level from the flag file, reloaded by SIGHUP: allocations at info,
# handshakes at debug only after the reload.
printf -- "--log_level=info\n--admin_token_file=%s\n" "$work/token" > "$work/level.flags"
start_relayd "$work/level.log" --flagfile="$work/level.flags" --allocate_allowlist="$work/allow"
"$CLIENT" --relay="127.0.0.1:$port" --server_key="$key1" --key_file="$work/a.key" \
  --seconds=0.2 --size=100 > /dev/null || fail "client at info"
# (The key file persists, so Lamport IDs continue from earlier runs.)
grep -qE "info: allocation: VNI 1 \(lamport [0-9]+\) for d:" "$work/level.log" || fail "allocation not logged"
if grep -q "debug:" "$work/level.log"; then fail "debug line at info level"; fi
printf -- "--log_level=debug\n--admin_token_file=%s\n" "$work/token" > "$work/level.flags"
kill -HUP $pid
for _ in $(seq 50); do grep -q "log level info -> debug" "$work/level.log" && break; sleep 0.05; done
grep -q "notice: SIGHUP: log level info -> debug" "$work/level.log" || fail "level reload: $(tail -3 "$work/level.log")"
"$CLIENT" --relay="127.0.0.1:$port" --server_key="$key1" --key_file="$work/a.key" \
  --seconds=0.2 --size=100 > /dev/null || fail "client at debug"
grep -q "debug: handshake: VNI [0-9]* side [ab] bound to 127.0.0.1:" "$work/level.log" \
  || fail "handshake not logged at debug: $(tail -5 "$work/level.log")"
printf -- "--log_level=chatty\n" > "$work/level.flags"
kill -HUP $pid
for _ in $(seq 50); do grep -q "reload failed" "$work/level.log" && break; sleep 0.05; done
grep -q "error: SIGHUP: reload failed, keeping the old settings: --log_level=chatty" "$work/level.log" \
  || fail "bad level reload: $(tail -2 "$work/level.log")"
kill -TERM $pid; wait $pid || fail "exit after level reloads"

# ---- Listeners, relayctl, drain over the API ----
start_relayd "$work/api.log" --admin_token_file="$work/token" --metrics_listen=127.0.0.1:0 \
  --allocate_allowlist="$work/allow" --bind_lifetime=1s --steady_state_lifetime=1s
metrics=$(sed -n 's/.*metrics on \([0-9.:]*\).*/\1/p' "$work/api.log" | head -1)
[ -n "$metrics" ] || fail "no metrics listener: $(cat "$work/api.log")"
grep -q "^peerrelay_received_datagrams_total" <<< "$(curl -sf "http://$metrics/metrics")" || fail "metrics listener"
grep -q ok <<< "$(curl -sf "http://$metrics/readyz")" || fail "readyz on metrics listener"
grep -q alive <<< "$(curl -sf "http://$metrics/livez")" || fail "livez on metrics listener"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer tok-2" "http://$metrics/v0/relay/sessions")
[ "$code" = 404 ] || fail "sessions on the metrics listener: $code"
# relayctl: help, errors naming address and reason.
grep -q "drain" <<< "$("$CTL" help)" || fail "relayctl help"
grep -q "sessions \[--json\]" <<< "$("$CTL" --help)" || fail "relayctl --help"
rc=0; "$CTL" frobnicate 2> "$work/err" || rc=$?
[ "$rc" = 2 ] && grep -q "unknown command 'frobnicate'" "$work/err" || fail "relayctl bad command ($rc)"
if "$CTL" --admin=127.0.0.1:1 health 2> "$work/err"; then fail "health of nothing"; fi
grep -q "^relayctl: connect 127.0.0.1:1: connection refused$" "$work/err" || fail "unreachable: $(cat "$work/err")"
# A client binds; the session list filters and prints JSON.
"$CLIENT" --relay="127.0.0.1:$port" --server_key="$key1" --key_file="$work/a.key" \
  --seconds=0.2 --size=100 > /dev/null || fail "client for sessions"
ka_hex=${ka#discokey:}
"$CTL" --admin="$admin" --token_file="$work/token" sessions --json --key="${ka_hex:0:10}" > "$work/s.json"
grep -q '"Count": 1,' "$work/s.json" && grep -q '"Sessions": \[' "$work/s.json" \
  || fail "sessions --json --key: $(cat "$work/s.json")"
grep -q "^Sessions: 0$" <<< "$("$CTL" --admin="$admin" --token_file="$work/token" sessions --addr=192.0.2.1)" \
  || fail "sessions --addr filter"
grep -q "^Sessions: 1$" <<< "$("$CTL" --admin="$admin" --token_file="$work/token" sessions --addr=127.0.0.1)" \
  || fail "sessions --addr match"
# Every documented filter form through relayctl, colons included (relayctl
# percent-encodes them; relayd decodes query values).
bound=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["Sessions"][0]["Clients"]; print([c["Endpoint"] for c in s if c["Endpoint"]][0])' "$work/s.json")
for filter in "--key=d:${ka_hex:0:16}" "--key=discokey:$ka_hex" "--key=$ka_hex" "--key=${ka_hex:0:6}" \
              "--addr=$bound" "--addr=127.0.0.1" "--addr=127.0.0.1:${bound##*:}"; do
  out=$("$CTL" --admin="$admin" --token_file="$work/token" sessions "$filter" 2>&1) \
    || fail "relayctl sessions $filter: $out"
  grep -q "^Sessions: 1$" <<< "$out" || fail "relayctl sessions $filter: $out"
done
for filter in "--key=d:ffffffffffffffff" "--addr=127.0.0.1:1"; do
  grep -q "^Sessions: 0$" <<< "$("$CTL" --admin="$admin" --token_file="$work/token" sessions "$filter")" \
    || fail "relayctl sessions $filter matched"
done
# relayctl drain: needs the token; then what SIGUSR1 does, with progress logged.
if "$CTL" --admin="$admin" --token_file=/dev/null drain 2> /dev/null; then fail "drain without token"; fi
grep -q "draining: 1 endpoints left" <<< "$("$CTL" --admin="$admin" --token_file="$work/token" drain)" \
  || fail "relayctl drain"
for _ in $(seq 50); do grep -q "notice: SIGUSR1: draining:" "$work/api.log" && break; sleep 0.05; done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$metrics/readyz")
[ "$code" = 503 ] || fail "readyz while draining: $code"
curl -s -D "$work/hdr" -o /dev/null -H "Authorization: Bearer tok-2" -d "{\"DiscoKeys\":[\"$ka\",\"$kb\"]}" \
  "http://$admin/v0/relay/endpoint"
grep -q "^HTTP/1.1 503" "$work/hdr" && grep -qi "^Retry-After: 30" "$work/hdr" || fail "allocation while draining: $(cat "$work/hdr")"
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then fail "did not exit after relayctl drain"; fi
wait $pid || fail "exit code after relayctl drain"
grep -q "notice: drained: exiting (0 endpoints left)" "$work/api.log" || fail "drain end: $(tail -3 "$work/api.log")"
grep -q "info: expired 1 endpoints, 0 left" "$work/api.log" || fail "expiry not logged"

# ---- Lifecycle: stop drains for --stop_timeout, drain --restart exits 75 ----
bind_one() {  # a client binds through the relay: one live endpoint
  "$CLIENT" --relay="127.0.0.1:$port" --server_key="$key1" --key_file="$work/a.key" \
    --seconds=0.2 --size=100 > /dev/null || fail "client: $(tail -3 "$1")"
}
# SIGTERM with a live endpoint: a drain (readyz 503, allocations 503) that
# ends at --stop_timeout with exit 0, the endpoint cut.
start_relayd "$work/stop.log" --admin_token_file="$work/token" --allocate_allowlist="$work/allow" \
  --stop_timeout=2s
bind_one "$work/stop.log"
t0=$(date +%s%N)
kill -TERM $pid
for _ in $(seq 50); do grep -q "SIGTERM: draining" "$work/stop.log" && break; sleep 0.05; done
grep -q "notice: SIGTERM: draining: 1 endpoints left; no new allocations; stop when none is left or in 2s" \
  "$work/stop.log" || fail "SIGTERM drain: $(tail -2 "$work/stop.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$admin/readyz")
[ "$code" = 503 ] || fail "readyz while stopping: $code"
if "$CTL" --admin="$admin" --token_file="$work/token" allocate "$ka" "$kb" 2> "$work/err"; then
  fail "allocated while stopping"
fi
wait $pid || fail "exit code after the stop drain"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -ge 1800 ] && [ "$ms" -le 4000 ] || fail "stop drain took ${ms} ms, want about 2000"
grep -q "notice: drained: stopping (1 endpoints left, cut at the timeout)" "$work/stop.log" \
  || fail "stop drain end: $(tail -2 "$work/stop.log")"
# A second SIGTERM stops at once.
start_relayd "$work/stop2.log" --admin_token_file="$work/token" --allocate_allowlist="$work/allow" \
  --stop_timeout=60s
bind_one "$work/stop2.log"
kill -TERM $pid
for _ in $(seq 50); do grep -q "SIGTERM: draining" "$work/stop2.log" && break; sleep 0.05; done
kill -TERM $pid
for _ in $(seq 40); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then fail "a second SIGTERM did not stop relayd"; fi
wait $pid || fail "exit code after two SIGTERMs"
grep -q "notice: Terminated: stopping now (1 endpoints cut)" "$work/stop2.log" \
  || fail "second SIGTERM: $(tail -2 "$work/stop2.log")"
# relayctl drain --restart: relaying goes on, then exit 75 (the unit
# restarts it); SIGUSR2 is the same drain.
start_relayd "$work/restart.log" --admin_token_file="$work/token" --allocate_allowlist="$work/allow" \
  --bind_lifetime=1s --steady_state_lifetime=1s
bind_one "$work/restart.log"
grep -q "draining: 1 endpoints left; then restart" \
  <<< "$("$CTL" --admin="$admin" --token_file="$work/token" drain --restart)" || fail "relayctl drain --restart"
rc=0; wait $pid || rc=$?
[ "$rc" = 75 ] || fail "drain --restart exit code $rc: $(tail -3 "$work/restart.log")"
grep -q "notice: drained: exiting 75 to be started again (0 endpoints left)" "$work/restart.log" \
  || fail "restart drain log: $(tail -3 "$work/restart.log")"
start_relayd "$work/usr2.log" --admin_token_file="$work/token"
kill -USR2 $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 75 ] || fail "SIGUSR2 exit code $rc: $(tail -3 "$work/usr2.log")"

# ---- relayctl reload: waits for the result, fails when the reload failed ----
cp "$work/allow" "$work/reload-allow"
start_relayd "$work/reload.log" --admin_token_file="$work/token" \
  --allocate_allowlist="$work/reload-allow" --status_file="$work/status"
grep -q "^pid=$pid$" "$work/status" && grep -q "^state=serving$" "$work/status" \
  || fail "status file: $(cat "$work/status")"
out=$("$CTL" reload --status_file="$work/status" 2>&1) || fail "relayctl reload: $out"
[ "$out" = "relayd $pid: reloaded allowlist (1 keys) and tokens" ] || fail "reload output: $out"
echo "not-a-key" >> "$work/reload-allow"
rc=0; out=$("$CTL" reload --status_file="$work/status" --pid=$pid 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "failed reload exit code $rc: $out"
grep -q "^relayctl: reload: reload failed, keeping the old settings: .*reload-allow:2:" <<< "$out" \
  || fail "failed reload output: $out"
grep -q "^reload_result=failed$" "$work/status" || fail "status after a failed reload: $(cat "$work/status")"
cp "$work/allow" "$work/reload-allow"
"$CTL" reload --status_file="$work/status" > /dev/null || fail "reload after the fix"
rc=0; out=$("$CTL" reload --status_file="$work/status" --pid=1 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "is relayd pid $pid's, not 1's" <<< "$out" || fail "reload of pid 1: $rc $out"
rc=0; out=$("$CTL" reload --status_file="$work/nope" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "cannot read relayd's status file" <<< "$out" || fail "reload without status: $out"
# Ten reloads at once: each caller sees a reload that began after its
# signal, and all succeed.
for i in $(seq 10); do "$CTL" reload --status_file="$work/status" > "$work/r$i.out" 2>&1 & done
wait_ok=0
for job in $(jobs -p); do [ "$job" = "$pid" ] && continue; wait "$job" || wait_ok=1; done
[ "$wait_ok" = 0 ] || fail "concurrent reloads: $(cat "$work"/r*.out)"
kill -TERM $pid; wait $pid || fail "exit after reloads"

# ---- The endpoint cap follows a cgroup's memory limit (a container's) ----
cg=""
if [ -w /sys/fs/cgroup/memory ]; then
  cg=/sys/fs/cgroup/memory/relayd-test-$$; limit_file=memory.limit_in_bytes
elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2> /dev/null; then
  cg=/sys/fs/cgroup/relayd-test-$$; limit_file=memory.max
fi
if [ -n "$cg" ] && mkdir "$cg" 2> /dev/null; then
  echo $((64 << 20)) > "$cg/$limit_file"
  sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" --listen=127.0.0.1 --port=0 --admin_listen=off --run_for=0.3s' \
    _ "$cg" "$RELAYD" 2> "$work/cgroup.log" || true
  rmdir "$cg" 2> /dev/null || true
  grep -q "max_endpoints=16384 (auto: a quarter of 64 MiB, the cgroup's memory limit, at ~1 KiB per endpoint)" \
    "$work/cgroup.log" || fail "cgroup memory cap: $(grep -o 'max_endpoints=.*' "$work/cgroup.log")"
else
  echo "relayd binary test: no writable memory cgroup here: the cgroup cap is not checked"
fi

# ---- relayctl finds relayd the way relayd is configured ----
aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf -- "--admin_listen=0.0.0.0:%s\n--admin_token_file=%s\n" "$aport" "$work/token" > "$work/ctl.flags"
"$RELAYD" --listen=127.0.0.1 --port=0 --workers=1 --flagfile="$work/ctl.flags" 2> "$work/ctl.log" &
pid=$!
for _ in $(seq 100); do grep -q "admin API on" "$work/ctl.log" && break; sleep 0.05; done
grep -q "^Sessions: 0$" <<< "$("$CTL" --relayd_flags="$work/ctl.flags" sessions 2>&1)" \
  || fail "relayctl with relayd's flag file: $("$CTL" --relayd_flags="$work/ctl.flags" sessions 2>&1)"
printf -- "--admin_listen=off\n" > "$work/off.flags"
rc=0; out=$("$CTL" --relayd_flags="$work/off.flags" health 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "relayd's admin API is off (--admin_listen=off in $work/off.flags)" <<< "$out" \
  || fail "relayctl with the admin API off: $out"
kill -TERM $pid; wait $pid || fail "exit after relayctl discovery"

echo "relayd binary test: 1 passed, 0 failed"
