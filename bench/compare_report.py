#!/usr/bin/env python3
"""Turns bench/compare.sh's raw results into the table, the JSON and the chart.

  compare_report.py RAW.jsonl OUT_DIR

Per scenario and contender: median [min-max] of delivered Mpps and Gbit/s
over the rounds, the relay core's median busy share, and how many rounds
were relay-bound. Then each relayd engine's ratio to each reference (ratio
of medians). Writes OUT_DIR/compare.json and, with gnuplot, OUT_DIR/compare.png.
"""
import json
import os
import statistics
import subprocess
import sys

REFS = ["ref_mmsg", "ref_mmsg_gso", "ref_gro_gso", "coturn", "tailscale"]
RELAYD = ["relayd_uring", "relayd_mmsg"]


def main():
    raw, out = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(raw) if l.strip()]
    hs = [r for r in rows if r["scenario"].startswith("handshakes")]
    rows = [r for r in rows if not r["scenario"].startswith("handshakes")]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    order = RELAYD + REFS
    contenders = sorted(set(r["contender"] for r in rows),
                        key=lambda c: order.index(c) if c in order else len(order))
    table = {}
    for s in scenarios:
        for c in contenders:
            rs = [r for r in rows if r["scenario"] == s and r["contender"] == c]
            if not rs:
                continue
            mpps = [r["delivered_mpps"] for r in rs]
            gbps = [r["delivered_gbps"] for r in rs]
            busy = [r["relay_busy"] for r in rs if r["relay_busy"] >= 0]
            table[(s, c)] = {
                "scenario": s, "contender": c, "rounds": len(rs),
                "mpps_median": statistics.median(mpps), "mpps_min": min(mpps),
                "mpps_max": max(mpps),
                "gbps_median": statistics.median(gbps), "gbps_min": min(gbps),
                "gbps_max": max(gbps),
                "loss_percent_median": statistics.median(r["loss_percent"] for r in rs),
                "relay_busy_median": statistics.median(busy) if busy else -1,
                "relay_bound_rounds": sum(r["bound"] == "relay-bound" for r in rs),
                # Relay CPU per delivered datagram: the relay core's busy
                # share over the datagrams delivered per second, per round.
                "relay_ns_per_datagram_median": statistics.median(
                    [r["relay_busy"] * 1e3 / r["delivered_mpps"] for r in rs
                     if r["relay_busy"] >= 0 and r["delivered_mpps"] > 0] or [-1]),
            }
    print()
    print("%-12s %-13s %-26s %-24s %6s %8s %9s %s" % (
        "scenario", "contender", "Mpps median [min-max]", "Gbit/s median [min-max]",
        "loss", "relay cpu", "ns/dgram", "relay-bound rounds"))
    for (s, c), t in table.items():
        print("%-12s %-13s %-26s %-24s %5.2f%% %7.0f%% %9.0f %d/%d" % (
            s, c,
            "%.3f [%.3f-%.3f]" % (t["mpps_median"], t["mpps_min"], t["mpps_max"]),
            "%.2f [%.2f-%.2f]" % (t["gbps_median"], t["gbps_min"], t["gbps_max"]),
            t["loss_percent_median"], 100 * t["relay_busy_median"],
            t["relay_ns_per_datagram_median"],
            t["relay_bound_rounds"], t["rounds"]))
    ratios = []
    print()
    print("ratios of medians (delivered Mpps):")
    for s in scenarios:
        for r in RELAYD:
            if (s, r) not in table:
                continue
            parts = []
            for ref in REFS + (["relayd_mmsg"] if r == "relayd_uring" else []):
                if (s, ref) in table and table[(s, ref)]["mpps_median"] > 0:
                    x = table[(s, r)]["mpps_median"] / table[(s, ref)]["mpps_median"]
                    ratios.append({"scenario": s, "relayd": r, "reference": ref, "ratio": x})
                    parts.append("%s %.2fx" % (ref, x))
            print("  %-12s %-13s %s" % (s, r, ", ".join(parts)))
    # The flood ratio per round (flooded and unflooded runs of one round are
    # minutes apart at most), then the median: the machine drifts between
    # rounds more than the flood costs.
    for r in RELAYD:
        per_round = []
        for rnd in sorted(set(x["round"] for x in rows)):
            f = [x for x in rows if x["round"] == rnd and x["contender"] == r
                 and x["scenario"] == "1400B-gso-flood"]
            b = [x for x in rows if x["round"] == rnd and x["contender"] == r
                 and x["scenario"] == "1400B-gso"]
            if f and b and b[0]["delivered_mpps"] > 0:
                per_round.append(f[0]["delivered_mpps"] / b[0]["delivered_mpps"])
        if per_round:
            x = statistics.median(per_round)
            ratios.append({"scenario": "1400B-gso-flood", "relayd": r,
                           "reference": r + " unflooded, same round",
                           "ratio": x, "min": min(per_round),
                           "max": max(per_round)})
            print("  %-12s %-13s %.2fx [%.2f-%.2f] of its unflooded 1400B-gso "
                  "rate in the same round (median of %d rounds)" % (
                      "flood", r, x, min(per_round), max(per_round),
                      len(per_round)))
    handshakes = []
    for s in sorted(set(r["scenario"] for r in hs)):
        v = [r["handshakes_per_second"] for r in hs if r["scenario"] == s]
        handshakes.append({"scenario": s, "median": statistics.median(v),
                           "min": min(v), "max": max(v), "rounds": len(v)})
        print("  %-16s %.0f handshakes/s [%.0f-%.0f] over %d rounds" % (
            s, statistics.median(v), min(v), max(v), len(v)))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump({"results": list(table.values()), "ratios": ratios,
                   "handshakes": handshakes}, f, indent=2)
    chart(table, scenarios, contenders, out)


def chart(table, scenarios, contenders, out):
    dat = os.path.join(out, "compare.dat")
    with open(dat, "w") as f:
        f.write("scenario " + " ".join(contenders) + "\n")
        for s in scenarios:
            vals = []
            for c in contenders:
                t = table.get((s, c))
                vals.append("%.4f" % t["mpps_median"] if t else "0")
            f.write(s + " " + " ".join(vals) + "\n")
    png = os.path.join(out, "compare.png")
    plot = ", ".join(
        "'%s' using %d:xtic(1) title '%s'" % (dat, i + 2, c.replace("_", " "))
        for i, c in enumerate(contenders))
    script = """
set terminal pngcairo size 1100,600 noenhanced
set output '%s'
set title 'Delivered Mpps, median of rounds (relay on one core, loadgen on the other)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top right
set ylabel 'Mpps'
set grid ytics
set yrange [0:*]
set offset -0.6,-0.6,0,0
plot %s
""" % (png, plot)
    try:
        subprocess.run(["gnuplot"], input=script.encode(), check=True)
        print("\nchart: " + png)
    except (OSError, subprocess.CalledProcessError) as e:
        print("\nchart not drawn (gnuplot: %s); data in %s" % (e, dat))


if __name__ == "__main__":
    main()
