#!/usr/bin/env bash
# How long a restarted leader takes to rebuild its producer and transaction state, with
# the segments' sidecars (.snapshot, .txnindex) and without them (a full read of the
# log), interleaved. One broker; one partition of GiB-scale transactional data.
#
#   benches/rebuild_bench.sh [MESSAGES] [ROUNDS]
#
# MESSAGES records of SIZE bytes (defaults 1 000 000 and 1024: about 1 GiB) go to topic
# `rebuild` in transactions committed every 100 ms, in 128 MiB segments (PRODUCE_ARGS
# adds `strata bench produce` options, e.g. "--producers 8 --batch-bytes 1024"). Each round SIGKILLs the
# broker, removes the sidecars (full-read rounds only), optionally drops the page cache
# (COLD=1, needs root), restarts it, makes one read_committed fetch, and prints the
# broker's "producer state rebuilt" figures for the partition. Before a sidecar round
# the script waits until housekeeping has written every closed segment's pair again.
set -euo pipefail

MESSAGES=${1:-1000000}
ROUNDS=${2:-3}
BIN=${STRATA_BIN:-target/release/strata}
WORK=$(mktemp -d)
KAFKA=127.0.0.1:29092
ADMIN=127.0.0.1:29644
PART="$WORK/data/rebuild-0"
PID=

cleanup() { [[ -n "$PID" ]] && kill -9 "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/strata.toml" <<EOF
"log.retention.check.interval.ms" = 1000
EOF

start() {
  "$BIN" serve --data-dir "$WORK/data" --kafka-addr "$KAFKA" --admin-addr "$ADMIN" \
    --config "$WORK/strata.toml" >> "$WORK/serve.log" 2>&1 &
  PID=$!
  until curl -fs "http://$ADMIN/health" > /dev/null 2>&1; do sleep 0.1; done
}

closed_segments() { echo $(( $(ls "$PART"/*.log | wc -l) - 1 )); }
pairs_written() {
  local c; c=$(closed_segments)
  [[ $(ls "$PART"/*.snapshot 2>/dev/null | wc -l) -eq $c && \
     $(ls "$PART"/*.txnindex 2>/dev/null | wc -l) -eq $c ]]
}

start
"$BIN" topic create rebuild --brokers "$KAFKA" --partitions 1 \
  --config segment.bytes=134217728 > /dev/null
"$BIN" bench produce --brokers "$KAFKA" --topic rebuild --messages "$MESSAGES" \
  --size "${SIZE:-1024}" --transaction-ms 100 ${PRODUCE_ARGS:-} --json > "$WORK/produce.json"
batches=$("$BIN" log dump "$PART" --json 2>/dev/null | grep -c '"type":"batch"' || true)
echo "log: $(du -sh "$PART" | cut -f1), $(closed_segments) closed segments, $batches batches"

for round in $(seq 1 "$ROUNDS"); do
  for mode in sidecars full; do
    until pairs_written; do sleep 0.2; done
    kill -9 "$PID"; wait "$PID" 2>/dev/null || true
    if [[ $mode == full ]]; then rm -f "$PART"/*.snapshot "$PART"/*.txnindex; fi
    if [[ ${COLD:-0} == 1 ]]; then sync; echo 1 > /proc/sys/vm/drop_caches; fi
    : > "$WORK/serve.log"
    start
    "$BIN" consume rebuild --brokers "$KAFKA" --isolation read_committed --count 1 \
      --from earliest > /dev/null
    line=$(grep "producer state rebuilt" "$WORK/serve.log" | grep "rebuild-0" | tail -1)
    ms=$(sed -E 's/.*elapsed_ms=([0-9]+).*/\1/' <<< "$line")
    bytes=$(sed -E 's/.*read_bytes=([0-9]+).*/\1/' <<< "$line")
    echo "round $round $mode: ${ms} ms, read ${bytes} bytes"
  done
done
