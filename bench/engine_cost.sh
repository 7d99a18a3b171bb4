#!/usr/bin/env bash
# What each io_uring technique costs or saves: relayd's CPU time per relayed
# datagram at a fixed rate, per engine variant, in interleaved rounds.
#
#   bash bench/engine_cost.sh [--rounds 5] [--size 64] [--rate 6000000]
#                             [--pairs 1] [--burst gso|plain] [VARIANT ...]
#
# --pairs 2000 --burst plain --rate 100000: the many-pairs mix (one datagram
# per send to 2000 pairs, nothing coalesces), below the generator's limit.
#
# Variants (default: all): mmsg (the recvmmsg/sendmmsg engine), base (io_uring
# as it was: one sendmmsg per batch, no registered fds), sqe_only (sends as
# SQEs in the waiting enter), fds_only (registered ring fd + fixed socket),
# uring (sqe + fds: relayd's defaults), skip (uring + IOSQE_CQE_SKIP_SUCCESS),
# skip_nofds.
#
# Why CPU per datagram and not delivered Mpps: on this 2-core VM the
# saturated throughput of the same binary swings by 20-40% between rounds
# (bench/compare.sh --engines shows it), while the relay's CPU time at a
# rate it can sustain (relay core 85-93% busy, no loss) repeats within a few
# percent. A relay-bound engine's throughput is the inverse of this cost,
# so mmsg's cost / a variant's cost is its throughput ratio. The relay is
# pinned to CPU 0 with one worker, loadgen to CPU 1 (--rx=count); each run
# sends for 6 s and measures 3 s of it, starting a second after relaying
# began (the pairs' setup is not counted): relayd's CPU time from
# /proc/PID/stat (utime + stime, 10 ms ticks) over its own relayed counter.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=5; size=64; rate=6000000; pairs=1; burst=gso; names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --burst) burst=$2; shift 2 ;;
    -*) echo "engine_cost: unknown flag $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
declare -A V=(
  [mmsg]="--engine=mmsg"
  [base]="--engine=io_uring --uring_sends=sendmmsg --uring_register_fds=false"
  [sqe_only]="--engine=io_uring --uring_register_fds=false"
  [fds_only]="--engine=io_uring --uring_sends=sendmmsg"
  [uring]="--engine=io_uring"
  [skip]="--engine=io_uring --uring_skip_send_cqes=true"
  [skip_nofds]="--engine=io_uring --uring_skip_send_cqes=true --uring_register_fds=false"
)
[ ${#names[@]} -gt 0 ] || names=(mmsg base sqe_only fds_only uring skip skip_nofds)
for n in "${names[@]}"; do [ -n "${V[$n]:-}" ] || { echo "engine_cost: no variant $n" >&2; exit 2; }; done
[ "$(nproc)" -ge 2 ] || { echo "engine_cost: needs 2 CPUs" >&2; exit 1; }
cd "$root"
bazel build -c opt //tools:relayd //loadtest/loadgen > /dev/null 2>&1
# The Bazel server (a JVM whose collector wakes on both cores) is not needed
# while measuring: stop it (the next bazel command starts it again).
bazel shutdown > /dev/null 2>&1 || true
bin=$(mktemp -d); work=$(mktemp -d); pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$bin" "$work"' EXIT
cp bazel-bin/tools/relayd bazel-bin/loadtest/loadgen/loadgen "$bin/"
echo tok > "$work/token"
: > "$work/results"
bsize=44; [ "$burst" = plain ] && bsize=1
echo "engine_cost: $rounds rounds x ${#names[@]} variants, $pairs pair(s), ${size} B $burst sends of $bsize at $rate datagrams/s"
for r in $(seq "$rounds"); do
  for n in "${names[@]}"; do
    read -r -a flags <<< "${V[$n]}"
    taskset -c 0 "$bin/relayd" --listen=127.0.0.1 --port=0 --workers=1 "${flags[@]}" \
      --admin_listen=127.0.0.1:0 --admin_token_file="$work/token" --alloc_rate=100000 \
      --alloc_burst=100000 --alloc_rate_total=100000 --alloc_burst_total=100000 \
      --max_endpoints_per_caller=0 2> "$work/r.log" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$work/r.log" && break; sleep 0.05; done
    port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$work/r.log" | head -1)
    admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$work/r.log" | head -1)
    lg=("$bin/loadgen" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token"
        --pairs="$pairs" --setup_rate=0 --size="$size" --burst="$burst" --burst_size="$bsize"
        --rate="$rate" --rx=count
        --quiet --cpu=1 --relay_cpu=0)
    # Traffic for 6 s; measured: 3 s once relaying has run for a second
    # (after the pairs' setup), by relayd's own relayed counter.
    "${lg[@]}" --duration=6s --json="$work/j.json" > /dev/null 2>&1 &
    lgpid=$!
    relayed() {
      curl -sf -m 2 "http://$admin/metrics" -H "Authorization: Bearer tok" \
        | awk '$1 ~ /^peerrelay_relayed_datagrams_total/ {s += $2} END {printf "%.0f\n", s + 0}'
    }
    started=0
    for _ in $(seq 600); do
      [ "$(relayed)" -gt $((pairs * 4 + 1000)) ] && { started=1; break; }
      sleep 0.05
    done
    sleep 1
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); r0=$(relayed)
    sleep 3
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); r1=$(relayed)
    wait "$lgpid" || true
    kill -INT "$pid"; wait "$pid" 2> /dev/null || true; pid=
    [ "$started" = 1 ] || echo "engine_cost: round $r $n: traffic never started" >&2
    python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); ticks = int(sys.argv[2]); n = sys.argv[3]
ns = ticks * 1e7 / max(1, int(sys.argv[5]))
print(json.dumps({"round": int(sys.argv[4]), "variant": n, "ns_per_datagram": ns,
                  "mpps": j["delivered_mpps"], "loss_percent": j["loss_percent"],
                  "relay_busy": j["relay_busy"]}))
print("round %s %-10s %.3f Mpps loss %.2f%% relay %.0f%%  %.1f ns/datagram" % (
    sys.argv[4], n, j["delivered_mpps"], j["loss_percent"], 100 * j["relay_busy"], ns),
    file=sys.stderr)' "$work/j.json" "$((t1 - t0))" "$n" "$r" "$((r1 - r0))" >> "$work/results"
  done
done
python3 - "$work/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["variant"], {})[r["round"]] = r["ns_per_datagram"]
print("%-11s %-26s %s" % ("variant", "ns/datagram median [min-max]", "throughput vs mmsg (mmsg cost / its cost, per round)"))
for n, v in by.items():
    line = "%-11s %.1f [%.1f-%.1f]" % (n, statistics.median(v.values()), min(v.values()), max(v.values()))
    if "mmsg" in by and n != "mmsg":
        x = [by["mmsg"][r] / v[r] for r in v if r in by["mmsg"]]
        line += "       %.3fx [%.3f-%.3f]" % (statistics.median(x), min(x), max(x))
    print(line)
PY
