#!/usr/bin/env bash
# Interleaved A/B of two `strata` binaries on the single-broker produce path: for each
# round, each binary, each case, a fresh broker on a fresh data directory, measured with
# one client (B's `strata bench`). Prints CSV: round,binary,case,messages_per_sec,mb_per_sec.
#
#   benches/ab_produce.sh A_BIN B_BIN [ROUNDS]      (default 3 rounds)
#
# Build the two binaries first (e.g. a release build at each commit, copied aside).
set -euo pipefail
A="${1:?first binary}"; B="${2:?second binary}"; ROUNDS="${3:-3}"
KAFKA=127.0.0.1:29092; ADMIN=127.0.0.1:29644
cases=(
    "p100_acks1|--partitions 1 --size 100 --acks 1 --messages 3000000"
    "p1k_acksall|--partitions 1 --size 1024 --acks all --messages 400000"
    "p100_lz4_acks1|--partitions 1 --size 100 --acks 1 --compression lz4 --messages 3000000"
)
echo "round,binary,case,messages_per_sec,mb_per_sec"
for round in $(seq 1 "$ROUNDS"); do
    for bin in "$A" "$B"; do
        for c in "${cases[@]}"; do
            name=${c%%|*}; args=${c#*|}
            d=$(mktemp -d /tmp/strata-ab.XXXXXX)
            "$bin" serve --data-dir "$d" --kafka-addr "$KAFKA" --admin-addr "$ADMIN" >"$d.log" 2>&1 &
            pid=$!
            for _ in $(seq 100); do curl -sf "$ADMIN/health" >/dev/null && break; sleep 0.1; done
            # shellcheck disable=SC2086
            json=$("$B" bench produce --brokers "$KAFKA" --topic ab $args --json | tail -1)
            figures=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
print("%d,%.1f" % (d["messages_per_sec"], d["mb_per_sec"]))' <<<"$json")
            echo "$round,$bin,$name,$figures"
            kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
            rm -rf "$d" "$d.log"
        done
    done
done
