#!/usr/bin/env bash
# The .deb as an operator gets it: tools/package_deb.sh builds it from the
# binaries, `dpkg -i` installs it on this machine, the installed relayd
# checks the installed configuration, a changed conffile survives a
# reinstall, and `dpkg --purge` removes everything it added. Needs root and
# a machine without relayd installed; otherwise it says why and skips.
set -euo pipefail
RELAYD="$1"
RELAYCTL="$2"
PACKAGE="$3"
work=$(mktemp -d)
installed=no
cleanup() {
  if [ "$installed" = yes ]; then dpkg --purge relayd > /dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "package test: skipped: $*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i)"
command -v dpkg-shlibdeps > /dev/null || skip "dpkg-dev is not installed"
if dpkg-query -W -f='${Status}' relayd 2> /dev/null | grep -q "installed"; then
  skip "a relayd package is already installed here"
fi
[ ! -e /etc/relayd ] || skip "/etc/relayd exists (a relayd installed by hand?)"

deb=$(bash "$PACKAGE" --relayd "$RELAYD" --relayctl "$RELAYCTL" --out "$work")
# (relayd-bridge is built from bridge/ with go by package_deb.sh.)
[ -f "$deb" ] || fail "no package: $deb"
info=$(dpkg-deb -I "$deb")
for dep in libsodium23 liburing2 libabsl20220623 libsystemd0 libc6 adduser; do
  grep -q "Depends:.*$dep" <<< "$info" || fail "Depends lacks $dep: $info"
done
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/relayd ./usr/bin/relayctl ./lib/systemd/system/relayd.service \
         ./etc/relayd/relayd.flags ./etc/relayd/allowlist \
         ./usr/share/relayd/grafana/relayd-dashboard.json \
         ./usr/share/relayd/wireshark/peerrelay.lua ./usr/bin/relayd-bridge \
         ./lib/systemd/system/relayd-bridge.service ./etc/relayd/bridge.env; do
  grep -q " $f\$" <<< "$contents" || fail "package lacks $f"
done
[ "$(dpkg-deb -f "$deb" Package)" = relayd ] || fail "package name"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles > "$work/conffiles"
grep -qx /etc/relayd/relayd.flags "$work/conffiles" || fail "flags not a conffile"
grep -qx /etc/relayd/bridge.env "$work/conffiles" || fail "bridge.env not a conffile"

dpkg -i "$deb" > "$work/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$work/dpkg.log")"
installed=yes
getent passwd relayd > /dev/null || fail "no relayd system user"
[ "$(stat -c %a /etc/relayd/admin_token)" = 600 ] || fail "admin token mode"
[ -s /etc/relayd/admin_token ] || fail "empty admin token"
[ "$(stat -c %a /etc/relayd/bridge_token)" = 600 ] || fail "bridge token mode"
[ -s /etc/relayd/bridge_token ] || fail "empty bridge token"
cmp -s /etc/relayd/bridge_token /etc/relayd/admin_token && fail "bridge token equals the admin token"
[ -e /etc/relayd/bridge_authkey ] && [ "$(stat -c %a /etc/relayd/bridge_authkey)" = 600 ] \
  || fail "bridge auth key placeholder"
/usr/bin/relayd-bridge --help 2>&1 | grep -q "relayd_token_file" || fail "installed relayd-bridge"
# The bridge as its unit runs it, with a missing relayd token: a clear
# error and exit 2 (the unit does not restart on 2).
set +e
CREDENTIALS_DIRECTORY=$work /usr/bin/relayd-bridge --relayd_token_file=credential:nope \
  --state_dir="$work/bs" > "$work/bridge.out" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "relayd-bridge: --relayd_token_file" "$work/bridge.out" \
  || fail "bridge with a missing token: rc=$rc $(cat "$work/bridge.out")"
grep -q "^RestartPreventExitStatus=2" /lib/systemd/system/relayd-bridge.service || fail "bridge unit"
grep -q "^LoadCredential=bridge_token:/etc/relayd/bridge_token" /lib/systemd/system/relayd.service \
  || fail "relayd unit does not load the bridge token"
grep -q "^relayd " <<< "$(/usr/bin/relayd --version)" || fail "installed relayd --version"
# The installed configuration as the unit runs it (the token as systemd's
# credential would hand it over).
CREDENTIALS_DIRECTORY=/etc/relayd /usr/bin/relayd --flagfile=/etc/relayd/relayd.flags \
  --admin_token_file=credential:admin_token --admin_bridge_token_file=credential:bridge_token --check_config > "$work/check" 2>&1 \
  || fail "installed check_config: $(cat "$work/check")"
grep -q "config ok: port 7777" "$work/check" || fail "check output: $(cat "$work/check")"
grep -q "HTTP allocation token required" "$work/check" || fail "token not used: $(cat "$work/check")"
grep -q drain <<< "$(/usr/bin/relayctl help)" || fail "installed relayctl"
# The unit the package installed is the one in the tree, and verifies.
grep -q "^ExecStart=/usr/bin/relayd --flagfile=/etc/relayd/relayd.flags" \
  /lib/systemd/system/relayd.service || fail "installed unit"

# A changed conffile survives a reinstall; the token is not regenerated.
token=$(cat /etc/relayd/admin_token)
echo "--advertise=203.0.113.7" >> /etc/relayd/relayd.flags
dpkg -i --force-confold "$deb" > "$work/dpkg2.log" 2>&1 || fail "reinstall: $(cat "$work/dpkg2.log")"
grep -q "^--advertise=203.0.113.7" /etc/relayd/relayd.flags || fail "conffile change lost"
[ "$(cat /etc/relayd/admin_token)" = "$token" ] || fail "token regenerated"
grep -q "^  203.0.113.7:7777$" <<< "$(/usr/bin/relayd --flagfile=/etc/relayd/relayd.flags --check_config)" \
  || fail "advertise from the conffile"

dpkg --purge relayd > "$work/purge.log" 2>&1 || fail "purge: $(cat "$work/purge.log")"
installed=no
for f in /usr/bin/relayd /usr/bin/relayctl /usr/bin/relayd-bridge /lib/systemd/system/relayd.service \
         /lib/systemd/system/relayd-bridge.service /etc/relayd /var/lib/relayd; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
echo "package test: $(basename "$deb") built, installed, checked, purged"
echo "package test: 1 passed, 0 failed"
