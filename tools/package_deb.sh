#!/usr/bin/env bash
# Builds relayd_<version>_<arch>.deb from the Bazel outputs.
#
#   bash tools/package_deb.sh [--out DIR]                  builds with Bazel (-c opt)
#   bash tools/package_deb.sh --relayd B --relayctl B [--bridge B] [--out DIR]   packages given binaries
#
# The package: /usr/bin/relayd and relayctl with man pages made from their
# own --help (tools/packaging/manpage.py), the systemd unit, a sysctl
# drop-in raising the socket buffer maxima (so relayd needs no
# CAP_NET_ADMIN), the tailnet bridge (/usr/bin/relayd-bridge, built with go
# from bridge/ unless given; its unit relayd-bridge.service, disabled until
# an auth key is in place; /etc/relayd/bridge.env), the annotated flag file
# and an empty allowlist as conffiles under /etc/relayd, the Grafana
# dashboard, the alert rules, the README, copyright and changelog under
# /usr/share. Depends: is computed from the binaries by dpkg-shlibdeps
# (plus adduser for the system user). Install it with
# `apt install ./relayd_*.deb`, which fetches the libraries.
#
# Maintainer scripts, the way debhelper's generated ones behave: postinst
# creates the `relayd` system user and random tokens (/etc/relayd/
# admin_token and bridge_token, root:relayd 0640, read by relayd itself so
# that a reload rotates them), applies the sysctl drop-in, and enables the
# unit through deb-systemd-helper, so an image built without systemd
# running boots with relayd enabled. A first install does not start
# relayd (set --advertise first). An upgrade never cuts live sessions: a
# relayd with no endpoint is restarted at once; one with endpoints keeps
# running the old binary, and postinst says how to switch (relayctl drain
# --restart). Remove stops relayd; purge removes the tokens and
# /var/lib/relayd (the server key).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=.
relayd=""
relayctl=""
bridge=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --relayd) relayd=$2; shift 2 ;;
    --relayctl) relayctl=$2; shift 2 ;;
    --bridge) bridge=$2; shift 2 ;;
    *) echo "package_deb: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$relayd" ] || [ -z "$relayctl" ]; then
  (cd "$root" && bazel build -c opt //tools:relayd //tools:relayctl)
  relayd="$root/bazel-bin/tools/relayd"
  relayctl="$root/bazel-bin/tools/relayctl"
fi
if [ -z "$bridge" ]; then
  command -v go > /dev/null || export PATH="$PATH:/usr/local/go/bin"
  bridge="$(mktemp -d)/relayd-bridge"
  (cd "$root/bridge" && go build -buildmode=pie -ldflags=-s -o "$bridge" ./cmd/relayd-bridge) \
    || { echo "package_deb: cannot build relayd-bridge (Go 1.26 in /usr/local/go?)" >&2; exit 1; }
fi
for tool in dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" > /dev/null || { echo "package_deb: needs $tool (apt install dpkg-dev)" >&2; exit 1; }
done

version=$("$relayd" --version | sed -n 's/^relayd \([0-9.]*\) .*/\1/p')
[ -n "$version" ] || { echo "package_deb: cannot read the version from $relayd" >&2; exit 1; }
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"

install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/relayd" \
  "$pkg/usr/share/doc/relayd" "$pkg/usr/share/relayd/grafana" "$pkg/usr/share/man/man8" \
  "$pkg/usr/lib/sysctl.d"
install -m 0755 "$relayd" "$pkg/usr/bin/relayd"
install -m 0755 "$relayctl" "$pkg/usr/bin/relayctl"
strip --strip-unneeded "$pkg/usr/bin/relayd" "$pkg/usr/bin/relayctl"
install -m 0644 "$root/tools/relayd.service" "$pkg/lib/systemd/system/relayd.service"
# The tailnet bridge (Go, bridge/), its unit and flags.
install -m 0755 "$bridge" "$pkg/usr/bin/relayd-bridge"
install -m 0644 "$root/tools/relayd-bridge.service" "$pkg/lib/systemd/system/relayd-bridge.service"
install -m 0644 "$root/tools/relayd-bridge.env" "$pkg/etc/relayd/bridge.env"
install -m 0644 "$root/tools/relayd.flags" "$pkg/etc/relayd/relayd.flags"
printf '# Client disco keys allowed to allocate over UDP: discokey:<hex>, one per line.\n# Reloaded by `systemctl reload relayd`.\n' \
  > "$pkg/etc/relayd/allowlist"
chmod 0644 "$pkg/etc/relayd/allowlist"
install -m 0644 "$root/tools/grafana/relayd-dashboard.json" "$pkg/usr/share/relayd/grafana/"
install -m 0644 "$root/tools/relayd-xdp.conf" "$pkg/usr/share/relayd/relayd-xdp.conf"
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/relayd/README.md"
# Man pages from the binaries' own help: every flag they have, no other.
"$pkg/usr/bin/relayd" --help | python3 "$root/tools/packaging/manpage.py" relayd 8 "$version" \
  | gzip -9n > "$pkg/usr/share/man/man8/relayd.8.gz"
"$pkg/usr/bin/relayctl" help | python3 "$root/tools/packaging/manpage.py" relayctl 8 "$version" \
  | gzip -9n > "$pkg/usr/share/man/man8/relayctl.8.gz"
chmod 0644 "$pkg"/usr/share/man/man8/*.gz
# Socket buffer maxima for relayd's 7 MiB buffers, instead of CAP_NET_ADMIN.
install -m 0644 "$root/tools/packaging/60-relayd.conf" "$pkg/usr/lib/sysctl.d/60-relayd.conf"
install -m 0644 "$root/tools/packaging/copyright" "$pkg/usr/share/doc/relayd/copyright"
maintainer=${RELAYD_DEB_MAINTAINER:-peerrelay maintainers <maintainers@peerrelay.org>}
sed "s/@VERSION@/$version/; s/@MAINTAINER@/$maintainer/; s/@DATE@/$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2> /dev/null || date +%s)}")/" \
  "$root/tools/packaging/changelog" | gzip -9n > "$pkg/usr/share/doc/relayd/changelog.gz"
chmod 0644 "$pkg/usr/share/doc/relayd/changelog.gz"
# Prometheus alert rules (deploy/prometheus/, checked by promtool in the tests).
install -d "$pkg/usr/share/relayd/prometheus"
install -m 0644 "$root/deploy/prometheus/relayd-alerts.yml" "$pkg/usr/share/relayd/prometheus/"
# The Wireshark dissector (tools/wireshark/): tshark -X lua_script:...
install -d "$pkg/usr/share/relayd/wireshark"
install -m 0644 "$root"/tools/wireshark/*.lua "$pkg/usr/share/relayd/wireshark/"

# Depends: what the binaries link, as dpkg-shlibdeps finds it.
mkdir -p "$stage/src/debian"
printf 'Source: relayd\n\nPackage: relayd\nArchitecture: any\n' > "$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O "$pkg/usr/bin/relayd" "$pkg/usr/bin/relayctl" 2>/dev/null \
         | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package_deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat > "$pkg/DEBIAN/control" <<CONTROL
Package: relayd
Version: $version
Architecture: $arch
Maintainer: $maintainer
Depends: $shlibs, adduser
Section: net
Priority: optional
Installed-Size: $(du -sk "$pkg" | cut -f1)
Description: high-throughput UDP peer relay for Tailscale's peer-relay protocol
 relayd relays WireGuard traffic between two clients that cannot reach
 each other directly: Geneve-framed datagrams, the 3-way disco bind
 handshake, then byte-for-byte forwarding, on an io_uring packet engine.
 Includes relayctl (admin API client), a hardened systemd unit, an
 annotated flag file, a Grafana dashboard, Prometheus alert rules and
 relayd-bridge, which makes the relay one that stock Tailscale clients
 find and use.
CONTROL
printf '/etc/relayd/relayd.flags\n/etc/relayd/allowlist\n/etc/relayd/bridge.env\n' > "$pkg/DEBIAN/conffiles"

cat > "$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd relayd > /dev/null; then
    adduser --system --group --no-create-home --home /var/lib/relayd \
      --gecos "peerrelay relayd" relayd > /dev/null
  fi
  # Tokens: relayd reads them itself (root:relayd 0640), so that writing a
  # new one and reloading rotates it.
  for t in admin_token bridge_token; do
    if [ ! -e /etc/relayd/$t ]; then
      (umask 077
       head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/relayd/$t
       echo >> /etc/relayd/$t)
    fi
    chown root:relayd /etc/relayd/$t
    chmod 0640 /etc/relayd/$t
  done
  # The bridge's auth key: empty until the operator puts one there.
  [ -e /etc/relayd/bridge_authkey ] || (umask 077; : > /etc/relayd/bridge_authkey)
  # Socket buffer maxima (a container cannot set them: the host's apply).
  if [ -d /run/systemd/system ] && [ -x /lib/systemd/systemd-sysctl ]; then
    /lib/systemd/systemd-sysctl /usr/lib/sysctl.d/60-relayd.conf 2> /dev/null || true
  fi
  if ! grep -q '^--admin_token_file=' /etc/relayd/relayd.flags 2> /dev/null; then
    echo "relayd: /etc/relayd/relayd.flags sets no --admin_token_file: allocation over HTTP is refused." >&2
    echo "relayd: the unit no longer passes the token; add --admin_token_file=/etc/relayd/admin_token" >&2
  fi
fi
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
  # Enabled on the first install, with or without a running systemd (an
  # image build); an operator's `systemctl disable` is kept on upgrades.
  deb-systemd-helper unmask relayd.service > /dev/null || true
  if deb-systemd-helper --quiet was-enabled relayd.service; then
    deb-systemd-helper enable relayd.service > /dev/null || true
  else
    deb-systemd-helper update-state relayd.service > /dev/null || true
  fi
  # The bridge waits for an auth key: tracked, never enabled here.
  deb-systemd-helper update-state relayd-bridge.service > /dev/null || true
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload > /dev/null || true
    if [ -n "$2" ] && systemctl is-active --quiet relayd.service; then
      # An upgrade: restart only a relayd that has nothing to cut.
      n=$(relayctl sessions --limit=1 2> /dev/null | sed -n 's/^Sessions: \([0-9]*\).*/\1/p')
      if [ "$n" = 0 ]; then
        deb-systemd-invoke restart relayd.service || true
      else
        echo "relayd: the new version is on disk; the running relayd keeps its ${n:-(unknown number of)} live sessions" >&2
        echo "relayd: on the old one, not restarted, until you switch:" >&2
        echo "relayd:   relayctl drain --restart   (no new allocations; restart once they end," >&2
        echo "relayd:                              or at --drain_timeout)" >&2
        echo "relayd:   systemctl restart relayd   (now: live sessions are cut after --stop_timeout)" >&2
      fi
      if systemctl is-active --quiet relayd-bridge.service; then
        deb-systemd-invoke restart relayd-bridge.service || true  # holds no session
      fi
    elif [ -z "$2" ]; then
      echo "relayd: set --advertise in /etc/relayd/relayd.flags, then: systemctl start relayd"
    fi
  fi
fi
exit 0
POSTINST
cat > "$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
# An upgrade leaves relayd running (postinst decides); removal stops it.
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  deb-systemd-invoke stop relayd-bridge.service relayd.service > /dev/null || true
fi
exit 0
PRERM
cat > "$pkg/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload > /dev/null || true
fi
if [ "$1" = remove ] && command -v deb-systemd-helper > /dev/null; then
  deb-systemd-helper mask relayd.service relayd-bridge.service > /dev/null || true
fi
if [ "$1" = purge ]; then
  if command -v deb-systemd-helper > /dev/null; then
    deb-systemd-helper purge relayd.service relayd-bridge.service > /dev/null || true
    deb-systemd-helper unmask relayd.service relayd-bridge.service > /dev/null || true
  fi
  rm -f /etc/relayd/admin_token /etc/relayd/bridge_token /etc/relayd/bridge_authkey
  rmdir /etc/relayd 2> /dev/null || true
  rm -rf /var/lib/relayd /var/lib/private/relayd-bridge /var/lib/relayd-bridge
fi
exit 0
POSTRM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/relayd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" > /dev/null
echo "$deb"
