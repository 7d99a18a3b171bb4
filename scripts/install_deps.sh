#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and run.
# Idempotent: when everything is already installed it only says so.
# Needs root (apt-get). Debian 12.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  g++ clang libclang-rt-14-dev
  pkg-config
  liburing-dev
  libsodium-dev
  libabsl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpcap-dev
  libcpp-httplib-dev nlohmann-json3-dev prometheus-cpp-dev libsystemd-dev
  iproute2 procps
  # The XDP tier: the BPF program is built by clang (above) for the BPF
  # target against libbpf's headers, bpftool makes its skeleton; its tests
  # use network namespaces, veth and ethtool.
  libbpf-dev bpftool ethtool
  curl dpkg-dev adduser systemd
  python3 gnuplot-nox coturn
  tshark
  # Packaging and operations tests: lintian on the .deb, promtool for the
  # alert rules, a systemd container (nspawn) booted from a debootstrap.
  lintian prometheus systemd-container debootstrap
)

# Go 1.26 or later for the tailnet bridge (bridge/, module tailscale.com
# needs it). The machines come with it in /usr/local/go; Debian 12's golang
# package is too old, so it is never installed over it. `go` fetches the
# bridge's modules from the Go module proxy on first use.
go_bin=$(command -v go || echo /usr/local/go/bin/go)
if ! "$go_bin" version 2>/dev/null | grep -qE 'go1\.(2[6-9]|[3-9][0-9])'; then
  echo "install_deps: Go 1.26 or later is needed for bridge/ (found: $("$go_bin" version 2>/dev/null || echo none)); install it from go.dev into /usr/local/go" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
echo "install_deps: done"
