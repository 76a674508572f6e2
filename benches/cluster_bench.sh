#!/usr/bin/env bash
# Produce throughput and latency of a 3-broker cluster with replication factor 3 against
# one broker with replication factor 1, in the same run on the same machine:
# `strata bench produce` with acks=all and 100-byte messages, 1 and 6 partitions.
#
#   benches/cluster_bench.sh [MESSAGES]        (default 1000000 per cell)
#   STRATA_BIN=PATH uses that binary instead of building the release one.
#   CLUSTER_BENCH_CONFIG=FILE starts every broker with `--config FILE` (for example
#   `write.caching.default = true`).
#
# Builds the release binary (unless STRATA_BIN), starts its own brokers on 127.0.0.1 ports
# folder (same disk for every broker), prints one JSON line per cell and a markdown
# table. Every broker is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES="${1:-1000000}"
if [ -n "${STRATA_BIN:-}" ]; then
    BIN="$STRATA_BIN"
else
    cargo build -j "${CARGO_BUILD_JOBS:-2}" --release --locked --bin strata >/dev/null
    BIN="$PWD/target/release/strata"
fi
EXTRA=()
if [ -n "${CLUSTER_BENCH_CONFIG:-}" ]; then EXTRA=(--config "$CLUSTER_BENCH_CONFIG"); fi
WORK="$(mktemp -d /tmp/strata-cluster-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { # host:port
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "cluster_bench: $1 did not open" >&2
    return 1
}

bench() { # label brokers partitions
    local out
    out="$("$BIN" bench produce --brokers "$2" --topic "bench-$1-$3" --partitions "$3" \
        --messages "$MESSAGES" --size 100 --acks all --json)"
    echo "{\"setup\":\"$1\",\"partitions\":$3,\"result\":$out}"
}

results=()
# One broker, replication factor 1.
"$BIN" serve "${EXTRA[@]}" --data-dir "$WORK/single" --kafka-addr 127.0.0.1:23092 \
    --admin-addr 127.0.0.1:23292 >"$WORK/single.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.1:23092
for p in 1 6; do results+=("$(bench single 127.0.0.1:23092 "$p")"); done
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" || true; PIDS=()

# Three brokers, replication factor 3 (every partition on all three).
PEERS="1=127.0.0.1:24192,2=127.0.0.1:24193,3=127.0.0.1:24194"
for i in 1 2 3; do
    "$BIN" serve "${EXTRA[@]}" --node-id "$i" --kafka-addr "127.0.0.1:2409$((i + 1))" \
        --raft-addr "127.0.0.1:2419$((i + 1))" --admin-addr "127.0.0.1:2429$((i + 1))" \
        --peers "$PEERS" --data-dir "$WORK/node-$i" >"$WORK/node-$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 1 2 3; do wait_port "127.0.0.1:2409$((i + 1))"; done
BROKERS=127.0.0.1:24092,127.0.0.1:24093,127.0.0.1:24094
# Wait until all three registered with the controller.
for _ in $(seq 1 300); do
    if "$BIN" cluster status --admin 127.0.0.1:24292 2>/dev/null | grep -c ' up ' | grep -q 3; then break; fi
    sleep 0.1
done
for p in 1 6; do results+=("$(bench rf3 "$BROKERS" "$p")"); done

printf '%s\n' "${results[@]}"
echo
echo "| setup | partitions | msgs/s | MB/s | p50 ms | p99 ms | p99.9 ms |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    x = r["result"]
    l = x["latency_ms"]
    cells = [r["setup"], r["partitions"], round(x["messages_per_sec"]), round(x["mb_per_sec"], 1),
             l["p50"], l["p99"], l["p999"]]
    print("| " + " | ".join(str(c) for c in cells) + " |")
'
