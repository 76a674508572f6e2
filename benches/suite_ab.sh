#!/usr/bin/env bash
# Interleaved A/B of two `strata` binaries on benches/suite.sh's single-node rows, on one
# machine in one sitting: produce 100 B acks=1 (1 partition, 2 000 000 records) and a
# consume of what it wrote, produce 1 KiB acks=all (1 partition, 500 000 records), and
# the latency target (e2e, 1 KiB, 1 partition, linger 0, 100 000 msgs/s for 10 s, acks=1
# and acks=all). Each round runs both binaries, in an order that alternates by round;
# each binary gets a fresh broker on a fresh data directory, started with no flags but
# its ports (a single node, whatever that meant in its release). One client, NEW's
# `strata bench`, measures both. Between brokers the data directory's pages are synced
# and the page cache dropped (when root), so no run pays for the last one's writeback.
# Prints CSV: round,binary,case,messages_per_sec,mb_per_sec,p50_ms,p99_ms
# (latencies for the e2e rows only).
#
#   benches/suite_ab.sh NEW_BIN BASE_BIN [ROUNDS]   (default 5 rounds; release builds)
#   AB_CASES=REGEX keeps only the cases whose name matches (e.g. '^produce_100b'); the
#   consume case reads what produce_100b_acks1 wrote, so keep them together.
#   AB_NEW_CONFIG=FILE / AB_BASE_CONFIG=FILE start that side's broker with `--config FILE`
#   (e.g. `write.caching.default = true`), so one binary can be compared with itself.
#   AB_OWN_CLIENT=1 measures each side with its own `strata bench` (a client A/B when
#   the two binaries' brokers are the same code).
set -euo pipefail
NEW="${1:?new strata binary}"; BASE="${2:?base strata binary}"; ROUNDS="${3:-5}"
KAFKA=127.0.0.1:29092; ADMIN=127.0.0.1:29644
cases=(
    "produce_100b_acks1|produce --topic ab-small --partitions 1 --size 100 --acks 1 --messages 2000000"
    "consume_100b|consume --topic ab-small --partitions 1 --messages 2000000 --cleanup"
    "produce_1k_acksall|produce --topic ab-big --partitions 1 --size 1024 --acks all --messages 500000 --cleanup"
    "e2e_1k_acks1_100k|e2e --topic ab-e2e-1 --partitions 1 --size 1024 --acks 1 --linger-ms 0 --rate 100000 --duration 10s --cleanup"
    "e2e_1k_acksall_100k|e2e --topic ab-e2e-all --partitions 1 --size 1024 --acks all --linger-ms 0 --rate 100000 --duration 10s --cleanup"
)
echo "round,binary,case,messages_per_sec,mb_per_sec,p50_ms,p99_ms"
for round in $(seq 1 "$ROUNDS"); do
    order=(new base)
    if [ $((round % 2)) -eq 0 ]; then order=(base new); fi
    for which in "${order[@]}"; do
        bin=$NEW; config=${AB_NEW_CONFIG:-}
        if [ "$which" = base ]; then bin=$BASE; config=${AB_BASE_CONFIG:-}; fi
        extra=()
        if [ -n "$config" ]; then extra=(--config "$config"); fi
        d=$(mktemp -d /tmp/strata-suite-ab.XXXXXX)
        "$bin" serve "${extra[@]}" --data-dir "$d/data" --kafka-addr "$KAFKA" --admin-addr "$ADMIN" \
            --log-level warn >"$d/broker.log" 2>&1 &
        pid=$!
        for _ in $(seq 200); do curl -sf "$ADMIN/health" >/dev/null && break; sleep 0.1; done
        for c in "${cases[@]}"; do
            name=${c%%|*}; args=${c#*|}
            [[ $name =~ ${AB_CASES:-.} ]] || continue
            client=$NEW
            if [ -n "${AB_OWN_CLIENT:-}" ]; then client=$bin; fi
            # shellcheck disable=SC2086
            json=$("$client" bench $args --brokers "$KAFKA" --json 2>>"$d/bench.err" | tail -1)
            figures=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
lat = d.get("latency_ms") or {}
print("%d,%.1f,%s,%s" % (d["messages_per_sec"], d["mb_per_sec"], lat.get("p50", ""), lat.get("p99", "")))' \
                <<<"$json" || echo "fail,fail,,")
            echo "$round,$which,$name,$figures"
        done
        kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
        rm -rf "$d"
        sync; echo 1 2>/dev/null >/proc/sys/vm/drop_caches || true
    done
done
