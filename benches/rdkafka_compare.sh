#!/usr/bin/env bash
# Our produce throughput through a neutral client: the same workload through
# `strata bench produce` (Strata's own client) and through librdkafka's
# `rdkafka_performance` (librdkafka's own benchmark tool, built by
# benches/rdkafka_build.sh from librdkafka 2.0.2's source and linked with Debian's
# librdkafka 2.0.2), against the same `strata` broker binary, interleaved, in one run.
#
# Cases (name: value size, acks, partitions, producers; messages in total):
#   100b_acks1_p1:      100 B,  acks=1,   1 partition,  1 producer;  2 000 000
#   1k_acksall_p1:      1 KiB,  acks=all, 1 partition,  1 producer;    500 000
#   100b_acks1_p24_x4:  100 B,  acks=1,  24 partitions, 4 producers; 2 000 000
#   1k_acksall_p8:      1 KiB,  acks=all, 8 partitions, 1 producer;    500 000
# Every run (case × round × client) gets a fresh `strata serve` on a fresh data
# directory (private ports, never 9092/9093/9644), the topic made with
# `strata topic create` before the client starts (so neither client's figure includes
# creating it), and, after the broker stops, its data directory removed, `sync`, and
# the page cache dropped (when writable), so no run pays for the last one's writeback.
# Each round runs every client once; the order is reversed every other round.
#
# The clients (both send values without keys, no compression; MB = 10^6 value bytes):
#   strata bench produce --topic T --partitions P --producers K --messages N --size S
#       --acks 1|all --linger-ms 5 --batch-bytes 16384 --json
#     acks=all turns idempotence on. Its producer keeps up to 5 batches in flight per
#     partition and per broker, on one connection; a batch sends at batch-bytes or
#     linger, but when every in-flight slot is taken it keeps growing up to ~1 MiB.
#     Sticky partitioning of keyless records (next partition after a batch's bytes).
#     msgs/s = acknowledged records / (first send → last ack), as it reports.
#   rdkafka_performance -P -t T -b BROKER -s S -c N/K -a 1|-1 (K processes at once)
#       -X linger.ms=5 -X batch.size=B -X max.in.flight.requests.per.connection=5
#       -X queue.buffering.max.kbytes=32768 -X queue.buffering.max.messages=0
#       -X enable.idempotence=false (acks=1) | true (acks=all, as strata bench does)
#     linger.ms, the in-flight bound and the 32 MiB queue (strata's buffer.memory; the
#     message-count bound off) match strata bench's producer. The example itself sets
#     message.send.max.retries=3 and retry.backoff.ms=500; all else is librdkafka's
#     defaults (batch.num.messages=10000, partitioner consistent_random with sticky
#     partitioning of keyless records for sticky.partitioning.linger.ms=10).
#     batch.size is run in two profiles, each its own column (--rdkafka-batch-sizes):
#     B = --batch-bytes (16384: the nominal setting, but librdkafka never grows a batch
#     past it, so at most 5 × 16 KiB are in flight per connection), and B = 1000000
#     (librdkafka's default and its message.max.bytes: about the 1 MiB a strata batch
#     grows to behind one in flight).
#     msgs/s = delivered / (first produce call → last delivery report), from its final
#     summary line ("N delivered ... in T ms: X msgs/s and Y MB/s"); with K processes,
#     sum of delivered / the slowest process's time (the sum of the K rates is in
#     results.csv too). Its clock starts before it has connected or fetched metadata,
#     strata bench's once its producers are connected: a few ms against
#     rdkafka_performance, which matters only in --quick's short runs. A run counts
#     only if every record was delivered, none failed ("produce failures" in its
#     output are local queue-full retries, not lost records).
#     `rdkafka_performance -X dump` of each profile is saved in the results.
#
# Prints the settings, one line per run, then a markdown table: per case and client the
# median msgs/s and MB/s (of an even count of runs, the mean of the middle two) with
# every run in brackets, in round order, and the median's ratio to strata bench's
# (client ÷ strata bench). Writes benches/results/rdkafka-<UTC time>/: summary.md
# (machine facts and the table), results.csv (every run), settings.txt, commands.txt
# (every command, in order), machine.txt (nproc, CPU, kernel, load, binary version,
# sha256 and git commit), rdkafka-PROVENANCE.txt (how the tool was obtained and built),
# rdkafka-config-*.txt and raw/ (each client's stdout and stderr, each broker's log).
# Exits 1 when a run failed (after writing everything), 2 on a usage error.
# A full run (3 rounds) takes about 6 minutes here, much of it the batch.size=16384
# profile's acks=all runs.
#
# Usage: benches/rdkafka_compare.sh [STRATA_BIN] [options]
#   STRATA_BIN                 the broker and `strata bench` (default target/release/strata)
#   --rounds N                 rounds (default 3; 2 with --quick)
#   --quick                    a ~1-minute smoke run: 200 000 × 100 B and 50 000 × 1 KiB
#   --messages-small N         messages in the 100 B cases (default 2 000 000)
#   --messages-large N         messages in the 1 KiB cases (default 500 000)
#   --cases REGEX              only the cases whose name matches
#   --linger-ms MS             both clients' linger (default 5)
#   --batch-bytes B            strata bench's --batch-bytes (default 16384)
#   --rdkafka-batch-sizes L    comma-separated batch.size profiles (default B,1000000)
#   --rdkafka-prop K=V         an extra librdkafka property for every rdkafka run
#                              (repeatable; after the ones above, so it overrides them)
#   --run-timeout S            a client run that takes longer is killed and fails (300)
# Environment: STRATA_RDK_KAFKA_PORT (default 27092), STRATA_RDK_ADMIN_PORT (27644),
#   TMPDIR (where the data directories go), STRATA_BENCH_CACHE (rdkafka_build.sh's cache).
set -euo pipefail
cd "$(dirname "$0")/.."
me=benches/rdkafka_compare.sh

usage_error() { echo "$me: $*" >&2; exit 2; }
strata=target/release/strata
rounds=""
quick=false
msgs_small="" msgs_large=""
case_filter=.
linger_ms=5
batch_bytes=16384
rdk_batch_sizes=""
rdk_extra=()
run_timeout=300
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --quick) quick=true ;;
        --rounds) rounds="${2:?--rounds N}"; shift ;;
        --messages-small) msgs_small="${2:?--messages-small N}"; shift ;;
        --messages-large) msgs_large="${2:?--messages-large N}"; shift ;;
        --cases) case_filter="${2:?--cases REGEX}"; shift ;;
        --linger-ms) linger_ms="${2:?--linger-ms MS}"; shift ;;
        --batch-bytes) batch_bytes="${2:?--batch-bytes B}"; shift ;;
        --rdkafka-batch-sizes) rdk_batch_sizes="${2:?--rdkafka-batch-sizes LIST}"; shift ;;
        --rdkafka-prop) rdk_extra+=(-X "${2:?--rdkafka-prop K=V}"); shift ;;
        --run-timeout) run_timeout="${2:?--run-timeout S}"; shift ;;
        -*) usage_error "unknown option '$1' (try --help)" ;;
        *) strata="$1" ;;
    esac
    shift
done
if $quick; then
    : "${rounds:=2}" "${msgs_small:=200000}" "${msgs_large:=50000}"
else
    : "${rounds:=3}" "${msgs_small:=2000000}" "${msgs_large:=500000}"
fi
: "${rdk_batch_sizes:=$batch_bytes,1000000}"
for n in "$rounds" "$msgs_small" "$msgs_large" "$linger_ms" "$batch_bytes" "$run_timeout"; do
    [[ "$n" =~ ^[0-9]+$ && "$n" -gt 0 ]] || usage_error "'$n' is not a positive integer"
done
IFS=, read -r -a rdk_sizes <<<"$rdk_batch_sizes"
for n in "${rdk_sizes[@]}"; do [[ "$n" =~ ^[0-9]+$ ]] || usage_error "bad batch.size '$n'"; done
[[ -x "$strata" ]] || usage_error "$strata is not an executable (build it, or pass its path)"
strata="$(cd "$(dirname "$strata")" && pwd)/$(basename "$strata")"

# name|size|acks|partitions|producers|messages
all_cases=(
    "100b_acks1_p1|100|1|1|1|$msgs_small"
    "1k_acksall_p1|1024|all|1|1|$msgs_large"
    "100b_acks1_p24_x4|100|1|24|4|$msgs_small"
    "1k_acksall_p8|1024|all|8|1|$msgs_large"
)
cases=()
for c in "${all_cases[@]}"; do [[ "${c%%|*}" =~ $case_filter ]] && cases+=("$c"); done
[[ ${#cases[@]} -gt 0 ]] || usage_error "no case matches '$case_filter'"

# -- tools -------------------------------------------------------------------------------
for tool in curl jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "== apt-get install $tool"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "$tool" || { apt-get update -q && apt-get install -y -q "$tool"; }
    fi
done
echo "== rdkafka_performance (benches/rdkafka_build.sh)"
rdk="$(benches/rdkafka_build.sh | tail -1)"
[[ -x "$rdk" ]] || { echo "$me: benches/rdkafka_build.sh gave no binary" >&2; exit 1; }

# -- run state and cleanup ---------------------------------------------------------------
kafka_port="${STRATA_RDK_KAFKA_PORT:-27092}"
admin_port="${STRATA_RDK_ADMIN_PORT:-27644}"
brokers="127.0.0.1:$kafka_port"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="benches/results/rdkafka-$stamp"
mkdir -p "$out/raw"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-rdkafka.XXXXXX")"
broker_pid=""
client_pids=()
cleanup() {
    local pid
    for pid in "${client_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    if [[ -n "$broker_pid" ]]; then kill -TERM "$broker_pid" 2>/dev/null || true; fi
    for pid in "${client_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "$broker_pid" ]]; then wait "$broker_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# True when something listens on TCP port $1 (from /proc, no tools).
listening() {
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6
}
for port in "$kafka_port" "$admin_port"; do
    listening "$port" && usage_error "port $port is in use; set STRATA_RDK_KAFKA_PORT / STRATA_RDK_ADMIN_PORT"
done

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Appends a command, shell-quoted, to commands.txt.
record_cmd() { printf '%q ' "$@" | sed 's/ $//' >>"$out/commands.txt"; echo >>"$out/commands.txt"; }

# -- machine facts -----------------------------------------------------------------------
git_rev="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
git_dirty="$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
{
    echo "date: $stamp"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel: $(uname -srm)"
    echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "filesystem of the data directories: $(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "load average at start: $(loadavg)"
    echo "strata binary: $strata"
    echo "strata --version: $("$strata" --version)"
    echo "strata sha256: $(sha256sum "$strata" | cut -d' ' -f1)"
    echo "strata mtime: $(date -u -r "$strata" +%Y-%m-%dT%H:%M:%SZ)"
    echo "git commit of the work tree (--version names none; the binary may be older): $git_rev ($git_dirty files modified)"
    echo "rdkafka_performance: $rdk"
} >"$out/machine.txt"
cp "$(dirname "$rdk")/PROVENANCE" "$out/rdkafka-PROVENANCE.txt"

# -- the clients -------------------------------------------------------------------------
clients=(strata)
for b in "${rdk_sizes[@]}"; do clients+=("rdkafka_b$b"); done
label() {
    case "$1" in
        strata) echo "strata bench (batch-bytes=$batch_bytes)" ;;
        rdkafka_b*) echo "rdkafka_performance (batch.size=${1#rdkafka_b})" ;;
    esac
}
# librdkafka properties of a profile ($1 = batch.size) for acks $2.
rdk_props() {
    local idem=false
    [[ "$2" == all ]] && idem=true
    printf '%s\n' -X "linger.ms=$linger_ms" -X "batch.size=$1" \
        -X max.in.flight.requests.per.connection=5 \
        -X queue.buffering.max.kbytes=32768 -X queue.buffering.max.messages=0 \
        -X "enable.idempotence=$idem"
    if [[ ${#rdk_extra[@]} -gt 0 ]]; then printf '%s\n' "${rdk_extra[@]}"; fi
}

echo "== settings (results in $out)"
{
    echo "strata bench: $strata bench produce --brokers $brokers --topic T --partitions P --producers K --messages N --size S --acks 1|all --linger-ms $linger_ms --batch-bytes $batch_bytes --json"
    for b in "${rdk_sizes[@]}"; do
        mapfile -t props < <(rdk_props "$b" 1)
        echo "$(label "rdkafka_b$b"): $rdk -P -b $brokers -t T -s S -c N/K -a 1|-1 ${props[*]} (enable.idempotence=true with acks=all; K processes)"
        for acks in 1 all; do
            mapfile -t props < <(rdk_props "$b" "$acks")
            a=1
            [[ "$acks" == all ]] && a=-1
            "$rdk" -P -t T -b "$brokers" -a "$a" "${props[@]}" -X dump >"$out/rdkafka-config-b$b-acks$acks.txt" 2>&1 || true
        done
    done
    echo "cases (name|size|acks|partitions|producers|messages): ${cases[*]}"
    echo "rounds: $rounds; ports: kafka $kafka_port, admin $admin_port"
} | tee "$out/settings.txt"

# -- one run -----------------------------------------------------------------------------
start_broker() {
    local dir="$1"
    local cmd=("$strata" serve --data-dir "$dir/data" --kafka-addr "$brokers"
        --admin-addr "127.0.0.1:$admin_port" --log-level warn)
    record_cmd "${cmd[@]}"
    "${cmd[@]}" >"$dir/broker.log" 2>&1 &
    broker_pid=$!
    local _
    for _ in $(seq 400); do
        curl -sf "http://127.0.0.1:$admin_port/health" >/dev/null 2>&1 && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "$me: the broker did not answer /health within 20 s (or exited):" >&2
    cat "$dir/broker.log" >&2
    return 1
}
stop_broker() {
    local dir="$1" raw="$2"
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
    cp "$dir/broker.log" "$raw.broker.log"
    rm -rf "$dir"
    sync
    { echo 1 >/proc/sys/vm/drop_caches; } 2>/dev/null || true
}

# Prints "messages elapsed_s msgs_per_sec mb_per_sec sum_of_rates" of a strata run, or
# "fail" (raw output in $1.out / $1.err).
run_strata() {
    local raw="$1" topic="$2" size="$3" acks="$4" parts="$5" producers="$6" n="$7"
    local cmd=(timeout -k 10 "$run_timeout" "$strata" bench produce --brokers "$brokers"
        --topic "$topic" --partitions "$parts" --producers "$producers" --messages "$n"
        --size "$size" --acks "$acks" --linger-ms "$linger_ms" --batch-bytes "$batch_bytes" --json)
    record_cmd "${cmd[@]}"
    local rc=0
    "${cmd[@]}" >"$raw.out" 2>"$raw.err" &
    client_pids=("$!")
    wait "${client_pids[0]}" || rc=$?
    client_pids=()
    if [[ $rc -ne 0 ]]; then echo fail "exit $rc"; return; fi
    tail -1 "$raw.out" | jq -r --argjson n "$n" \
        'if .messages == $n and .failed == 0
         then "\(.messages) \(.elapsed_s) \(.messages_per_sec) \(.mb_per_sec) \(.messages_per_sec)"
         else "fail acked=\(.messages),failed=\(.failed)" end' 2>/dev/null || echo fail "unparsed output"
}

# The same through K rdkafka_performance processes at once (raw output in $1.pI.out/err).
run_rdkafka() {
    local raw="$1" bsize="$2" topic="$3" size="$4" acks="$5" parts="$6" producers="$7" n="$8"
    local a=1 i each
    [[ "$acks" == all ]] && a=-1
    local props
    mapfile -t props < <(rdk_props "$bsize" "$acks")
    client_pids=()
    for i in $(seq 0 $((producers - 1))); do
        each=$((n / producers + (i < n % producers ? 1 : 0)))
        local cmd=(timeout -k 10 "$run_timeout" "$rdk" -P -b "$brokers" -t "$topic" -s "$size"
            -c "$each" -a "$a" "${props[@]}")
        record_cmd "${cmd[@]}"
        "${cmd[@]}" >"$raw.p$i.out" 2>"$raw.p$i.err" &
        client_pids+=("$!")
    done
    local rcs=() pid rc
    for pid in "${client_pids[@]}"; do
        rc=0
        wait "$pid" || rc=$?
        rcs+=("$rc")
    done
    client_pids=()
    # Each process's last summary line: "% M messages produced (B bytes), D delivered
    # (offset O, F failed) in T ms: X msgs/s and Y MB/s, ...". Its elapsed time is D / X
    # (X is D / T with T in microseconds, so finer than the T ms printed).
    for i in $(seq 0 $((producers - 1))); do
        each=$((n / producers + (i < n % producers ? 1 : 0)))
        awk -v want="$each" -v rc="${rcs[$i]}" '
            /^% [0-9]+ messages produced \(/ { line = $0 }
            END {
                if (line == "") { print "fail no-summary rc=" rc; exit }
                if (!match(line, /[0-9]+ delivered \(offset -?[0-9]+, [0-9]+ failed\)/)) { print "fail unparsed"; exit }
                split(substr(line, RSTART, RLENGTH), d, /[ ,()]+/)   # D delivered offset O F failed
                if (!match(line, /: [0-9]+ msgs\/s and [0-9.]+ MB\/s/)) { print "fail unparsed"; exit }
                split(substr(line, RSTART + 2, RLENGTH - 2), r, " ")  # X msgs/s and Y MB/s
                if (rc != 0 || d[1] != want || d[5] != 0 || r[1] <= 0) {
                    print "fail rc=" rc ",delivered=" d[1] ",failed=" d[5]; exit
                }
                print d[1], r[1], r[4]
            }' "$raw.p$i.out"
    done | awk -v size="$size" '
        $1 == "fail" { fail = fail " p" (NR - 1) ":" substr($0, 6); next }
        { n += $1; t = $1 / $2; if (t > tmax) tmax = t; sum += $2 }
        END {
            if (fail != "") { print "fail" fail; exit }
            printf "%d %.6f %.1f %.3f %.1f\n", n, tmax, n / tmax, n * size / tmax / 1e6, sum
        }'
}

# -- the runs ----------------------------------------------------------------------------
echo "case,round,position,client,messages,elapsed_s,msgs_per_sec,mb_per_sec,sum_of_process_rates,status" \
    >"$out/results.csv"
echo "== runs (load average $(loadavg))"
run_no=0
failures=0
for round in $(seq 1 "$rounds"); do
    order=("${clients[@]}")
    if ((round % 2 == 0)); then
        order=()
        for ((i = ${#clients[@]} - 1; i >= 0; i--)); do order+=("${clients[$i]}"); done
    fi
    for c in "${cases[@]}"; do
        IFS='|' read -r name size acks parts producers n <<<"$c"
        pos=0
        for client in "${order[@]}"; do
            pos=$((pos + 1))
            run_no=$((run_no + 1))
            dir="$work/run-$run_no"
            raw="$out/raw/$name-r$round-$client"
            topic="rdk-$name-r$round-$client"
            mkdir -p "$dir"
            echo "# run $run_no: $name, round $round, $client" >>"$out/commands.txt"
            start_broker "$dir"
            cmd=("$strata" topic create "$topic" --partitions "$parts" --brokers "$brokers")
            record_cmd "${cmd[@]}"
            "${cmd[@]}" >"$raw.topic.log" 2>&1 || { cat "$raw.topic.log" >&2; exit 1; }
            # Not in $(...): the clients' pids must stay in this shell for the trap.
            if [[ "$client" == strata ]]; then
                run_strata "$raw" "$topic" "$size" "$acks" "$parts" "$producers" "$n" >"$dir/result"
            else
                run_rdkafka "$raw" "${client#rdkafka_b}" "$topic" "$size" "$acks" "$parts" "$producers" "$n" \
                    >"$dir/result"
            fi
            result="$(<"$dir/result")"
            stop_broker "$dir" "$raw"
            read -r f1 f2 f3 f4 f5 <<<"$result"
            if [[ "$f1" == fail ]]; then
                failures=$((failures + 1))
                echo "$name,$round,$pos,$client,,,,,,fail ${result#fail }" >>"$out/results.csv"
                printf '   %-18s round %d  %-42s FAILED (%s; raw/%s.*)\n' "$name" "$round" "$(label "$client")" "${result#fail }" "$(basename "$raw")"
            else
                echo "$name,$round,$pos,$client,$f1,$f2,$f3,$f4,$f5,ok" >>"$out/results.csv"
                printf '   %-18s round %d  %-42s %10.0f msgs/s %8.1f MB/s\n' "$name" "$round" "$(label "$client")" "$f3" "$f4"
            fi
        done
    done
done

# -- the table ---------------------------------------------------------------------------
# "median [run1, run2, ...]" (runs in round order, failures as "fail") of column $3 of
# results.csv for case $1 and client $2, with $4 decimals; the median alone in $median.
median_runs() {
    awk -F, -v c="$1" -v cl="$2" -v col="$3" -v dec="$4" '
        $1 == c && $4 == cl {
            if ($10 == "ok") { v[++n] = $col; all = all sep sprintf("%." dec "f", $col) }
            else all = all sep "fail"
            sep = ", "
        }
        END {
            if (n == 0) { print "-", "[" all "]"; exit }
            # insertion sort; the median of an even count is the mean of the middle two
            for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
            m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%." dec "f [%s]\n", m, all
        }' "$out/results.csv"
}
{
    echo "## strata bench vs rdkafka_performance, $stamp"
    echo
    grep -E '^(nproc|cpu|kernel|strata --version|strata sha256|git commit)' "$out/machine.txt" | sed 's/^/- /'
    echo "- librdkafka: $(grep '^runtime:' "$out/rdkafka-PROVENANCE.txt" | cut -d' ' -f2-), $(grep '^linked:' "$out/rdkafka-PROVENANCE.txt" | cut -d' ' -f2-)"
    echo "- rounds: $rounds (client order reversed every other round); load average at start $(sed -n 's/^load average at start: //p' "$out/machine.txt"), at end $(loadavg)"
    echo "- linger.ms $linger_ms both; batch: strata bench --batch-bytes $batch_bytes, rdkafka_performance batch.size as in the client column; see settings.txt"
    echo
    echo "| case | client | msgs/s median [runs] | MB/s median [runs] | ÷ strata bench |"
    echo "| --- | --- | ---: | ---: | ---: |"
    for c in "${cases[@]}"; do
        IFS='|' read -r name _ <<<"$c"
        read -r base _ <<<"$(median_runs "$name" strata 7 0)"
        for client in "${clients[@]}"; do
            msgs="$(median_runs "$name" "$client" 7 0)"
            mb="$(median_runs "$name" "$client" 8 1)"
            med="${msgs%% *}"
            ratio="-"
            if [[ "$med" != - && "$base" != - ]]; then
                ratio="$(awk -v a="$med" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
            fi
            echo "| $name | $(label "$client") | $msgs | $mb | $ratio |"
        done
    done
} >"$out/summary.md"
echo
cat "$out/summary.md"
echo
echo "== results in $out"
if [[ $failures -gt 0 ]]; then
    echo "$me: $failures run(s) failed (see results.csv and raw/)" >&2
    exit 1
fi
