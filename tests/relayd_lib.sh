# Sourced by the end-to-end test scripts and loadtest/record_test_captures.sh.
# Needs $RELAYD, $work (a scratch
# directory holding `token` and `allow`) and a fail() function.
#
# start_relayd LISTEN [FLAG...]: starts relayd on LISTEN, a free UDP port,
# one worker, the admin API on a free loopback port; sets $pid, $port,
# $admin and $key (the server's discokey); its log is $work/relayd.log.
start_relayd() {
  local listen=$1; shift
  "$RELAYD" --listen="$listen" --port=0 --workers=1 --admin_listen=127.0.0.1:0 \
    --admin_token_file="$work/token" --allocate_allowlist="$work/allow" \
    --alloc_rate=10000 --alloc_burst=10000 --stop_timeout=0 "$@" 2> "$work/relayd.log" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/relayd.log" && break; sleep 0.05; done
  port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$work/relayd.log" | head -1)
  admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$work/relayd.log" | head -1)
  key=$(sed -n 's/.*server_key=\(discokey:[0-9a-f]*\).*/\1/p' "$work/relayd.log" | head -1)
  [ -n "$port" ] && [ -n "$admin" ] || fail "relayd did not start"
}
