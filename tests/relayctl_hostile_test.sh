#!/usr/bin/env bash
# relayctl against a hostile "relayd": well-formed HTTP carrying replies
# relayd never sends (wrong types, missing fields, out-of-range numbers,
# sessions without clients, bad metrics lines, invalid UTF-8, 256 MiB).
# Every one must end in "relayctl: bad reply from ADDR: ..." and exit 1: no
# abort, no crash, and memory bounded by the reply cap.
set -euo pipefail
RELAYCTL="$1"
work=$(mktemp -d)
server_pid=
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The server answers every request with 200 and $work/body ("BIG": 256 MiB).
cat > "$work/server.py" <<'PY'
import http.server, sys, os
body_file = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def reply(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        body = open(body_file, "rb").read()
        self.send_response(200)
        if body == b"BIG":
            size = 256 << 20
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"[" * (1 << 20)
            try:
                for _ in range(256): self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = reply
    do_POST = reply
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
: > "$work/body"
python3 "$work/server.py" "$work/body" > "$work/port" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
[ -n "$port" ] || fail "server did not start"
admin="127.0.0.1:$port"
echo tok > "$work/token"

cases=0
check() {  # COMMAND BODY...
  local cmd=$1; shift
  printf '%s' "$1" > "$work/body"
  local rc=0
  /usr/bin/time -f '%M' -o "$work/rss" "$RELAYCTL" --admin="$admin" --token_file="$work/token" \
    $cmd > "$work/out" 2> "$work/err" || rc=$?
  [ "$rc" = 1 ] || fail "relayctl $cmd on '${1:0:60}': exit $rc, want 1: $(cat "$work/err")"
  grep -q "^relayctl: bad reply from $admin: " "$work/err" \
    || fail "relayctl $cmd on '${1:0:60}': $(cat "$work/err")"
  [ ! -s "$work/out" ] || fail "relayctl $cmd printed something for a bad reply: $(head -3 "$work/out")"
  cases=$((cases + 1))
}

ok='"ServerPort":7777,"Count":1'
client='{"Endpoint":null,"ShortDisco":"d:00","PacketsFromClient":0,"BytesFromClient":0}'
check sessions '[]'
check sessions '"just a string"'
check sessions '{"ServerPort":"7777","Count":0,"Sessions":[]}'
check sessions '{"ServerPort":7777,"Count":-1,"Sessions":[]}'
check sessions '{"ServerPort":99999,"Count":0,"Sessions":[]}'
check sessions '{"ServerPort":1e400,"Count":0,"Sessions":[]}'
check sessions '{"Sessions":[{"Clients":[]}]}'
check sessions "{$ok,\"Sessions\":[{\"Clients\":[]}]}"
check sessions "{$ok,\"Sessions\":{}}"
check sessions "{$ok,\"Sessions\":[{\"Clients\":[$client]}]}"
check sessions "{$ok,\"Sessions\":[{\"Clients\":[{},{}]}]}"
check sessions "{$ok,\"Sessions\":[{\"Clients\":[$client,$client]}]}"   # no VNI
check sessions "{$ok,\"Sessions\":[{\"VNI\":\"1\",\"LamportID\":1,\"AgeSeconds\":0,\"Clients\":[$client,$client]}]}"
check sessions "{$ok,\"Sessions\":[{\"VNI\":1,\"LamportID\":1,\"AgeSeconds\":0,\"Clients\":[$client,{\"Endpoint\":5,\"ShortDisco\":\"d:00\",\"PacketsFromClient\":0,\"BytesFromClient\":0}]}]}"
check sessions 'BIG'
check metrics $'peerrelay_x_total abc\n'
check metrics $'peerrelay_x_total\n'
check metrics $'peerrelay_x_total 1e99999\n'
check "allocate a b" '{"VNI":"1"}' 
check "allocate a b" '[1,2]'
check "allocate a b" $'{"ServerDisco":"discokey:\xff\xfe","VNI":3,"AddrPorts":["127.0.0.1:7777"]}'
# Well-formed replies still work (the checks are not simply failing).
printf '{"ServerPort":7777,"Count":1,"Sessions":[{"VNI":3,"LamportID":9,"AgeSeconds":1,"Clients":[%s,%s]}]}' \
  "$client" "$client" > "$work/body"
"$RELAYCTL" --admin="$admin" --token_file="$work/token" sessions > "$work/out" 2>&1 \
  || fail "a good session list: $(cat "$work/out")"
grep -q "VNI 3 (lamport 9" "$work/out" || fail "good session list: $(cat "$work/out")"
printf '{"ServerDisco":"discokey:00","VNI":3,"AddrPorts":["127.0.0.1:7777"]}' > "$work/body"
"$RELAYCTL" --admin="$admin" --token_file="$work/token" allocate a b > "$work/out" 2>&1 \
  || fail "a good allocation reply: $(cat "$work/out")"
grep -q '"VNI": 3' "$work/out" || fail "good allocation reply: $(cat "$work/out")"
# The 256 MiB reply stayed within the cap's memory (16 MiB and the binary).
printf 'BIG' > "$work/body"
/usr/bin/time -f '%M' -o "$work/rss" "$RELAYCTL" --admin="$admin" --token_file="$work/token" sessions \
  > /dev/null 2> "$work/err" || true
grep -q "larger than 16 MiB" "$work/err" || fail "256 MiB reply: $(cat "$work/err")"
rss=$(tail -1 "$work/rss")
[ "$rss" -lt 102400 ] || fail "relayctl peaked at $rss KiB on a 256 MiB reply"
echo "relayctl hostile replies: $cases refused cleanly, 256 MiB reply peaked at $rss KiB"
echo "relayctl_hostile_test: 1 passed, 0 failed"
