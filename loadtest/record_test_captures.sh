#!/usr/bin/env bash
# Records the small captures under tests/data/ with our own tools (relayd
# --capture_file and loadgen --pcap_out), so anyone can make them again:
#
#   bash loadtest/record_test_captures.sh [OUT_DIR]     # default tests/data
#
#   current_v4_client.pcap  current profile, IPv4, HTTP allocation, 2 pairs
#                           both ways: what the clients sent and received
#                           (loadgen --pcap_out)
#   seed_v6_relay.pcap      seed profile, IPv6, UDP (disco) allocation, 2
#                           pairs, GSO bursts: everything relayd received
#                           and sent (relayd --capture_file)
#   hostile_v4_relay.pcap   current profile, IPv4, 1 pair plus forged Binds
#                           (loadgen --forge_rate) and junk: short, non-Geneve,
#                           wrong protocol, unknown VNI (at the relay)
#   relay.key               the relay's disco key while recording (a test
#                           key: geneve_dump --keys opens the handshakes)
#
# Every capture is a few hundred datagrams (tens of KB). The captures hold
# loopback addresses only.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-tests/data}"
mkdir -p "$out"
bazel build -c opt //tools:relayd //loadtest:demo_client //loadtest/loadgen:loadgen >/dev/null 2>&1
BIN=bazel-bin/tools
work=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
echo tok > "$work/token"
"$BIN/demo_client" --key_file="$work/client.key" --print_public_key > "$work/allow"

RELAYD="$BIN/relayd"
fail() { echo "record_test_captures: $*" >&2; cat "$work/relayd.log" >&2; exit 1; }
# start_relayd LISTEN [FLAG...], as the end-to-end tests start it.
source tests/relayd_lib.sh
stop_relayd() { kill -INT "$pid"; wait "$pid" || true; pid=; }

# 1. Client side, current profile, IPv4.
start_relayd 127.0.0.1 --key_file="$out/relay.key" --profile=current
"$BIN/loadgen/loadgen" --relay="127.0.0.1:$port" --admin="$admin" \
  --token_file="$work/token" --pairs=2 --size=148 --rate=150 --duration=1s \
  --direction=both --check_payload --quiet --pcap_out="$out/current_v4_client.pcap"
stop_relayd

# 2. Relay side, seed profile, IPv6, UDP allocation, GSO bursts.
start_relayd ::1 --key_file="$out/relay.key" --profile=seed --capture_file="$work/seed.pcap"
"$BIN/loadgen/loadgen" --relay="[::1]:$port" --client_key_file="$work/client.key" \
  --server_key="$key" --profile=seed --pairs=2 --size=200 --rate=150 \
  --duration=1s --burst=gso --burst_size=4 --direction=both --quiet
stop_relayd
mv "$work/seed.pcap" "$out/seed_v6_relay.pcap"

# 3. Relay side with hostile traffic.
start_relayd 127.0.0.1 --key_file="$out/relay.key" --profile=current --capture_file="$work/hostile.pcap"
junk() {  # hex bytes to the relay from a new source port
  printf "$(sed 's/\(..\)/\\x\1/g' <<< "$1")" > "/dev/udp/127.0.0.1/$port"
}
junk "0102"                                   # shorter than Geneve
junk "45000054000040004001"                   # not Geneve at all
junk "0000080000000100deadbeef"               # Geneve, protocol IPv4
junk "40007a120000010004000000"             # Geneve version 1
junk "00807a12000001000400000000000000"       # O bit on WireGuard
junk "00007a12abcdef0004000000010000000000000000000000"  # unknown VNI
"$BIN/loadgen/loadgen" --relay="127.0.0.1:$port" --admin="$admin" \
  --token_file="$work/token" --pairs=1 --size=96 --rate=100 --duration=1s \
  --direction=both --forge_rate=40 --forge_sockets=8 --quiet
junk "00007a12000001000400000001000000ffffffffffffffff"  # data from a stranger
sleep 0.3
stop_relayd
mv "$work/hostile.pcap" "$out/hostile_v4_relay.pcap"
ls -l "$out"
