#!/usr/bin/env bash
# Interleaved A/B of one `strata` binary run two ways on one machine: as a plain single
# node ("local": partitions with their own flusher) and as a one-voter cluster ("voter":
# `--peers` naming only itself, so every partition goes through its Raft group). For each
# round, each mode, each case: a fresh broker on a fresh data directory, measured with the
# binary's own `strata bench`. Prints CSV: round,mode,case,messages_per_sec,mb_per_sec.
# With BASE_BIN, "base-local" and "base-voter" run that binary both ways in the same
# rounds (before/after a change). Between runs the data directory's pages are synced and
# the page cache dropped (when root): without it, one run in two paid for the previous
# run's 400 MB of writeback and the figures were bimodal (210 k against 420 k msgs/s).
#
#   benches/one_voter_ab.sh BIN [ROUNDS] [BASE_BIN]  (default 3 rounds; release builds)
set -euo pipefail
BIN="${1:?strata binary}"; ROUNDS="${2:-3}"; BASE="${3:-}"
modes=(local voter)
if [ -n "$BASE" ]; then modes+=(base-local base-voter); fi
KAFKA=127.0.0.1:29092; ADMIN=127.0.0.1:29644; RAFT=127.0.0.1:29093
cases=(
    "p100_acks1|--partitions 1 --size 100 --acks 1 --messages 3000000"
    "p1k_acksall|--partitions 1 --size 1024 --acks all --messages 400000"
    "p100_acksall|--partitions 1 --size 100 --acks all --messages 2000000"
)
echo "round,mode,case,messages_per_sec,mb_per_sec"
for round in $(seq 1 "$ROUNDS"); do
    for mode in "${modes[@]}"; do
        bin=$BIN
        case $mode in base-*) bin=$BASE ;; esac
        for c in "${cases[@]}"; do
            name=${c%%|*}; args=${c#*|}
            d=$(mktemp -d /tmp/strata-ov.XXXXXX)
            extra=()
            if [ "${mode#base-}" = voter ]; then extra=(--node-id 1 --raft-addr "$RAFT" --peers "1=$RAFT"); fi
            "$bin" serve --data-dir "$d" --kafka-addr "$KAFKA" --admin-addr "$ADMIN" "${extra[@]}" >"$d.log" 2>&1 &
            pid=$!
            for _ in $(seq 200); do curl -sf "$ADMIN/health" >/dev/null && break; sleep 0.1; done
            # A cluster node answers /health before its registration with the controller
            # commits; topics can be created only after it.
            if [ "${mode#base-}" = voter ]; then
                for _ in $(seq 200); do
                    curl -sf "$ADMIN/cluster" | grep -q '"brokers":\[{' && break; sleep 0.1
                done
            fi
            json=$("$BIN" bench produce --brokers "$KAFKA" --topic ab $args --json 2>>"$d.err" | tail -1)
            figures=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
print("%d,%.1f" % (d["messages_per_sec"], d["mb_per_sec"]))' <<<"$json" || echo "fail,fail")
            echo "$round,$mode,$name,$figures"
            kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
            rm -rf "$d" "$d.log" "$d.err"
            sync; echo 1 2>/dev/null >/proc/sys/vm/drop_caches || true
        done
    done
done
