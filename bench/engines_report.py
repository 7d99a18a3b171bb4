#!/usr/bin/env python3
"""Judges bench/compare.sh --engines: io_uring (and its variants) against mmsg.

  engines_report.py RAW.jsonl OUT_DIR

Per scenario and contender, over the rounds where the relay core was at
least 95% busy (relay-bound; the others measure the generator): median
[min-max] delivered Mpps. Then each io_uring contender's ratio to
relayd_mmsg, paired per round (both relay-bound in that round): median
[min-max] over the rounds. Writes OUT_DIR/engines.json.
"""
import json
import os
import statistics
import sys

BOUND = 0.95


def main():
    raw, out = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(raw) if l.strip()]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    contenders = list(dict.fromkeys(r["contender"] for r in rows))
    contenders.sort(key=lambda c: (c != "relayd_mmsg", c != "relayd_uring", c))
    result = {"bound_share": BOUND, "rows": [], "ratios": []}
    print("%-11s %-20s %-28s %s" % ("scenario", "contender",
                                    "Mpps median [min-max]", "relay-bound rounds"))
    for s in scenarios:
        for c in contenders:
            rs = [r for r in rows if r["scenario"] == s and r["contender"] == c]
            bound = [r["delivered_mpps"] for r in rs if r["relay_busy"] >= BOUND]
            if not rs:
                continue
            v = bound or [r["delivered_mpps"] for r in rs]
            row = {"scenario": s, "contender": c, "rounds": len(rs),
                   "relay_bound_rounds": len(bound),
                   "mpps_median": statistics.median(v), "mpps_min": min(v),
                   "mpps_max": max(v)}
            result["rows"].append(row)
            print("%-11s %-20s %.3f [%.3f-%.3f]%s %d of %d" % (
                s, c, row["mpps_median"], row["mpps_min"], row["mpps_max"],
                "" if bound else " (none bound: all rounds)", len(bound), len(rs)))
    print()
    for s in scenarios:
        for c in contenders:
            if c == "relayd_mmsg":
                continue
            per = []
            for rnd in sorted(set(r["round"] for r in rows)):
                a = [r for r in rows if r["round"] == rnd and r["scenario"] == s
                     and r["contender"] == c]
                b = [r for r in rows if r["round"] == rnd and r["scenario"] == s
                     and r["contender"] == "relayd_mmsg"]
                if not a or not b or b[0]["delivered_mpps"] <= 0:
                    continue
                both = a[0]["relay_busy"] >= BOUND and b[0]["relay_busy"] >= BOUND
                per.append((a[0]["delivered_mpps"] / b[0]["delivered_mpps"], both))
            if not per:
                continue
            bound = [x for x, both in per if both]
            v = bound or [x for x, _ in per]
            r = {"scenario": s, "contender": c, "against": "relayd_mmsg",
                 "paired_rounds": len(per), "relay_bound_pairs": len(bound),
                 "ratio_median": statistics.median(v), "ratio_min": min(v),
                 "ratio_max": max(v)}
            result["ratios"].append(r)
            print("%-11s %-20s %.3fx [%.3f-%.3f] of mmsg, per round (%d of %d pairs relay-bound)" % (
                s, c, r["ratio_median"], r["ratio_min"], r["ratio_max"],
                len(bound), len(per)))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "engines.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
