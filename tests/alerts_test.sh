#!/usr/bin/env bash
# The Prometheus alert rules (deploy/prometheus/relayd-alerts.yml): promtool
# accepts them, its unit tests fire each alert on the series meant to raise
# it (relayd-alerts_test.yml), and a live relayd's scrape, taken while
# loadgen traffic flows, passes `promtool check metrics` and raises none of
# them when held for half an hour (the accounting identity holds within
# the rule's margin mid-traffic).
set -euo pipefail
RELAYD="$1"
LOADGEN="$2"
RULES="$3"
RULES_TEST="$4"
work=$(mktemp -d)
pid=
trap 'kill -9 $pid $lg 2>/dev/null || true; rm -rf "$work"' EXIT
lg=
fail() { echo "FAIL: $*"; exit 1; }
if ! command -v promtool > /dev/null; then
  [ -z "${CI:-}" ] || fail "promtool is not installed (scripts/install_deps.sh installs prometheus)"
  echo "alerts test: skipped: no promtool (apt install prometheus)"; exit 0
fi
cp "$RULES" "$RULES_TEST" "$work/"
rules=$(basename "$RULES")
promtool check rules "$work/$rules" || fail "promtool check rules"
(cd "$work" && promtool test rules "$(basename "$RULES_TEST")") || fail "promtool test rules"

echo "tok" > "$work/token"
: > "$work/allow"
source "$(dirname "$0")/relayd_lib.sh"
start_relayd 127.0.0.1
"$LOADGEN" --relay="127.0.0.1:$port" --admin="$admin" --token_file="$work/token" --pairs=4 \
  --size=300 --rate=20000 --duration=4s --direction=both --quiet > "$work/loadgen.log" 2>&1 &
lg=$!
sleep 2
curl -sf "http://$admin/metrics" > "$work/scrape.txt" || fail "scrape"
wait $lg || fail "loadgen: $(cat "$work/loadgen.log")"
lg=
relayed=$(awk '/^peerrelay_relayed_datagrams_total/ {s += $2} END {print s + 0}' "$work/scrape.txt")
[ "$relayed" -gt 10000 ] || fail "the scrape was not taken under traffic (relayed $relayed)"
promtool check metrics < "$work/scrape.txt" > "$work/lint.txt" 2>&1 || fail "promtool check metrics: $(cat "$work/lint.txt")"

# The scrape as a promtool test: every sample held for 30 minutes on
# instance "live", scraped up all along; no alert may fire.
{
  echo "rule_files: [$rules]"
  echo "evaluation_interval: 1m"
  echo "tests:"
  echo "  - interval: 1m"
  echo "    input_series:"
  echo "      - series: 'up{job=\"relayd\", instance=\"live\"}'"
  echo "        values: '1x30'"
  grep -v '^#' "$work/scrape.txt" | grep '^peerrelay_' | while read -r series value; do
    if [[ "$series" == *"{"* ]]; then
      series="${series%\}}, job=\"relayd\", instance=\"live\"}"
    else
      series="$series{job=\"relayd\", instance=\"live\"}"
    fi
    printf "      - series: '%s'\n        values: '%sx30'\n" "$series" "$value"
  done
  echo "    alert_rule_test:"
  for a in $(sed -n 's/^ *- alert: //p' "$work/$rules"); do
    printf "      - eval_time: 25m\n        alertname: %s\n        exp_alerts: []\n" "$a"
  done
} > "$work/live_test.yml"
n=$(grep -c "alertname:" "$work/live_test.yml")
[ "$n" = 7 ] || fail "$n alerts in the rules, want 7"
(cd "$work" && promtool test rules live_test.yml) > "$work/live.out" 2>&1 \
  || fail "alerts on a healthy live relay: $(cat "$work/live.out")"
kill -TERM $pid; wait $pid || fail "relayd exit"
echo "alerts test: 7 rules, unit tests pass, a live scrape ($relayed relayed) lints clean and raises none"
