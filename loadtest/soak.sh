#!/usr/bin/env bash
# Soak: relayd under replayed captures, churn and hostile streams for a
# while, sampled every second, judged at the end.
#
#   bash loadtest/soak.sh [--duration=SECONDS] [--out=DIR] [--engine=auto|io_uring|mmsg]
#                      [--load] [CAPTURE.pcap ...]
#
# --load: a soak that stresses. The captures are replayed as fast as they go
# (not at twice their pace), and a loadgen stream of GSO bursts (1400 B, 2
# pairs) runs for the whole duration at half of the relay's capacity,
# measured first by a 3 s saturating run; churn and the hostile streams go on
# at the same time. The same judgement applies (kernel drops, if any, are
# in the accounting). --engine picks relayd's packet engine.
# Runs (all on 127.0.0.1, every loop bounded by --duration):
#   - relayd with short lifetimes (bind 3s, steady state 5s)
#   - one pcap_replay per capture (default: the captures in tests/data),
#     looping at twice the captured pace, each session with a fresh
#     endpoint and handshake; the hostile capture with --hostile
#   - one pcap_replay --hostile_all stream (every captured datagram sent
#     unbound: all must be dropped)
#   - churn: loadgen runs of 4 pairs each (new allocations, a re-bind with a
#     new generation, 2 s of traffic, then abandoned to expire) and HTTP
#     allocations that are never bound (expire after the bind lifetime)
# and samples relayd's RSS, open fds, threads and metrics each second. At
# the end it asserts:
#   - accounting: every datagram the tools sent to the relay is relayd's
#     received + kernel drops, and received = relayed + slow path + dropped
#     by reason (worker stage), slow path = challenges + handshakes + UDP
#     allocations + relayed + dropped (slow-path stage)
#   - flat: after warm-up (the first 20%, at least 10 s) threads do not
#     change, open fds vary by at most 4 (admin connections in flight),
#     RSS grows by at most 10% + 8 MiB
#   - every endpoint expired once the last lifetime passed
#   - no datagram delivered to a wrong pair (misdelivered) or corrupted
# and prints a one-line verdict and writes soak.png (rate, RSS, endpoints
# over time), samples.tsv and each tool's JSON to --out. Exit 0 on PASS.
#
# Binaries: $RELAYD, $LOADGEN, $PCAP_REPLAY when set (the test passes
# them), else built with bazel (-c opt).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
duration=60
out=""
load=0
engine=auto
captures=()
for a in "$@"; do
  case "$a" in
    --duration=*) duration="${a#*=}" ;;
    --out=*) out="${a#*=}" ;;
    --load) load=1 ;;
    --engine=auto|--engine=io_uring|--engine=mmsg) engine="${a#*=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "soak: unknown flag $a" >&2; exit 2 ;;
    *) captures+=("$a") ;;
  esac
done
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 20 ] && [ "$duration" -le 604800 ] \
  || { echo "soak: --duration must be 20..604800 seconds" >&2; exit 2; }
[ ${#captures[@]} -gt 0 ] || captures=("$root"/tests/data/*.pcap)
for c in "${captures[@]}"; do [ -r "$c" ] || { echo "soak: cannot read $c" >&2; exit 2; }; done
if [ -z "${RELAYD:-}" ]; then
  (cd "$root" && bazel build -c opt //tools:relayd //loadtest/loadgen //loadtest/pcap:pcap_replay >/dev/null 2>&1)
  bin="$(cd "$root" && bazel info -c opt bazel-bin 2>/dev/null)"
  RELAYD="$bin/tools/relayd"; LOADGEN="$bin/loadtest/loadgen/loadgen"; PCAP_REPLAY="$bin/loadtest/pcap/pcap_replay"
fi
[ -n "$out" ] || out=$(mktemp -d /tmp/soak.XXXXXX)
mkdir -p "$out"
work=$(mktemp -d)
pids=()
relayd_pid=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$relayd_pid" ] && kill -9 "$relayd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
echo tok > "$work/token"
bind_s=3
steady_s=5

# --load: the relay's capacity, measured on a relayd of its own (3 s of
# saturating GSO bursts: the kernel drops coalesced bursts whole and counts
# each as one, so that run must not be in the soak's accounting); the soak
# then runs at half of it.
if [ "$load" = 1 ]; then
  "$RELAYD" --listen=127.0.0.1 --port=0 --admin_listen=127.0.0.1:0 --engine="$engine" \
    --admin_token_file="$work/token" --alloc_rate=1000 --alloc_burst=1000 2> "$out/capacity-relayd.log" &
  cap_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$out/capacity-relayd.log" 2>/dev/null && break; sleep 0.05; done
  cport=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$out/capacity-relayd.log" | head -1)
  cadmin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$out/capacity-relayd.log" | head -1)
  "$LOADGEN" --relay="127.0.0.1:$cport" --admin="$cadmin" --token_file="$work/token" \
    --pairs=2 --size=1400 --burst=gso --rate=0 --duration=3s --rx=count --quiet \
    --json="$out/capacity.json" > "$out/capacity.log" 2>&1 \
    || { echo "soak: capacity run failed: $(tail -2 "$out/capacity.log")"; kill $cap_pid; exit 1; }
  kill -TERM $cap_pid; wait $cap_pid || true
  capacity=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["delivered_mpps"])' "$out/capacity.json")
  load_rate=$(python3 -c 'import sys; print(int(float(sys.argv[1]) * 1e6 / 2))' "$capacity")
  echo "soak: relay capacity $capacity Mpps ($engine engine); load at $load_rate datagrams/s"
  echo "$load_rate" > "$out/load_rate"
fi

"$RELAYD" --listen=127.0.0.1 --port=0 --admin_listen=127.0.0.1:0 --engine="$engine" \
  --admin_token_file="$work/token" --alloc_rate=1000 --alloc_burst=1000 \
  --bind_lifetime="${bind_s}s" --steady_state_lifetime="${steady_s}s" \
  2> "$out/relayd.log" &
relayd_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$out/relayd.log" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/.* port \([0-9]*\) engine.*/\1/p' "$out/relayd.log" | head -1)
admin=$(sed -n 's/.*admin API on \([0-9.:]*\).*/\1/p' "$out/relayd.log" | head -1)
[ -n "$port" ] && [ -n "$admin" ] || { echo "soak: relayd did not start:"; cat "$out/relayd.log"; exit 1; }

metrics() { curl -sf -m 5 -H "Authorization: Bearer tok" "http://$admin/metrics"; }
msum() {  # metric name [label filter]: sum of the matching series in file $1
  awk -v n="$2" -v f="${3:-}" '(index($1, n "{") == 1 || $1 == n) && index($1, f) {s += $2} END {printf "%.0f\n", s + 0}' "$1"
}

replay_speed=2
[ "$load" = 1 ] && replay_speed=0

# Sampler: one line per second until told to stop.
start=$(date +%s.%N)
(
  echo -e "t\trss_kib\tfds\tthreads\tendpoints\treceived\tforwarded\tdropped"
  while [ ! -e "$work/stop_sampling" ]; do
    now=$(date +%s.%N)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$relayd_pid/status" 2>/dev/null || echo 0)
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$relayd_pid/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$relayd_pid/fd" 2>/dev/null | wc -l)
    if metrics > "$work/m" 2>/dev/null; then
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$(awk -v a="$now" -v b="$start" 'BEGIN {printf "%.1f", a - b}')" "$rss" "$fds" "$thr" \
        "$(msum "$work/m" peerrelay_endpoints)" "$(msum "$work/m" peerrelay_received_datagrams_total)" \
        "$(msum "$work/m" peerrelay_forwarded_packets_total)" "$(msum "$work/m" peerrelay_dropped_datagrams_total)"
    fi
    sleep 1
  done
) > "$out/samples.tsv" &
sampler=$!

# Replayers: each capture, looping for the whole run; the hostile one with
# its invalid datagrams; and one unbound stream of everything.
i=0
for c in "${captures[@]}"; do
  extra=()
  grep -q hostile <<< "$(basename "$c")" && extra=(--hostile)
  "$PCAP_REPLAY" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
    --speed="$replay_speed" --duration="${duration}s" --exclusive=false --quiet "${extra[@]}" \
    --json="$out/replay$i.json" "$c" > "$out/replay$i.log" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done
"$PCAP_REPLAY" --relay="127.0.0.1:$port" --admin="$admin" --hostile_all --speed=1 \
  --duration="${duration}s" --exclusive=false --quiet --json="$out/hostile_all.json" \
  "${captures[0]}" > "$out/hostile_all.log" 2>&1 &
pids+=($!)

if [ "$load" = 1 ]; then
  "$LOADGEN" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
    --pairs=2 --size=1400 --burst=gso --rate="$load_rate" --direction=both \
    --duration="$((duration - 5))s" --rx=count --quiet --json="$out/churn-load.json" \
    > "$out/load.log" 2>&1 &
  pids+=($!)
fi

# Churn until the end. Under --load the kernel drops a share of every
# datagram stream, handshakes too (about a quarter in the hour-long runs):
# a churn client then gets 10 handshake rounds, as a real client keeps
# starting rounds until one completes (3 rounds failed 8% of the runs).
setup_rounds=3
[ "$load" = 1 ] && setup_rounds=10
end=$(( $(date +%s) + duration ))
n=0
while [ $(( $(date +%s) + 3 )) -lt "$end" ]; do
  "$LOADGEN" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" \
    --pairs=4 --rebinds=1 --setup_rounds="$setup_rounds" --size=120 --rate=200 --duration=2s \
    --direction=both --check_payload --quiet --json="$out/churn$n.json" > "$out/churn$n.log" 2>&1 \
    || echo "soak: churn run $n failed: $(tail -1 "$out/churn$n.log")" >> "$out/problems"
  k1=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n'); k2=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  curl -sf -m 5 -H "Authorization: Bearer tok" -H "Content-Type: application/json" \
    -d "{\"DiscoKeys\":[\"discokey:$k1\",\"discokey:$k2\"]}" \
    "http://$admin/v0/relay/endpoint" > /dev/null || echo "soak: allocation $n refused" >> "$out/problems"
  n=$((n + 1))
done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
# The last lifetime: steady state after the last datagram, plus the sweep.
sleep $((steady_s + 3))
metrics > "$out/metrics.txt"
touch "$work/stop_sampling"
wait "$sampler" || true
kill -TERM "$relayd_pid"; wait "$relayd_pid" || true; relayd_pid=

rc=0
python3 - "$out" "$duration" "$n" "$load" <<'PY' || rc=$?
import glob, json, os, re, sys
out, duration, churn_runs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
load = sys.argv[4] == "1"
# A kernel drop is one socket buffer: with UDP GRO, a coalesced burst of up
# to 128 datagrams is dropped (and counted) as one.
MAX_SEGMENTS = 128
problems = []
if os.path.exists(os.path.join(out, "problems")):
    problems += open(os.path.join(out, "problems")).read().split("\n")
    problems = [p for p in problems if p]

def series(text):
    s = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, v = line.rpartition(" ")
        s[name] = float(v)
    return s
m = series(open(os.path.join(out, "metrics.txt")).read())
def total(name, stage=None):
    t = 0
    for k, v in m.items():
        base = k.split("{")[0]
        if base != name:
            continue
        if stage and f'stage="{stage}"' not in k:
            continue
        t += v
    return int(t)

# What the tools sent to the relay.
sent = 0
replay_lost = replay_sent = misdelivered = corrupted = dup = 0
hostile_sent = hostile_answered = 0
for f in sorted(glob.glob(os.path.join(out, "replay*.json")) + [os.path.join(out, "hostile_all.json")]):
    j = json.load(open(f))
    sent += j["datagrams_to_relay"]
    t = j["total"]
    replay_sent += t["sent"]; replay_lost += t["lost"]
    misdelivered += t["misdelivered"]; corrupted += t["corrupted"]; dup += t["duplicates"]
    hostile_sent += j["hostile_sent"]; hostile_answered += j["hostile_answered"]
    # Under --load the kernel may drop some hostile datagrams before relayd
    # counts them: what must hold is that none was answered.
    if not j["hostile_ok"] and (not load or j["hostile_answered"]):
        problems.append(f"{os.path.basename(f)}: hostile check failed (answered {j['hostile_answered']})")
churn_sent = 0
for f in glob.glob(os.path.join(out, "churn*.json")):
    j = json.load(open(f))
    sent += j["datagrams_to_relay"]
    churn_sent += j["sent"]
    misdelivered += j["misdelivered"]; corrupted += j["corrupted"]

received = total("peerrelay_received_datagrams_total", "worker")
kernel = total("peerrelay_kernel_socket_drops_total")
relayed_w = total("peerrelay_relayed_datagrams_total", "worker")
slow_w = total("peerrelay_slow_path_datagrams_total", "worker")
dropped_w = total("peerrelay_dropped_datagrams_total", "worker")
relayed_s = total("peerrelay_relayed_datagrams_total", "slow_path")
dropped_s = total("peerrelay_dropped_datagrams_total", "slow_path")
handled_s = (total("peerrelay_challenges_sent_total", "slow_path") +
             total("peerrelay_handshakes_completed_total", "slow_path") +
             total("peerrelay_udp_allocations_total", "slow_path"))
drops = {}
for k, v in m.items():
    if k.startswith("peerrelay_dropped_datagrams_total{") and v:
        r = re.search(r'reason="([^"]*)"', k).group(1)
        drops[r] = drops.get(r, 0) + int(v)
# Exact when the kernel dropped nothing; with kernel drops (--load), the
# datagrams missing are at least one and at most MAX_SEGMENTS per drop.
missing = sent - received
acc1 = (missing == kernel) if kernel == 0 or not load else (
    kernel <= missing <= kernel * MAX_SEGMENTS)
acc2 = received == relayed_w + slow_w + dropped_w
acc3 = slow_w == handled_s + relayed_s + dropped_s
if not acc1:
    problems.append(f"accounting: tools sent {sent}, relayd received {received} + kernel drops {kernel}"
                    + (f" (missing {missing}: not within 1..{MAX_SEGMENTS} per kernel drop)" if load else ""))
if not acc2:
    problems.append(f"accounting: received {received} != relayed {relayed_w} + slow path {slow_w} + dropped {dropped_w}")
if not acc3:
    problems.append(f"accounting: slow path {slow_w} != handled {handled_s} + relayed {relayed_s} + dropped {dropped_s}")

rows = [l.split("\t") for l in open(os.path.join(out, "samples.tsv")).read().splitlines()[1:]]
rows = [[float(x) for x in r] for r in rows if len(r) == 8]
warm = max(10.0, 0.2 * duration)
steady = [r for r in rows if warm <= r[0] <= duration]
if len(steady) < 5:
    problems.append(f"only {len(steady)} samples after warm-up")
    steady = rows[-5:] or [[0] * 8]
rss0, rss1 = steady[0][1], max(r[1] for r in steady)
fds = [r[2] for r in steady]; thr = [r[3] for r in steady]
rss_ok = rss1 <= rss0 * 1.10 + 8 * 1024
if not rss_ok:
    problems.append(f"RSS grew from {rss0/1024:.1f} to {rss1/1024:.1f} MiB after warm-up (tolerance 10% + 8 MiB)")
if max(thr) != min(thr):
    problems.append(f"threads changed after warm-up: {min(thr):.0f}..{max(thr):.0f}")
if max(fds) - min(fds) > 4:
    problems.append(f"open fds varied after warm-up: {min(fds):.0f}..{max(fds):.0f} (tolerance 4)")
endpoints_end = total("peerrelay_endpoints")
if endpoints_end != 0:
    problems.append(f"{endpoints_end} endpoints left after the last lifetime")
if misdelivered or corrupted:
    problems.append(f"{misdelivered} misdelivered, {corrupted} corrupted")
if hostile_answered:
    problems.append(f"relayd answered {hostile_answered} hostile datagrams")

# Rate from the received counter.
with open(os.path.join(out, "plot.tsv"), "w") as p:
    p.write("t\trate\trss_mib\tendpoints\n")
    for a, b in zip(rows, rows[1:]):
        dt = b[0] - a[0]
        p.write(f"{b[0]:.1f}\t{(b[5] - a[5]) / dt if dt > 0 else 0:.0f}\t{b[1] / 1024:.2f}\t{b[4]:.0f}\n")

verdict = "PASS" if not problems else "FAIL"
if not (acc1 and acc2 and acc3):
    accounting = "MISMATCH"
elif kernel and load:
    accounting = (f"explained: {missing} missing in {kernel} kernel drops of coalesced bursts, "
                  f"{missing / kernel:.1f} per drop")
else:
    accounting = "exact"
line = (f"soak: {verdict} {duration:.0f}s: sent {sent} to the relay, received {received} + kernel drops {kernel} "
        f"({accounting}): relayed {relayed_w + relayed_s}, "
        f"dropped {dropped_w + dropped_s} ({', '.join(f'{k} {v}' for k, v in sorted(drops.items())) or 'none'}); "
        f"replayed {replay_sent} lost {replay_lost} dup {dup}, churn {churn_runs} runs {churn_sent} datagrams, "
        f"hostile {hostile_sent} sent 0 answered; misdelivered {misdelivered}; "
        f"RSS {rss0/1024:.1f}->{rss1/1024:.1f} MiB, fds {min(fds):.0f}..{max(fds):.0f}, threads {min(thr):.0f}..{max(thr):.0f} "
        f"after {warm:.0f}s warm-up; endpoints at end {endpoints_end}")
print(line)
for p in problems:
    print("  problem:", p)
open(os.path.join(out, "verdict.txt"), "w").write(line + "\n" + "".join(f"  problem: {p}\n" for p in problems))
sys.exit(0 if verdict == "PASS" else 1)
PY
gnuplot <<GP 2> /dev/null || echo "soak: no plot (gnuplot failed)"
set terminal png size 900,900
set output "$out/soak.png"
set multiplot layout 3,1 title "relayd soak ($duration s)"
set xlabel "seconds"
set key off
set grid
set ylabel "datagrams/s received"
plot "$out/plot.tsv" using 1:2 skip 1 with lines lw 2
set ylabel "RSS (MiB)"
set yrange [0:*]
plot "$out/plot.tsv" using 1:3 skip 1 with lines lw 2
set ylabel "endpoints"
plot "$out/plot.tsv" using 1:4 skip 1 with lines lw 2
unset multiplot
GP
echo "soak: results in $out (soak.png, samples.tsv, verdict.txt, metrics.txt)"
exit $rc
