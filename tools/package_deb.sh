#!/usr/bin/env bash
# Builds relayd_<version>_<arch>.deb from the Bazel outputs.
#
#   bash tools/package_deb.sh [--out DIR]                  builds with Bazel (-c opt)
#   bash tools/package_deb.sh --relayd B --relayctl B [--bridge B] [--out DIR]   packages given binaries
#
# The package: /usr/bin/relayd and relayctl, the systemd unit, the tailnet
# bridge (/usr/bin/relayd-bridge, built with go from bridge/ unless given;
# its unit relayd-bridge.service, disabled until an auth key is in place;
# /etc/relayd/bridge.env), the annotated
# flag file and an empty allowlist as conffiles under /etc/relayd, the
# Grafana dashboard and the README under /usr/share. Depends: is computed
# from the binaries by dpkg-shlibdeps (plus adduser for the system user).
# postinst creates the `relayd` system user and a random admin token
# (/etc/relayd/admin_token, root only: systemd hands it to relayd as a
# credential), and enables the unit without starting it: set --advertise
# first. Purge removes the token and /var/lib/relayd (the server key).
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
  (cd "$root/bridge" && go build -ldflags=-s -o "$bridge" ./cmd/relayd-bridge) \
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
  "$pkg/usr/share/doc/relayd" "$pkg/usr/share/relayd/grafana"
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
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/relayd/README.md"
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
Maintainer: peerrelay maintainers <relayd@localhost>
Depends: $shlibs, adduser
Section: net
Priority: optional
Installed-Size: $(du -sk "$pkg" | cut -f1)
Homepage: https://localhost/peerrelay
Description: high-throughput UDP peer relay for Tailscale's peer-relay protocol
 relayd relays WireGuard traffic between two clients that cannot reach
 each other directly: Geneve-framed datagrams, the 3-way disco bind
 handshake, then byte-for-byte forwarding, on an io_uring packet engine.
 Includes relayctl (admin API client), a hardened systemd unit, an
 annotated flag file and a Grafana dashboard.
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
  for t in admin_token bridge_token; do
    if [ ! -e /etc/relayd/$t ]; then
      (umask 077
       head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/relayd/$t
       echo >> /etc/relayd/$t)
    fi
  done
  # The bridge's auth key: empty until the operator puts one there.
  [ -e /etc/relayd/bridge_authkey ] || (umask 077; : > /etc/relayd/bridge_authkey)
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    systemctl enable relayd.service > /dev/null 2>&1 || true
    if systemctl is-active --quiet relayd.service; then
      systemctl restart relayd.service || true
    else
      echo "relayd: set --advertise in /etc/relayd/relayd.flags, then: systemctl start relayd"
    fi
  fi
fi
exit 0
POSTINST
cat > "$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop relayd-bridge.service || true
  systemctl stop relayd.service || true
  systemctl disable relayd.service > /dev/null 2>&1 || true
fi
exit 0
PRERM
cat > "$pkg/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -f /etc/relayd/admin_token /etc/relayd/bridge_token /etc/relayd/bridge_authkey
  rmdir /etc/relayd 2> /dev/null || true
  rm -rf /var/lib/relayd /var/lib/private/relayd-bridge /var/lib/relayd-bridge
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
POSTRM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/relayd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" > /dev/null
echo "$deb"
