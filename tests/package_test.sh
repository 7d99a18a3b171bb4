#!/usr/bin/env bash
# The .deb as an operator gets it: tools/package_deb.sh builds it from the
# binaries, lintian finds nothing that matters in it, `apt install ./deb`
# installs it on this machine (no systemd running: an image build, so the
# unit must come out enabled), the installed relayd checks the installed
# configuration exactly as the unit runs it, a changed conffile survives a
# reinstall, and `dpkg --purge` removes everything it added. What needs a
# running systemd (reload, drain, upgrade under traffic) is
# tests/systemd_test.sh. Needs root and a machine without relayd
# installed; otherwise it says why and skips.
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
         ./usr/share/man/man8/relayd.8.gz ./usr/share/man/man8/relayctl.8.gz \
         ./usr/lib/sysctl.d/60-relayd.conf ./usr/share/doc/relayd/copyright \
         ./usr/share/doc/relayd/changelog.gz ./usr/share/relayd/prometheus/relayd-alerts.yml \
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

# The man pages list every flag the binary has.
man_flags=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/man/man8/relayd.8.gz | gzip -d \
  | grep -c '^\.B \\-\\-' || true)
bin_flags=$("$RELAYD" --help | grep -c '^  --' || true)
[ "$man_flags" -gt 30 ] && [ "$man_flags" = "$bin_flags" ] || fail "relayd.8 lists $man_flags flags, relayd has $bin_flags"
# lintian: no error, and no warning outside the list below, each with its
# reason.
#   no-manual-page: relayd-bridge is a Go program with its own --help.
#   statically-linked-binary, embedded-library: relayd-bridge (Go).
#   hardening-no-fortify-functions, hardening-no-bindnow: relayd-bridge
#     (Go's linker).
#   binary-without-manpage: relayd-bridge, as above.
#   maintainer-script-calls-systemctl: daemon-reload and is-active, which
#     deb-systemd-helper has no verb for.
#   no-debconf-config etc. do not apply; initial-upload-closes-no-bugs and
#   changelog tags are for the Debian archive, not this package.
if command -v lintian > /dev/null; then
  lintian --tag-display-limit 0 --suppress-tags \
    binary-without-manpage,statically-linked-binary,embedded-library,hardening-no-fortify-functions,hardening-no-bindnow,maintainer-script-calls-systemctl,initial-upload-closes-no-bugs,no-manual-page \
    "$deb" > "$work/lintian.out" 2>&1 || true
  if grep -E '^(E|W): ' "$work/lintian.out"; then fail "lintian: $(cat "$work/lintian.out")"; fi
  echo "package test: lintian: $(grep -c '^[IPN]: ' "$work/lintian.out" || true) info/pedantic notes, no error or warning"
else
  [ -z "${CI:-}" ] || fail "lintian is not installed (scripts/install_deps.sh installs it)"
  echo "package test: lintian not installed: skipped its check"
fi

apt-get install -y -q --no-download "$deb" > "$work/dpkg.log" 2>&1 \
  || dpkg -i "$deb" > "$work/dpkg.log" 2>&1 || fail "install: $(cat "$work/dpkg.log")"
installed=yes
# No systemd running here (as in an image build): enabled all the same.
[ -L /etc/systemd/system/multi-user.target.wants/relayd.service ] \
  || fail "relayd.service not enabled by the install"
[ ! -e /etc/systemd/system/multi-user.target.wants/relayd-bridge.service ] \
  || fail "relayd-bridge.service enabled without an auth key"
getent passwd relayd > /dev/null || fail "no relayd system user"
# Tokens: read by relayd itself (rotation by reload), nobody else.
[ "$(stat -c %a:%U:%G /etc/relayd/admin_token)" = 640:root:relayd ] || fail "admin token mode"
[ -s /etc/relayd/admin_token ] || fail "empty admin token"
[ "$(stat -c %a:%U:%G /etc/relayd/bridge_token)" = 640:root:relayd ] || fail "bridge token mode"
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
for line in "RestartPreventExitStatus=2" "RestartForceExitStatus=75" "Restart=on-failure" \
            "ExecReload=/usr/bin/relayctl reload --pid=\${MAINPID} --status_file=/run/relayd/status" \
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"; do
  grep -qxF "$line" /lib/systemd/system/relayd.service || fail "relayd unit lacks $line"
done
if grep -v '^#' /lib/systemd/system/relayd.service | grep -q "LoadCredential\|CAP_NET_ADMIN"; then
  fail "relayd unit still copies tokens as credentials or grants CAP_NET_ADMIN"
fi
grep -q "^relayd " <<< "$(/usr/bin/relayd --version)" || fail "installed relayd --version"
# The installed configuration as the unit runs it: the flag file is all of
# it, so the check the flag file recommends sees the tokens too.
/usr/bin/relayd --flagfile=/etc/relayd/relayd.flags --check_config > "$work/check" 2>&1 \
  || fail "installed check_config: $(cat "$work/check")"
grep -q "config ok: port 7777" "$work/check" || fail "check output: $(cat "$work/check")"
grep -q "HTTP allocation token required" "$work/check" || fail "token not used: $(cat "$work/check")"
grep -q drain <<< "$(/usr/bin/relayctl help)" || fail "installed relayctl"
# The unit the package installed is the one in the tree, and verifies.
cmp -s "$(dirname "$PACKAGE")/relayd.service" /lib/systemd/system/relayd.service \
  || fail "installed unit differs from tools/relayd.service"
# The man pages open.
if command -v man > /dev/null; then
  man -l /usr/share/man/man8/relayd.8.gz 2> /dev/null | grep -q -- "--stop_timeout" || fail "relayd.8"
fi

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
         /etc/systemd/system/multi-user.target.wants/relayd.service /usr/lib/sysctl.d/60-relayd.conf \
         /lib/systemd/system/relayd-bridge.service /etc/relayd /var/lib/relayd; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
echo "package test: $(basename "$deb") built, installed, checked, purged"
echo "package test: 1 passed, 0 failed"
