#!/usr/bin/env bash
# CI's one-minute soak: loadtest/soak.sh with the binaries under test and the
# captures in tests/data. Its verdict is the test's.
set -euo pipefail
SOAK="$1"
export RELAYD="$2" LOADGEN="$3" PCAP_REPLAY="$4"
DATA="$(dirname "$5")"
out="${TEST_UNDECLARED_OUTPUTS_DIR:-$(mktemp -d)}/soak"
bash "$SOAK" --duration="${SOAK_SECONDS:-60}" --out="$out" "$DATA"/*.pcap
