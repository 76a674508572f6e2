#!/usr/bin/env bash
# Produce to an audit topic (audit.enabled=true: a Merkle tree leaf hashed per batch)
# against a normal topic, interleaved in each round, on one broker.
#
#   benches/audit_bench.sh [ROUNDS] [DURATION]
#
# Each round, for 1 and 8 partitions, creates fresh topics `plain-P-R` and `audit-P-R`
# and runs `strata bench produce --size 1024 --acks all` for DURATION (default 5s) on
# each, then prints records per second and the ratio audit / plain.
set -euo pipefail

ROUNDS=${1:-3}
DURATION=${2:-5s}
BIN=${STRATA_BIN:-target/release/strata}
WORK=$(mktemp -d)
KAFKA=127.0.0.1:29192
ADMIN=127.0.0.1:29744
PID=

cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" serve --data-dir "$WORK/data" --kafka-addr "$KAFKA" --admin-addr "$ADMIN" \
  >> "$WORK/serve.log" 2>&1 &
PID=$!
until curl -fs "http://$ADMIN/health" > /dev/null 2>&1; do sleep 0.1; done

rate() {
  "$BIN" bench produce --brokers "$KAFKA" --topic "$1" --size 1024 --acks all \
    --duration "$DURATION" --json |
    python3 -c 'import json, sys; print(round(json.load(sys.stdin)["messages_per_sec"]))'
}

for round in $(seq 1 "$ROUNDS"); do
  for p in 1 8; do
    "$BIN" topic create "plain-$p-$round" --brokers "$KAFKA" --partitions "$p" > /dev/null
    "$BIN" topic create "audit-$p-$round" --brokers "$KAFKA" --partitions "$p" \
      --config audit.enabled=true > /dev/null
    plain=$(rate "plain-$p-$round")
    audit=$(rate "audit-$p-$round")
    ratio=$(python3 -c "print(f'{$audit / $plain:.2f}')")
    echo "round $round, $p partitions: plain $plain/s, audit $audit/s, ratio $ratio"
  done
done
