#!/usr/bin/env bash
# End-to-end produce and consume throughput of a release `strata serve`, driven by
# librdkafka through kcat (linger.ms=5, batch.size=1000000, acks=1) and by the client
# crate through `strata produce` / `strata consume` (same settings), for 100-byte values
# into topics of 1 and 8 partitions. Prints messages/s, MB/s, and the CPU each side used
# (cores = CPU seconds / wall seconds; 1.0 means one core saturated).
#
# Usage: benches/broker_e2e.sh [MESSAGES]   (default 2000000; needs kcat and a release build:
#        cargo build --release; STRATA_BIN to use another binary)
set -euo pipefail
cd "$(dirname "$0")/.."

messages="${1:-2000000}"
[[ "$messages" =~ ^[1-9][0-9]*$ ]] || { echo "MESSAGES must be a positive integer" >&2; exit 2; }
bin="${STRATA_BIN:-target/release/strata}"
[[ -x "$bin" ]] || { echo "no $bin: run cargo build --release first" >&2; exit 2; }
command -v kcat >/dev/null || { echo "kcat not found (apt-get install kcat)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/strata-e2e.XXXXXX")"
broker_pid=""
cleanup() {
    [[ -n "$broker_pid" ]] && kill -TERM "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$((20000 + RANDOM % 20000))
# A fresh broker per partition count: topics are created on first use with
# num.partitions (Metadata auto-creation, as Kafka's auto.create.topics.enable).
start_broker() {
    rm -rf "$work/data"
    "$bin" serve --data-dir "$work/data" --kafka-addr "127.0.0.1:$port" \
        --admin-addr "127.0.0.1:$((port + 1))" --num-partitions "$1" \
        --log-level warn 2>>"$work/broker.log" &
    broker_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "broker did not start; log:" >&2
    cat "$work/broker.log" >&2
    exit 1
}
stop_broker() {
    kill -TERM "$broker_pid"
    wait "$broker_pid" || { echo "broker exited with $?" >&2; exit 1; }
    broker_pid=""
}

# 100-byte values, one per line.
payload="$work/payload.txt"
python3 -c "
import sys
v = 'x' * 100
sys.stdout.write((v + '\n') * $messages)
" >"$payload"
value_bytes=$((messages * 100))

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
now() { date +%s.%N; }

# Runs a kcat command, prints "wall_s kcat_cpu_s broker_cpu_s".
measure() {
    local b0 t0 t1 b1 kcat_cpu
    b0="$(cpu_ticks "$broker_pid")"
    t0="$(now)"
    /usr/bin/time -o "$work/time.out" -f '%U %S' "$@" >/dev/null 2>"$work/kcat.err"
    kcat_cpu="$(tail -n 1 "$work/time.out")"
    t1="$(now)"
    b1="$(cpu_ticks "$broker_pid")"
    awk -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" -v hz="$hz" -v k="$kcat_cpu" \
        'BEGIN { split(k, c, " "); printf "%.3f %.2f %.2f\n", t1 - t0, c[1] + c[2], (b1 - b0) / hz }'
}

report() {
    local what="$1" wall="$2" kcpu="$3" bcpu="$4"
    awk -v w="$wall" -v n="$messages" -v b="$value_bytes" -v k="$kcpu" -v c="$bcpu" -v what="$what" \
        'BEGIN { printf "%-38s %9.0f msg/s %7.1f MB/s   client %.2f cores, broker %.2f cores\n", what, n / w, b / w / 1e6, k / w, c / w }'
}

echo "# strata e2e — $(date -u '+%Y-%m-%dT%H:%M:%SZ'), $messages x 100-byte values, $(nproc) cpus, $(uname -sr)"
echo "# broker: $bin ($("$bin" --version)), $(kcat -V 2>&1 | grep -io 'librdkafka [^ ]* *[^ ]*' | head -n 1)"
for partitions in 1 8; do
    start_broker "$partitions"
    topic="e2e-$partitions"
    kcat -L -b "127.0.0.1:$port" -t "$topic" >/dev/null
    read -r wall kcpu bcpu < <(measure kcat -P -b "127.0.0.1:$port" -t "$topic" \
        -X linger.ms=5 -X batch.size=1000000 -X acks=1 -X queue.buffering.max.messages=1000000 \
        -X queue.buffering.max.kbytes=1048576 -l "$payload")
    report "produce, $partitions partition(s), librdkafka" "$wall" "$kcpu" "$bcpu"
    read -r wall kcpu bcpu < <(measure kcat -C -b "127.0.0.1:$port" -t "$topic" -o beginning -e -q \
        -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=10485760 -f '%s\n')
    report "consume, $partitions partition(s), librdkafka" "$wall" "$kcpu" "$bcpu"
    got="$(kcat -C -b "127.0.0.1:$port" -t "$topic" -o beginning -e -q -f '%s\n' | wc -l)"
    [[ "$got" -eq "$messages" ]] || { echo "consumed $got of $messages messages" >&2; exit 1; }

    # The client crate, through the strata CLI (bulk: large batches, acks=1).
    topic="e2e-client-$partitions"
    kcat -L -b "127.0.0.1:$port" -t "$topic" >/dev/null
    read -r wall kcpu bcpu < <(measure "$bin" produce "$topic" --brokers "127.0.0.1:$port" \
        --acks 1 --linger-ms 5 --batch-size 1000000 <"$payload")
    report "produce, $partitions partition(s), client crate" "$wall" "$kcpu" "$bcpu"
    read -r wall kcpu bcpu < <(measure "$bin" consume "$topic" --brokers "127.0.0.1:$port" \
        --from earliest --count "$messages" --format '{value}')
    report "consume, $partitions partition(s), client crate" "$wall" "$kcpu" "$bcpu"
    stop_broker
done
