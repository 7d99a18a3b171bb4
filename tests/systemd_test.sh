#!/usr/bin/env bash
# relayd under a real systemd: a Debian 12 container booted by
# systemd-nspawn (systemd 252 as its PID 1, loopback only), the .deb
# installed in it, and the lifecycle an operator uses, with loadgen traffic
# flowing where it matters:
#   - the package enables the unit; bad flags (exit 2) end in `failed`
#     without restarts, the reason in `systemctl status`
#   - token rotation: a new /etc/relayd/admin_token + `systemctl reload`;
#     the new token works, the old one is refused, relayctl agrees
#   - `systemctl reload` fails when the reload failed
#   - --check_config and relayctl see what the unit runs
#   - an upgrade (reinstall) under traffic does not restart relayd: same
#     pid, nothing lost, no unknown_vni drops; postinst says how to switch
#   - rolling restart: relayctl drain --restart under traffic relays on
#     until --drain_timeout, exits 75, systemd starts a fresh relayd
#   - removal: relayctl drain, endpoints expire, exit 0, the unit stays down
#   - systemctl stop under traffic: drains for --stop_timeout, then stops
#   - purge leaves no unit, user file or token behind
#
#   bash tests/systemd_test.sh RELAYD RELAYCTL PACKAGE_DEB_SH LOADGEN
#
# Needs root, systemd-nspawn (systemd-container) and debootstrap; the root
# file system is built once (about 270 MB) into $RELAYD_SYSTEST_CACHE
# (default /var/tmp/relayd-systest) and copied for each run. Without root
# or the tools it says why and skips (CI installs them: failing there).
set -euo pipefail
RELAYD="$1"
RELAYCTL="$2"
PACKAGE="$3"
LOADGEN="$4"
cache=${RELAYD_SYSTEST_CACHE:-/var/tmp/relayd-systest}
work=$(mktemp -d /var/tmp/relayd-systest-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
skip() {
  [ -z "${CI:-}" ] || fail "cannot run under systemd here: $*"
  echo "systemd test: skipped: $*"; exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root"
command -v systemd-nspawn > /dev/null || skip "systemd-nspawn missing (apt install systemd-container)"
command -v debootstrap > /dev/null || skip "debootstrap missing"

# The package first: the container has no network, so its root file system
# holds the package's Depends (read from the .deb), loadgen's libraries,
# systemd, and what the scenario uses. $RELAYD_DEB: a package already built
# from these binaries.
deb=${RELAYD_DEB:-$(bash "$PACKAGE" --relayd "$RELAYD" --relayctl "$RELAYCTL" --out "$work")}
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$' | sort -u | paste -sd,)
packages=systemd,systemd-sysv,dbus,procps,curl,iproute2,ca-certificates,libpcap0.8,$depends
stamp="$cache/rootfs.ok-$(echo "$packages" | md5sum | cut -c1-8)"
if [ ! -e "$stamp" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
  rm -rf "$cache/rootfs" "$cache"/rootfs.ok-*
  mkdir -p "$cache"
  echo "systemd test: building a Debian 12 root file system in $cache (once)"
  debootstrap --variant=minbase --include="$packages" bookworm "$cache/rootfs" \
    "${mirror:-http://deb.debian.org/debian}" > "$cache/debootstrap.log" 2>&1 \
    || fail "debootstrap: $(tail -5 "$cache/debootstrap.log")"
  touch "$stamp"
fi
cp -a "$cache/rootfs" "$work/root"

share="$work/root/systest"
mkdir -p "$share"
cp "$deb" "$share/relayd.deb"
install -m 0755 "$LOADGEN" "$share/loadgen"

# The scenario, run by a unit once the container is up; it powers the
# container off when done. Its report is /systest/log.
cat > "$share/scenario.sh" <<'SCENARIO'
#!/bin/bash
set -u
exec > /systest/log 2>&1
passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
prop() { systemctl show -p "$1" --value relayd; }
field() { sed -n "s/^  \"$1\": \([^,]*\),\{0,1\}$/\1/p" "$2" | tr -d '"'; }
metric() {  # sum of a metric's series, optionally only those matching $2
  curl -sf http://127.0.0.1:9780/metrics | grep "^$1[{ ]" | grep -- "${2:-}" \
    | awk '{s += $NF} END {print s + 0}'
}
wait_for() {  # seconds, command...: true once the command succeeds
  local t=$1; shift
  for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done
  return 1
}
active() { [ "$(prop ActiveState)" = "$1" ]; }
new_pid() { local p; p=$(prop MainPID); [ "$p" != 0 ] && [ "$p" != "$1" ]; }
ready() { curl -sf http://127.0.0.1:9780/readyz > /dev/null; }
traffic() {  # name seconds: 3 pairs through relayd at 2000 datagrams/s
  /systest/loadgen --relay=127.0.0.1:7777 --admin=127.0.0.1:9780 \
    --token_file=/etc/relayd/admin_token --pairs=3 --size=200 --rate=2000 \
    --duration="$2"s --direction=both --quiet --json=/systest/$1.json \
    > /systest/$1.log 2>&1
}

echo "== install"
check "dpkg -i" dpkg -i /systest/relayd.deb
check "unit enabled by the package" [ "$(systemctl is-enabled relayd)" = enabled ]
cat >> /etc/relayd/relayd.flags <<FLAGS
--listen=127.0.0.1
--drain_timeout=4s
--stop_timeout=3s
--bind_lifetime=2s
--steady_state_lifetime=2s
FLAGS
cp /etc/relayd/relayd.flags /systest/good.flags
check "check_config sees the unit's token" \
  grep -q "HTTP allocation token required" <(relayd --flagfile=/etc/relayd/relayd.flags --check_config)

echo "== bad configuration: exit 2, failed, not restarted"
echo "--bind_lifetime=5" >> /etc/relayd/relayd.flags
systemctl start relayd
sleep 7  # RestartSec=2: three restarts would have happened by now
check "bad flags: unit failed" active failed
check "bad flags: exit status 2" [ "$(prop ExecMainStatus)" = 2 ]
check "bad flags: no restart" [ "$(prop NRestarts)" = 0 ]
check "bad flags: systemctl status names the flag" \
  grep -q "bind_lifetime" <(systemctl status relayd --no-pager -n 5 2>&1)
cp /systest/good.flags /etc/relayd/relayd.flags
systemctl reset-failed relayd
systemctl start relayd
check "starts with good flags" active active
check "ready" wait_for 5 ready
check "engine io_uring under the unit's seccomp filter" \
  grep -q "engine=io_uring" <(journalctl -u relayd -b --no-pager)

echo "== token rotation by reload"
old=$(cat /etc/relayd/admin_token)
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/relayd/admin_token
echo >> /etc/relayd/admin_token
check "systemctl reload" systemctl reload relayd
check "relayctl (the new token, found like relayd finds it)" \
  grep -q "^Sessions: 0" <(relayctl sessions)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $old" \
  http://127.0.0.1:9780/v0/relay/sessions)
check "old token refused ($code)" [ "$code" = 403 ]
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat /etc/relayd/admin_token)" \
  http://127.0.0.1:9780/v0/relay/sessions)
check "new token accepted ($code)" [ "$code" = 200 ]

echo "== a failed reload fails"
cp /etc/relayd/allowlist /systest/allowlist
echo "discokey:nothex" >> /etc/relayd/allowlist
if systemctl reload relayd 2> /systest/reload.err; then bad "reload with a bad allowlist returned 0"; else ok "reload with a bad allowlist fails"; fi
check "the journal says why" \
  grep -q "reload failed, keeping the old settings" <(journalctl -u relayd -b --no-pager)
check "relayd still serves after the failed reload" active active
cp /systest/allowlist /etc/relayd/allowlist
check "reload after the fix" systemctl reload relayd

echo "== upgrade under traffic: no restart, nothing lost"
pid0=$(prop MainPID)
traffic upgrade 8 &
tpid=$!
sleep 2
check "reinstall" sh -c 'dpkg -i /systest/relayd.deb > /systest/upgrade.out 2>&1'
check "postinst names the live sessions and how to switch" \
  grep -q "keeps its 3 live sessions" /systest/upgrade.out
check "same relayd after the upgrade" [ "$(prop MainPID)" = "$pid0" ]
wait $tpid
check "loadgen through the upgrade" [ "$(field lost /systest/upgrade.json)" = 0 ]
check "sent through the upgrade ($(field sent /systest/upgrade.json))" [ "$(field sent /systest/upgrade.json)" -ge 10000 ]
check "no unknown_vni drops" [ "$(metric peerrelay_dropped_datagrams_total unknown_vni)" = 0 ]
# With nothing to cut, an upgrade restarts relayd at once.
idle() { relayctl sessions 2> /dev/null | grep -q "^Sessions: 0"; }
check "endpoints expire once the traffic stops" wait_for 8 idle
dpkg -i /systest/relayd.deb > /systest/upgrade2.out 2>&1
check "an idle relayd is restarted by the upgrade" wait_for 5 new_pid "$pid0"
check "ready after the restart" wait_for 5 ready

echo "== rolling restart: relayctl drain --restart under traffic"
pid1=$(prop MainPID)
restarts0=$(prop NRestarts)
traffic rolling 9 &
tpid=$!
sleep 2
check "relayctl drain --restart" grep -q "then restart" <(relayctl drain --restart)
before=$(metric peerrelay_relayed_datagrams_total)
sleep 1.5
after=$(metric peerrelay_relayed_datagrams_total)
check "relaying goes on while draining ($before -> $after)" [ "$after" -gt $((before + 1000)) ]
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9780/readyz)
check "not ready while draining ($code)" [ "$code" = 503 ]
check "a fresh relayd after the drain" wait_for 15 new_pid "$pid1"
check "the drained relayd exited 75" \
  grep -q "status=75" <(journalctl -u relayd -b --no-pager)
check "counted as one restart" [ "$(prop NRestarts)" = $((restarts0 + 1)) ]
check "active again" wait_for 5 ready
wait $tpid

echo "== removal: relayctl drain, endpoints expire, the unit stays down"
pid2=$(prop MainPID)
restarts1=$(prop NRestarts)
check "relayctl drain" grep -q "then exit" <(relayctl drain)
check "exits once the endpoints expired" wait_for 10 active inactive
sleep 3  # RestartSec=2: a restart would have happened
check "not restarted" active inactive
check "no restart counted" [ "$(prop NRestarts)" = "$restarts1" ]
check "clean result" [ "$(prop Result)" = success ]

echo "== systemctl stop under traffic: drain for --stop_timeout, then stop"
systemctl start relayd
wait_for 5 ready
traffic stop 8 &
tpid=$!
sleep 2
t0=$(date +%s%N)
systemctl stop relayd
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "stop took ${ms} ms (--stop_timeout=3s)" [ "$ms" -ge 2500 -a "$ms" -le 8000 ]
check "stopped" active inactive
check "exit 0" [ "$(prop ExecMainStatus)" = 0 ]
check "the journal says what was cut" \
  grep -q "drained: stopping (3 endpoints left, cut at the timeout)" <(journalctl -u relayd -b --no-pager)
wait $tpid

echo "== purge"
check "dpkg --purge" dpkg --purge relayd
check "unit gone" [ ! -e /lib/systemd/system/relayd.service ]
check "no enablement left" [ ! -e /etc/systemd/system/multi-user.target.wants/relayd.service ]
check "tokens gone" [ ! -e /etc/relayd/admin_token ]

if [ "$failed" != 0 ]; then
  echo "== relayd's journal"
  journalctl -u relayd -b --no-pager -o short-monotonic | tail -80
  for f in /systest/*.log /systest/*.out /systest/*.err; do
    [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }
  done
fi
echo "result: $passed passed, $failed failed"
systemctl poweroff --no-block
SCENARIO
chmod 0755 "$share/scenario.sh"
cat > "$work/root/etc/systemd/system/systest.service" <<'UNIT'
[Unit]
Description=relayd systemd test scenario
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/systest/scenario.sh
UNIT
ln -s /etc/systemd/system/systest.service \
  "$work/root/etc/systemd/system/multi-user.target.wants/systest.service"
echo relayd-systest > "$work/root/etc/hostname"

# nspawn wants /run/systemd/nspawn: a private mount namespace with a tmpfs
# there works without a systemd on the host. --register=no and
# --keep-unit: no machined. --private-network: only loopback.
echo "systemd test: booting the container"
timeout 600 unshare -m bash -c '
  mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn
  exec systemd-nspawn --quiet --boot --register=no --keep-unit --private-network \
    --directory="$1" < /dev/null' _ "$work/root" > "$work/console.log" 2>&1 || true
[ -f "$share/log" ] || fail "the scenario did not run: $(tail -30 "$work/console.log")"
cat "$share/log"
grep -q "^result: [0-9]* passed, 0 failed$" "$share/log" || fail "systemd scenario failed"
echo "systemd test: $(grep '^result' "$share/log" | sed 's/^result: //')"
echo "systemd test: 1 passed, 0 failed"
