#!/usr/bin/env bash
# The shipped configuration: tools/relayd.flags names every relayd flag with
# its real default and is accepted as it is; tools/relayd.service runs it
# and scores 2.0 or better in `systemd-analyze security`, with the io_uring
# system calls inside its filter.
set -euo pipefail
RELAYD="$1"
FLAGS="$2"
UNIT="$3"
XDP_DROPIN="$4"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Every flag of `relayd --help` appears in the file, with its default.
"$RELAYD" --help > "$work/help"
n=0
while IFS= read -r line; do
  name=${line%%=*}; name=${name#  --}
  n=$((n + 1))
  grep -Eq -- "^(# )?--$name(=| |\$)" "$FLAGS" || fail "--$name missing from relayd.flags"
done < <(grep -E '^  --[a-z_]+=' "$work/help")
[ "$n" -ge 25 ] || fail "only $n flags in --help"
# Every commented-out default is the real one.
while IFS= read -r line; do
  name=${line#\# --}; value=${name#*=}; name=${name%%=*}
  real=$(grep -E -- "^  --$name=" "$work/help" | head -1); real=${real#*=}
  [ "$real" = '""' ] && real=""
  case "$name" in advertise|admin_token_file|admin_read_token_file|metrics_listen|capture_file) continue ;; esac
  [ "$value" = "$real" ] || fail "relayd.flags says --$name=$value, the default is '$real'"
done < <(grep -E '^# --[a-z_]+=[^ ]*$' "$FLAGS")

# The file as shipped is valid (its paths moved to a scratch directory).
sed -e "s|/var/lib/relayd/key|$work/key|" -e "s|/etc/relayd/allowlist|$work/allow|" \
  -e "s|/etc/relayd/admin_token|$work/admin_token|" -e "s|/etc/relayd/bridge_token|$work/bridge_token|" \
  "$FLAGS" > "$work/relayd.flags"
: > "$work/allow"
echo admin > "$work/admin_token"
echo bridge > "$work/bridge_token"
"$RELAYD" --flagfile="$work/relayd.flags" --check_config > "$work/out" \
  || fail "relayd.flags rejected: $(cat "$work/out")"
grep -q "config ok: port 7777" "$work/out" || fail "check output: $(cat "$work/out")"
# The shipped file names the token files: the unit passes nothing else, so
# --check_config sees what the unit runs.
grep -q "HTTP allocation token required" "$work/out" || fail "no token in relayd.flags: $(cat "$work/out")"
grep -qF "ExecReload=/usr/bin/relayctl reload --pid=\${MAINPID} " "$UNIT" || fail "unit ExecReload"
grep -q "^RestartPreventExitStatus=2$" "$UNIT" || fail "unit restarts on bad flags"

# The unit runs the flag file, and its hardening holds.
grep -q "^ExecStart=/usr/bin/relayd --flagfile=/etc/relayd/relayd.flags" "$UNIT" || fail "unit ExecStart"
if command -v systemd-analyze > /dev/null; then
  score=$( (systemd-analyze security --offline=true "$UNIT" 2>/dev/null || true) \
          | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || fail "no score from systemd-analyze"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0"
  # io_uring stays allowed: in @system-service (via @aio), not in what the
  # unit takes away.
  allowed=$(systemd-analyze syscall-filter @system-service @aio 2>/dev/null)
  denied=$(systemd-analyze syscall-filter @privileged @obsolete 2>/dev/null)
  for call in io_uring_setup io_uring_enter io_uring_register; do
    grep -qw "$call" <<< "$allowed" || fail "$call not in @system-service"
    if grep -qw "$call" <<< "$denied"; then fail "$call denied by the unit"; fi
  done
  echo "config files test: unit exposure $score"
else
  echo "config files test: systemd-analyze absent, unit score not checked"
fi
# XDP's privileges come only with its drop-in: the unit grants neither
# capability nor bpf(); the drop-in grants both and nothing else.
grep -Eq "CAP_BPF|CAP_NET_ADMIN" <(grep -v '^#' "$UNIT") && fail "the unit grants XDP's capabilities"
grep -q "^CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_BPF CAP_NET_ADMIN$" "$XDP_DROPIN" || fail "drop-in bounding set"
grep -q "^AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_BPF CAP_NET_ADMIN$" "$XDP_DROPIN" || fail "drop-in ambient set"
grep -q "^SystemCallFilter=bpf$" "$XDP_DROPIN" || fail "drop-in does not allow bpf()"
[ "$(grep -cv -e '^#' -e '^$' "$XDP_DROPIN")" = 4 ] || fail "drop-in sets more than [Service] and its three lines"
if command -v systemd-analyze > /dev/null; then
  # bpf() is one of the calls the unit denies, so the drop-in must allow it.
  grep -qw bpf <(systemd-analyze syscall-filter @privileged 2>/dev/null) \
    || fail "bpf no longer in @privileged: revisit relayd-xdp.conf"
fi
echo "config files test: 1 passed, 0 failed"
