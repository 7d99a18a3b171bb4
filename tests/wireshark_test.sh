#!/usr/bin/env bash
# Our framing checked by Wireshark, and our Lua dissector checked against
# our own decoder, on the captures in tests/data (recorded with our tools):
#  1. Wireshark's own Geneve dissector (tshark -d udp.port==PORT,geneve)
#     reports, for every datagram, the VNI, O bit and protocol type that
#     geneve_dump --format=fields reads.
#  2. tools/wireshark/peerrelay.lua (tshark -X lua_script:) reports the
#     disco sender key, nonce, box length and the WireGuard type and
#     counter that geneve_dump reads, datagram by datagram.
# Skips (passes with a message) when tshark is not installed.
set -euo pipefail
DUMP="$1"; REPLAY="$2"; LUA="$3"; DATA="$(dirname "$4")"
if ! command -v tshark > /dev/null; then
  echo "SKIP: tshark is not installed (scripts/install_deps.sh installs it)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work"  # tshark's profile directory
fail() { echo "FAIL: $*"; exit 1; }
# tshark prints the VNI as hex (0x000001), booleans as 1/0 or True/False,
# bytes as hex (with colons in some versions): normalised to ours.
normalise() {
  python3 -c '
import sys
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    if f[0]: f[0] = str(int(f[0], 16))
    if len(f) > 1: f[1] = {"True": "1", "False": "0"}.get(f[1], f[1])
    f = [x.replace(":", "") for x in f]
    print("\t".join(f))'
}

checked=0
for cap in "$DATA"/current_v4_client.pcap "$DATA"/seed_v6_relay.pcap "$DATA"/hostile_v4_relay.pcap; do
  name=$(basename "$cap")
  port=$("$REPLAY" --list "$cap" | sed -n 's/^relay .*:\([0-9]*\): .*/\1/p')
  [ -n "$port" ] || fail "$name: no relay port"
  # Only what our decoder takes as relay traffic (the hostile capture also
  # holds junk that Wireshark and we may read differently on purpose).
  filter="udp.port==$port && geneve.version==0 && (geneve.proto_type==0x7a11 || geneve.proto_type==0x7a12)"
  # geneve_dump reads version 1 too; drop those (Wireshark's filter above
  # keeps version 0 only) by asking geneve_dump's line format.
  "$DUMP" --port="$port" "$cap" 2> /dev/null | awk '{print ($7 == "geneve" && $8 == "v0") ? "y" : "n"}' > "$work/v0"
  "$DUMP" --format=fields --port="$port" "$cap" 2> /dev/null | paste "$work/v0" - \
    | awk -F'\t' '$1 == "y" && ($4 == "0x7a11" || $4 == "0x7a12")' | cut -f2- > "$work/ours"
  [ -s "$work/ours" ] || fail "$name: nothing decoded by geneve_dump"

  tshark -r "$cap" -d "udp.port==$port,geneve" -Y "$filter" -T fields \
    -e geneve.vni -e geneve.flags.oam -e geneve.proto_type 2> "$work/err" \
    | normalise > "$work/wireshark" || fail "$name: tshark: $(cat "$work/err")"
  if ! diff <(cut -f1-3 "$work/ours") "$work/wireshark" > "$work/diff"; then
    fail "$name: Wireshark's Geneve dissector disagrees: $(head "$work/diff")"
  fi
  n=$(wc -l < "$work/wireshark")

  tshark -X "lua_script:$LUA" -r "$cap" -d "udp.port==$port,geneve" -Y "$filter" -T fields \
    -e geneve.vni -e geneve.flags.oam -e geneve.proto_type \
    -e peerrelay_disco.sender_key -e peerrelay_disco.nonce -e peerrelay_disco.box_len \
    -e peerrelay_wg.type -e peerrelay_wg.counter 2> "$work/err" \
    | normalise > "$work/lua" || fail "$name: tshark with the dissector: $(cat "$work/err")"
  grep -qi "lua.*error" "$work/err" && fail "$name: Lua error: $(cat "$work/err")"
  if ! diff "$work/ours" "$work/lua" > "$work/diff"; then
    fail "$name: the Lua dissector disagrees with geneve_dump: $(head "$work/diff")"
  fi
  disco=$(awk -F'\t' '$4 != ""' "$work/lua" | wc -l)
  wg=$(awk -F'\t' '$8 != ""' "$work/lua" | wc -l)
  [ "$disco" -gt 0 ] && [ "$wg" -gt 0 ] || fail "$name: $disco disco, $wg WireGuard datagrams decoded"
  # The dissector names itself in the protocol column and the info line.
  tshark -X "lua_script:$LUA" -r "$cap" -d "udp.port==$port,geneve" -Y "$filter" 2>/dev/null > "$work/lines"
  grep -q "PR-Disco .*Disco handshake from" "$work/lines" && grep -q "PR-WG .*WireGuard Transport data, receiver" "$work/lines" \
    || fail "$name: summary lines: $(head -3 "$work/lines")"
  echo "wireshark test: $name: $n datagrams agree ($disco disco, $wg WireGuard)"
  checked=$((checked + n))
done
echo "PASS: $checked datagrams"
