#!/usr/bin/env bash
# The project's full test suite, as CI runs it (.ci/run calls exactly this).
#   1. installs what it needs (scripts/install_deps.sh),
#   2. builds everything and runs every test: bazel test //...   (gcc, -O2)
#   3. the tailnet bridge (Go, bridge/): gofmt, vet, unit tests, and the
#      end-to-end tests with Tailscale's own code as the peers (T1: test
#      control server, DERP, tsnet clients; T2: tailscaled and tailscale
#      built from the pinned module), against the relayd of step 2; then
#      the package (lintian, install, purge), the Kubernetes manifests, the
#      lifecycle under a real systemd (nspawn) and the container image
#   4. runs every test again under AddressSanitizer + UBSan      (clang)
#   5. runs the concurrency, engine and adversarial tests under
#      ThreadSanitizer                                           (clang)
#   6. runs each libFuzzer target for FUZZ_SECONDS (default 30) under
#      ASan + UBSan, from seed corpora of real handshakes.
# Set QUICK=1 to run steps 2 and 3 only.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
# The machines' Go lives in /usr/local/go (not Debian's older package).
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"

# Every bazel run's output also goes to $log, so the closing line can count
# the test targets that passed (a failure stops the script before it).
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== bazel test //... (gcc, -O2)"
bazel test //... 2>&1 | tee -a "$log"

echo "== shipped binaries carry no test code"
for bin in //tools:relayd //tools:relayctl //loadtest:demo_client; do
  if bazel query "deps($bin)" 2>/dev/null | grep -E '^//tests|^//common:fake_clock'; then
    echo "run_tests: $bin depends on test-only code" >&2
    exit 1
  fi
done
if bazel query 'deps(//tools:relayd)' 2>/dev/null | grep -q '^//client:disco_client'; then
  echo "run_tests: relayd depends on the disco client" >&2
  exit 1
fi

echo "== floors: the client and load-test binaries link no relay core, engine or control plane"
# Visibility already refuses such a dependency at build time (//:server_side);
# this states it as the query a reviewer would run.
for bin in //loadtest/loadgen //loadtest/pcap:pcap_replay //loadtest/pcap:geneve_dump \
           //loadtest:demo_client; do
  leaks=$(bazel query "deps($bin) intersect (//relay/... + //engine/... + //control/... + //tools/...)" 2>/dev/null)
  if [ -n "$leaks" ]; then
    echo "run_tests: $bin depends on the server side: $leaks" >&2
    exit 1
  fi
done
if bazel query 'deps(//tools:relayctl)' 2>/dev/null | grep -q '^@system//:httplib'; then
  echo "run_tests: relayctl links cpp-httplib again" >&2
  exit 1
fi

echo "== Go: relayd-bridge (gofmt, vet, unit tests, T1 and T2 end to end)"
bin=$(bazel info bazel-bin 2>/dev/null)
unformatted=$(gofmt -l bridge deploy)
if [ -n "$unformatted" ]; then
  echo "run_tests: not gofmt-formatted: $unformatted" >&2
  exit 1
fi
(cd bridge && go vet ./... &&
  RELAYD_BIN="$bin/tools/relayd" RELAYCTL_BIN="$bin/tools/relayctl" \
    go test -count=1 -timeout 20m ./...) 2>&1 | tee -a "$log"
gopkgs=$(grep -cE '^ok +peerrelay/bridge' "$log" || true)

echo "== package test (.deb with relayd, relayctl and relayd-bridge: lint, install, check, purge)"
bash tests/package_test.sh "$bin/tools/relayd" "$bin/tools/relayctl" tools/package_deb.sh 2>&1 | tee -a "$log"
pkgtests=$(grep -c '^package test: 1 passed' "$log" || true)

echo "== Kubernetes manifests (strict decode with Kubernetes' API types, relayd --check_config)"
(cd deploy/kubernetes/validate && RELAYD_BIN="$bin/tools/relayd" go test -count=1 ./...) 2>&1 | tee -a "$log"
gopkgs=$((gopkgs + $(grep -cE '^ok +peerrelay/deploy' "$log" || true)))

echo "== systemd test (the .deb under systemd 252 in an nspawn container) and container image test"
debdir=$(mktemp -d)
deb=$(bash tools/package_deb.sh --relayd "$bin/tools/relayd" --relayctl "$bin/tools/relayctl" --out "$debdir")
RELAYD_DEB="$deb" bash tests/systemd_test.sh "$bin/tools/relayd" "$bin/tools/relayctl" \
  tools/package_deb.sh "$bin/loadtest/loadgen/loadgen" 2>&1 | tee -a "$log"
bash tests/image_test.sh "$deb" 2>&1 | tee -a "$log"
rm -rf "$debdir"
pkgtests=$((pkgtests + $(grep -c '^systemd test: 1 passed' "$log" || true)))
pkgtests=$((pkgtests + $(grep -c '^image test: .* serves from it' "$log" || true)))

fuzzers=0
if [ "${QUICK:-0}" != "1" ]; then
  echo "== bazel test --config=asan //... (clang, ASan + UBSan)"
  # The package test installs into the system, and the soak judges RSS
  # (ASan keeps freed memory in quarantine): once (above) is enough.
  bazel test --config=asan -- //... -//tests:package_test -//tests:soak_test 2>&1 | tee -a "$log"
  echo "== bazel test --config=tsan (clang, ThreadSanitizer)"
  bazel test --config=tsan //relay:server_concurrency_test //engine:engine_test \
    //engine:client_order_test //tests:handshake_order_test \
    //control:http_server_test //engine:worker_path_test \
    //engine:handshake_limiter_test //tests:adversarial_test 2>&1 | tee -a "$log"
  echo "== fuzzers (clang, ASan + UBSan), ${FUZZ_SECONDS:-30}s each"
  FUZZ_DIR="$(mktemp -d)" bash scripts/run_fuzzers.sh "${FUZZ_SECONDS:-30}"
  fuzzers=5
fi

# "Executed X out of Y tests: Y tests pass." per bazel run.
targets=$(grep -oE "Executed [0-9]+ out of [0-9]+ tests?" "$log" |
          awk '{n += $5} END {print n + 0}')
echo "run_tests: $((targets + gopkgs + pkgtests + fuzzers)) passed, 0 failed"
