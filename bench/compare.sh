#!/usr/bin/env bash
# The end-to-end compare bench: relayd (io_uring and mmsg engines) against
# the reference relays (bench/reference_relay.cc), measured from outside by
# loadtest/loadgen, in one run, contenders interleaved round by round.
#
#   bash bench/compare.sh [--rounds 5] [--seconds 3] [--out DIR] [--quick | --flood | --engines | --tailscale]
#                         [--variant NAME="RELAYD FLAGS"]...
#
# Contender "tailscale" is Tailscale's own peer relay server
# (tailscale.com/net/udprelay at the version bridge/go.mod pins, what
# tailscaled runs with --relay-server-port), served by bridge/cmd/tsrelay
# behind the same HTTP allocation, so loadgen drives it exactly like relayd.
# --tailscale: relayd's two engines and Tailscale's relay only, in the four
# one-pair rows and the many-pairs mix.
# --quick: the two GSO rows only; --flood: relayd's 1400B-gso row with and
# without 20 000 forged Binds/s, back to back, for the flood ratio;
# --engines: relayd's two engines only, in the relay-bound GSO rows and the
# many-pairs mix (bench/engines_report.py judges them). --variant adds a
# contender uring_NAME: relayd's io_uring engine with extra flags (one
# tuning at a time, measured in the same interleaved run).
#
# The relay runs pinned to CPU 0 with one worker, loadgen to CPU 1 (--rx=count:
# it reads one header per GRO-coalesced message, so one core outruns the
# relay). Each round runs every contender in every scenario:
#   64 B and 1400 B, plain sends and GSO bursts of 44 (as WireGuard sends),
#   one pair; and a many-pairs mix (2000 pairs sharing 150k datagrams/s, one
#   datagram per send, so GRO cannot coalesce).
# Prints median [min-max] Mpps and Gbit/s, each relayd engine's ratio to each
# reference, the relay core's busy share and the bound label; writes
# DIR/compare.json and renders DIR/compare.png with gnuplot.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=5
seconds=3
out="$root/bench/results"
quick=0
variants=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --flood) flood_only=1; quick=1; shift ;;
    --engines) engines_only=1; quick=1; shift ;;
    --tailscale) tailscale_only=1; shift ;;
    --variant) variants+=("$2"); shift 2 ;;
    *) echo "compare: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(nproc)" -ge 2 ] || { echo "compare: needs 2 CPUs (relay on 0, load on 1)" >&2; exit 1; }
cd "$root"
bazel build -c opt //tools:relayd //loadtest/loadgen //bench:reference_relay > /dev/null 2>&1 \
  || { echo "compare: build failed (bazel build -c opt //tools:relayd //loadtest/loadgen //bench:reference_relay)" >&2; exit 1; }
# The Bazel server (a JVM whose collector wakes on both cores) is not needed
# while measuring: stop it (the next bazel command starts it again).
bin=$(mktemp -d)
cp bazel-bin/tools/relayd bazel-bin/loadtest/loadgen/loadgen bazel-bin/bench/reference_relay "$bin/"
command -v go > /dev/null || export PATH="$PATH:/usr/local/go/bin"
(cd bridge && go build -o "$bin/tsrelay" ./cmd/tsrelay) \
  || { echo "compare: cannot build bridge/cmd/tsrelay (Tailscale's relay)" >&2; exit 1; }
bazel shutdown > /dev/null 2>&1 || true
mkdir -p "$out"
work=$(mktemp -d)
relay_pid=
trap 'kill $relay_pid 2>/dev/null || true; rm -rf "$work" "$bin"' EXIT
echo "tok" > "$work/token"
raw="$out/compare-raw.jsonl"
: > "$raw"

contenders=(relayd_uring relayd_mmsg ref_mmsg ref_mmsg_gso ref_gro_gso tailscale)
[ "${tailscale_only:-0}" = 1 ] && contenders=(relayd_uring relayd_mmsg tailscale)
[ "${flood_only:-0}" = 1 ] && contenders=(relayd_uring relayd_mmsg)
[ "${engines_only:-0}" = 1 ] && contenders=(relayd_uring relayd_mmsg)
declare -A variant_flags
for v in "${variants[@]}"; do
  contenders+=("uring_${v%%=*}")
  variant_flags["uring_${v%%=*}"]="${v#*=}"
done
# coturn, the relay users would pick instead, when Debian's coturn is here.
if [ "${flood_only:-0}" = 1 ] || [ "${engines_only:-0}" = 1 ] || [ "${tailscale_only:-0}" = 1 ]; then
  :
elif command -v turnserver > /dev/null; then
  contenders+=(coturn)
else
  echo "compare: coturn (turnserver) not installed: its row is skipped (apt install coturn)"
fi
# name | size | burst | burst_size | pairs | rate | forged handshakes/s
# One pair for the throughput rows (the relay's per-datagram ceiling); the
# many-pairs row spreads a fixed total rate over 2000 pairs, one datagram
# per send, so nothing coalesces; the flood row relays while 20 000 forged
# Binds a second arrive (relayd only: the references have no handshake).
scenarios=("64B-plain|64|plain|44|1|0|0" "64B-gso|64|gso|44|1|0|0"
           "1400B-plain|1400|plain|44|1|0|0" "1400B-gso|1400|gso|44|1|0|0"
           "1400B-gso-flood|1400|gso|44|1|0|20000" "many-pairs|200|plain|1|2000|150000|0")
[ "$quick" = 1 ] && scenarios=("64B-gso|64|gso|44|1|0|0" "1400B-gso|1400|gso|44|1|0|0")
# --flood: only the 1400B-gso row with and without the flood, relayd only.
[ "${flood_only:-0}" = 1 ] && scenarios=("1400B-gso|1400|gso|44|1|0|0" "1400B-gso-flood|1400|gso|44|1|0|20000")
[ "${tailscale_only:-0}" = 1 ] && scenarios=("64B-plain|64|plain|44|1|0|0" "64B-gso|64|gso|44|1|0|0"
  "1400B-plain|1400|plain|44|1|0|0" "1400B-gso|1400|gso|44|1|0|0" "many-pairs|200|plain|1|2000|150000|0")
[ "${engines_only:-0}" = 1 ] && scenarios=("64B-gso|64|gso|44|1|0|0" "1400B-gso|1400|gso|44|1|0|0"
  "many-pairs|200|plain|1|2000|150000|0")

start_relay() {  # contender
  local log="$work/relay.log"
  case "$1" in
    relayd_uring|relayd_mmsg|uring_*)
      local engine=io_uring; [ "$1" = relayd_mmsg ] && engine=mmsg
      local extra=()
      [ -n "${variant_flags[$1]:-}" ] && read -r -a extra <<< "${variant_flags[$1]}"
      taskset -c 0 "$bin/relayd" --listen=127.0.0.1 --port=0 --workers=1 --engine=$engine "${extra[@]}" \
        --admin_listen=127.0.0.1:0 --admin_token_file="$work/token" --alloc_rate=100000 \
        --alloc_burst=100000 --alloc_rate_total=100000 --alloc_burst_total=100000 \
        --max_endpoints_per_caller=0 2> "$log" &
      relay_pid=$!
      for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.05; done
      port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$log" | head -1)
      admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$log" | head -1)
      how=(--admin="$admin" --token_file="$work/token")
      ;;
    tailscale)
      echo tok > "$work/token"
      taskset -c 0 "$bin/tsrelay" --admin_listen=127.0.0.1:0 --admin_token_file="$work/token" > "$log" 2>&1 &
      relay_pid=$!
      for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.05; done
      port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$log" | head -1)
      admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$log" | head -1)
      how=(--admin="$admin" --token_file="$work/token")
      ;;
    coturn)
      # No authentication, one relay thread, loopback only: test use only.
      port=$((20000 + RANDOM % 20000))
      taskset -c 0 turnserver -n --no-auth --listening-ip=127.0.0.1 --listening-port="$port" \
        --relay-ip=127.0.0.1 --min-port=$((port + 1)) --max-port=$((port + 4000)) \
        --allow-loopback-peers --no-cli --no-tls --no-dtls --relay-threads=1 \
        --userdb="$work/turndb" --pidfile="$work/turn.pid" --log-file=stdout --simple-log \
        --no-stdout-log > "$log" 2>&1 &
      relay_pid=$!
      for _ in $(seq 100); do ss -Hlun "sport = :$port" | grep -q . && break; sleep 0.05; done
      how=(--turn)
      ;;
    ref_*)
      "$bin/reference_relay" --mode="${1#ref_}" --cpu=0 > "$log" 2>&1 &
      relay_pid=$!
      for _ in $(seq 100); do grep -q "listening on port" "$log" && break; sleep 0.05; done
      port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$log" | head -1)
      how=(--reference)
      ;;
  esac
  [ -n "$port" ] || { echo "compare: $1 did not start: $(cat "$log")" >&2; exit 1; }
}

stop_relay() {
  kill -INT "$relay_pid" 2> /dev/null || true
  wait "$relay_pid" 2> /dev/null || true
  relay_pid=
}

echo "compare: $rounds rounds x ${#scenarios[@]} scenarios x ${#contenders[@]} contenders, ${seconds}s each; raw results in $raw"
for round in $(seq "$rounds"); do
  # Rotate the order each round so no contender always runs first.
  n=${#contenders[@]}
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${contenders[$(( (i + round) % n ))]}"); done
  for sc in "${scenarios[@]}"; do
    IFS='|' read -r name size burst bsize pairs rate forge <<< "$sc"
    for c in "${order[@]}"; do
      if [ "$forge" != 0 ] && { [ "${c#ref_}" != "$c" ] || [ "$c" = coturn ] || [ "$c" = tailscale ]; }; then continue; fi
      start_relay "$c"
      if ! "$bin/loadgen" --relay="127.0.0.1:$port" "${how[@]}" --pairs="$pairs" --setup_rate=0 \
          --size="$size" --burst="$burst" --burst_size="$bsize" --rate="$rate" \
          --duration="${seconds}s" --cpu=1 --relay_cpu=0 --rx=count --forge_rate="$forge" \
          --quiet --json="$work/r.json" \
          > "$work/lg.log" 2>&1; then
        echo "compare: round $round $name $c: loadgen failed: $(tail -3 "$work/lg.log")" >&2
        stop_relay
        continue
      fi
      stop_relay
      python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j.update(round=int(sys.argv[2]), scenario=sys.argv[3], contender=sys.argv[4]); print(json.dumps(j))' \
        "$work/r.json" "$round" "$name" "$c" >> "$raw"
      printf "round %s %-12s %-13s %s\n" "$round" "$name" "$c" \
        "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.3f Mpps %.2f Gbit/s loss %.2f%% relay %.0f%% %s" % (j["delivered_mpps"], j["delivered_gbps"], j["loss_percent"], 100*j["relay_busy"], j["bound"]))' "$work/r.json")"
    done
  done
done
# Handshakes completed end to end: 8 client threads setting up 1000 pairs (HTTP
# allocation, Bind, Challenge, Answer, probe for each side), as fast as the
# relay answers, relayd with 1 and 2 workers, unpinned.
if [ "$quick" = 0 ] && [ "${tailscale_only:-0}" = 0 ]; then
  for round in $(seq "$rounds"); do
    for w in 1 2; do
      "$bin/relayd" --listen=127.0.0.1 --port=0 --workers=$w --admin_listen=127.0.0.1:0 \
        --admin_token_file="$work/token" --alloc_rate=100000 --alloc_burst=100000 \
        --alloc_rate_total=100000 --alloc_burst_total=100000 2> "$work/relay.log" &
      relay_pid=$!
      for _ in $(seq 100); do grep -q "admin API on" "$work/relay.log" && break; sleep 0.05; done
      port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$work/relay.log" | head -1)
      admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$work/relay.log" | head -1)
      if "$bin/loadgen" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
          --pairs=1000 --setup_rate=0 --setup_threads=8 --max_datagrams=1 --duration=1s --quiet \
          --json="$work/r.json" > "$work/lg.log" 2>&1; then
        python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j.update(round=int(sys.argv[2]), scenario=sys.argv[3], contender="relayd_uring"); print(json.dumps(j))' \
          "$work/r.json" "$round" "handshakes-${w}w" >> "$raw"
        printf "round %s handshakes, %s worker(s): %s/s\n" "$round" "$w" \
          "$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["handshakes_per_second"]))' "$work/r.json")"
      fi
      stop_relay
    done
  done
fi
if [ "${engines_only:-0}" = 1 ]; then
  python3 "$root/bench/engines_report.py" "$raw" "$out"
else
  python3 "$root/bench/compare_report.py" "$raw" "$out"
fi
