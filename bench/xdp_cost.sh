#!/usr/bin/env bash
# The XDP tier against relayd's socket engines: the relay core's CPU time
# per relayed datagram at the same offered load, in interleaved rounds.
#
#   bash bench/xdp_cost.sh [--rounds 3] [--rate 80000] [--pairs 64]
#                          [--sizes "64 1400"] [--seconds 4] [--burst 1]
#                          [MODE ...]
#
# Modes (default: all): io_uring, mmsg (relayd's socket engines, --xdp=off),
# xdp_native, xdp_generic (--xdp on the relay's interface, io_uring beside
# it for what the program passes up).
#
# Two network namespaces joined by a veth, on a 2-core VM:
#   CPU 0, the relay's core: relayd (one worker) and the relay end's
#     receive processing (its NAPI, threaded and pinned here), where the
#     XDP program runs, or the kernel's UDP receive path for the sockets.
#   CPU 1: the generator (loadgen: --pairs pairs bound with real
#     handshakes, --burst datagrams per sendmmsg (1: each datagram alone),
#     pairs in turn, paced to --rate)
#     and the generator end's receive processing.
# Measured: CPU 0's busy time from /proc/stat (user, system, irq, softirq)
# over --seconds after a second of traffic, divided by what relayd relayed
# in that window (its metrics, every stage); and, for the XDP modes, the
# program's own run time per run (kernel.bpf_stats_enabled).
#
# What this setup charges the XDP tier that a NIC would not: the generator
# is sockets, so the relay's end receives skbs, and native XDP on a veth
# copies each into a page with XDP headroom before the program runs (a NIC
# DMAs into such pages). The frames also reach the program through veth's
# ring rather than a driver's; both costs are in the numbers below.
# Needs root, iproute2, ethtool, curl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3; rate=80000; pairs=64; sizes="64 1400"; seconds=4; burst=1; modes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --burst) burst=$2; shift 2 ;;
    -*) echo "xdp_cost: unknown flag $1" >&2; exit 2 ;;
    *) modes+=("$1"); shift ;;
  esac
done
declare -A M=(
  [io_uring]="--engine=io_uring --xdp=off"
  [mmsg]="--engine=mmsg --xdp=off"
  [xdp_native]="--engine=io_uring --xdp=native --xdp_interfaces=xr0"
  [xdp_generic]="--engine=io_uring --xdp=generic --xdp_interfaces=xr0"
)
[ ${#modes[@]} -gt 0 ] || modes=(io_uring mmsg xdp_native xdp_generic)
for m in "${modes[@]}"; do [ -n "${M[$m]:-}" ] || { echo "xdp_cost: no mode $m" >&2; exit 2; }; done
[ "$(id -u)" = 0 ] || { echo "xdp_cost: needs root (namespaces, BPF)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "xdp_cost: needs 2 CPUs" >&2; exit 1; }
cd "$root"
bazel build -c opt //tools:relayd //loadtest/loadgen //engine:xdp_relay_bpf > /dev/null 2>&1
bazel shutdown > /dev/null 2>&1 || true  # its JVM wakes on both cores
bin=$(mktemp -d); work=$(mktemp -d); pid=
G=xbgen$$; R=xbrelay$$
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  ip netns del "$G" 2>/dev/null || true; ip netns del "$R" 2>/dev/null || true
  rm -rf "$bin" "$work"
}
trap cleanup EXIT
cp bazel-bin/tools/relayd bazel-bin/loadtest/loadgen/loadgen bazel-bin/engine/xdp_relay.bpf.o "$bin/"
echo tok > "$work/token"; chmod 600 "$work/token"

ip netns add "$G"; ip netns add "$R"
ip -n "$G" link add xg0 type veth peer name xr0 netns "$R"
ip -n "$G" link set lo up; ip -n "$R" link set lo up
ip -n "$G" addr add 10.77.0.2/24 dev xg0
ip -n "$R" addr add 10.77.0.1/24 dev xr0
ip -n "$G" link set xg0 up; ip -n "$R" link set xr0 up
ip netns exec "$R" sysctl -qw net.ipv4.conf.xr0.forwarding=1
# Whole UDP checksums on what the generator sends, as off a wire (a veth
# otherwise passes CHECKSUM_PARTIAL skbs with only the pseudo-header sum).
ip netns exec "$G" ethtool -K xg0 tx off > /dev/null
# NAPI on both ends, threaded, so each end's receive work can be pinned to
# its core: on the relay's end GRO gives it one (an XDP program does too),
# on the generator's end an XDP program that passes everything (the relay's
# own object, no port set), which is also what a veth needs to take frames
# the other end's native XDP transmits. The same for every mode.
ip netns exec "$R" ethtool -K xr0 gro on > /dev/null
ip -n "$G" link set dev xg0 xdpdrv obj "$bin/xdp_relay.bpf.o" sec xdp
ip netns exec "$R" sh -c 'echo 1 > /sys/class/net/xr0/threaded'
ip netns exec "$G" sh -c 'echo 1 > /sys/class/net/xg0/threaded'
# A veth's qdisc drops (noop) until the link watch sees the carrier, up to
# a second after "up".
for _ in $(seq 100); do
  ip -n "$R" link show xr0 | grep -q "qdisc noqueue state UP" &&
    ip -n "$G" link show xg0 | grep -q "qdisc noqueue state UP" && break
  sleep 0.05
done

# Each end's NAPI threads (recreated when a program attaches) to its core.
pin_napi() {
  for p in $(pgrep '^napi/xr0' || true); do taskset -pc 0 "$p" > /dev/null; done
  for p in $(pgrep '^napi/xg0' || true); do taskset -pc 1 "$p" > /dev/null; done
}
cpu0_busy() {  # user nice system idle iowait irq softirq steal
  awk '$1 == "cpu0" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}
# relay_xdp's run time and runs so far ("0 0" when not loaded).
prog_stats() {
  bpftool prog show name relay_xdp 2>/dev/null \
    | sed -n 's/.*run_time_ns \([0-9]*\) run_cnt \([0-9]*\).*/\1 \2/p' | head -1 | grep . || echo "0 0"
}
relayed() {
  ip netns exec "$G" curl -sf -m 2 "http://10.77.0.1:9780/metrics" \
    | awk '$1 ~ /^peerrelay_relayed_datagrams_total/ {s += $2} END {printf "%.0f\n", s + 0}'
}

: > "$work/results"
echo "xdp_cost: $rounds rounds x ${#modes[@]} modes x sizes [$sizes], $pairs pairs, $rate datagrams/s offered"
for r in $(seq "$rounds"); do
  for size in $sizes; do
    for m in "${modes[@]}"; do
      read -r -a flags <<< "${M[$m]}"
      ip netns exec "$R" taskset -c 0 "$bin/relayd" --listen=10.77.0.1 --port=7777 --workers=1 \
        "${flags[@]}" --admin_listen=10.77.0.1:9780 --admin_token_file="$work/token" \
        --alloc_rate=100000 --alloc_burst=100000 --alloc_rate_total=100000 \
        --alloc_burst_total=100000 --max_endpoints_per_caller=0 2> "$work/r.log" &
      pid=$!
      for _ in $(seq 100); do grep -q "listening on" "$work/r.log" && break; sleep 0.05; done
      if [[ "$m" == xdp_* ]] && ! grep -q "forwarded in the kernel" "$work/r.log"; then
        echo "xdp_cost: $m did not attach: $(grep xdp "$work/r.log")" >&2; exit 1
      fi
      pin_napi
      total=$((seconds + 4))
      ip netns exec "$G" "$bin/loadgen" --relay=10.77.0.1:7777 --local=10.77.0.2 --admin=10.77.0.1:9780 \
        --token_file="$work/token" --pairs="$pairs" --setup_rate=0 --size="$size" \
        --burst=plain --burst_size="$burst" --rate="$rate" --rx=count --quiet --cpu=1 \
        --duration="${total}s" --json="$work/g.json" > /dev/null 2> "$work/g.err" &
      gpid=$!
      if [[ "$m" == xdp_* ]]; then sysctl -qw kernel.bpf_stats_enabled=1; fi
      # The window: after a second of traffic (the pairs' setup not counted).
      started=0
      for _ in $(seq 200); do
        [ "$(relayed)" -gt $((pairs * 2 + 1000)) ] && { started=1; break; }
        sleep 0.05
      done
      pin_napi
      sleep 1
      b0=$(cpu0_busy); r0=$(relayed); p0=$(prog_stats)
      sleep "$seconds"
      b1=$(cpu0_busy); r1=$(relayed); p1=$(prog_stats)
      sysctl -qw kernel.bpf_stats_enabled=0
      wait "$gpid" || { echo "xdp_cost: generator failed: $(cat "$work/g.err")" >&2; exit 1; }
      kill -INT "$pid"; wait "$pid" 2> /dev/null || true; pid=
      [ "$started" = 1 ] || echo "xdp_cost: round $r $m $size: traffic never started" >&2
      python3 -c '
import json, os, sys
g = json.load(open(sys.argv[1])); ticks = int(sys.argv[2]); relayed = max(1, int(sys.argv[3]))
hz = os.sysconf("SC_CLK_TCK"); secs = float(sys.argv[7])
p0 = [int(x) for x in sys.argv[8].split()]; p1 = [int(x) for x in sys.argv[9].split()]
runs = p1[1] - p0[1]
prog_ns = (p1[0] - p0[0]) / runs if runs > 0 else 0.0
ns = ticks * 1e9 / hz / relayed
row = {"round": int(sys.argv[4]), "mode": sys.argv[5], "size": int(sys.argv[6]),
       "ns_per_datagram": ns, "relay_core_busy": ticks / hz / secs,
       "relayed_per_s": relayed / secs, "loss_percent": g["loss_percent"],
       "program_ns_per_run": prog_ns}
print(json.dumps(row))
print("round %d %-11s %4d B  %7.0f/s relayed  relay core %3.0f%%  loss %.2f%%  %6.0f ns/datagram%s" % (
    row["round"], row["mode"], row["size"], row["relayed_per_s"], 100 * row["relay_core_busy"],
    row["loss_percent"], ns, "  (program %.0f ns/run)" % prog_ns if runs else ""), file=sys.stderr)' \
        "$work/g.json" "$((b1 - b0))" "$((r1 - r0))" "$r" "$m" "$size" "$seconds" "$p0" "$p1" \
        >> "$work/results"
    done
  done
done
python3 - "$work/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sizes = sorted({r["size"] for r in rows})
modes = []
for r in rows:
    if r["mode"] not in modes: modes.append(r["mode"])
print()
print("%-12s %5s  %-28s %-16s %-12s %s" % ("mode", "size", "relay ns/datagram med [min-max]", "relay core busy", "program ns", "io_uring's cost / this, per round"))
for size in sizes:
    by = {}
    for r in rows:
        if r["size"] == size: by.setdefault(r["mode"], {})[r["round"]] = r
    for m in modes:
        v = by.get(m, {})
        if not v: continue
        ns = [x["ns_per_datagram"] for x in v.values()]
        busy = statistics.median(x["relay_core_busy"] for x in v.values())
        prog = statistics.median(x["program_ns_per_run"] for x in v.values())
        line = "%-12s %5d  %6.0f [%6.0f-%6.0f]          %5.1f%%           %-12s " % (m, size, statistics.median(ns), min(ns), max(ns), 100 * busy, "%.0f" % prog if prog else "-")
        if "io_uring" in by and m != "io_uring":
            x = [by["io_uring"][k]["ns_per_datagram"] / v[k]["ns_per_datagram"] for k in v if k in by["io_uring"]]
            line += "%.2fx [%.2f-%.2f]" % (statistics.median(x), min(x), max(x))
        print(line)
PY
