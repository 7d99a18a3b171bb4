#!/usr/bin/env bash
# Quick-start demo. Installs what it needs, builds, and shows the codecs at
# work (per-packet costs of Geneve decode, envelope check, seal and open).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bazel run -c opt //bench:codec_benchmark -- --benchmark_min_time=0.2
