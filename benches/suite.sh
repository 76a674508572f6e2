#!/usr/bin/env bash
# Strata's benchmark suite: one repeatable run that measures the machine's limits
# and the broker against them, on this machine, in the same run.
#
#   1. Builds the release `strata` binary and the `plot_latency` chart tool.
#   2. Machine limits: `dd` into the data directory's filesystem, into the page cache and
#      with `conv=fdatasync` (median of 3 each; also into a growing page cache, each run
#      into a new file), and `iperf3` over loopback (iperf3 and jq
#      are installed with apt-get when missing, as scripts/test.sh does for kcat).
#   3. Starts its own `strata serve` on private ports (never the defaults) with a data
#      directory under a temp directory, and waits until it accepts connections.
#   4. The matrix: 1 and 8 partitions × 100 B and 1 KiB values × acks=1 and acks=all;
#      each cell `strata bench produce` into a fresh topic, then `strata bench consume` of
#      what it wrote (single node here; three nodes in step 6b). Every cell, sweep step
#      and target run deletes its topic when done (`--cleanup`): a full run writes ~35 GB,
#      more than this machine's memory, and once the page cache is full every write pays
#      for reclaim, so later cells measured the machine's memory state, not the broker
#      (2026-12-03: the acks=1 sweep fell behind at half its maximum rate, which a fresh
#      broker sustains).
#   5. The sweep: per acks setting, an unpaced `strata bench e2e` (8 partitions, 1 KiB)
#      gives the maximum rate R, then `e2e --rate` at 10, 30, 50, 70 and 90 % of R.
#   5b. The latency target: e2e at 100 000 msgs/s of 1 KiB, 1 partition, linger 0,
#      acks=1 and acks=all, 3 runs each.
#   6. The broker's VmRSS / RssAnon / RssFile / VmHWM (/proc/PID/status) after the run
#      and again after an idle wait; then SIGTERM, and the broker must exit cleanly.
#   6b. Three brokers on this machine (`--peers`, private ports, data under the same temp
#      directory): the same matrix with replication factor 3 (every topic on all three),
#      each cell also as a ratio of the single node's; their VmRSS; SIGTERM, clean exits.
#   7. Writes benches/results/<UTC time>/: results.jsonl (every raw `--json` object),
#      limits.json, matrix.csv, cluster_matrix.csv, sweep.csv, target.csv, summary.md (the BENCHMARKS.md tables) and
#      latency-vs-throughput.png. A full run also copies the chart to
#      docs/img/latency-vs-throughput.png (the one README.md shows).
#
# Every throughput is also given as a ratio of its limit: produce MB/s against the dd
# page-cache bandwidth for acks=1 and the dd fdatasync bandwidth for acks=all, consume
# MB/s against iperf3 loopback. MB = 10^6 bytes of record values. Client and broker share
# the machine's cores; the load average is recorded because other work may share it too.
#
# Usage: benches/suite.sh [--quick]
#   --quick   a ~1-minute smoke run (small counts, short steps; the chart stays in
#             benches/results/, docs/img/ is not touched)
# Environment: STRATA_SUITE_KAFKA_PORT (default 49092), STRATA_SUITE_ADMIN_PORT (49644),
#   STRATA_SUITE_IPERF_PORT (49201), STRATA_SUITE_CLUSTER_BASE (29092: node i on base+i,
#   Raft base+100+i, admin base+200+i), TMPDIR (where the data directory goes).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
    "") ;;
    --quick) quick=true ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benches/suite.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

kafka_port="${STRATA_SUITE_KAFKA_PORT:-49092}"
admin_port="${STRATA_SUITE_ADMIN_PORT:-49644}"
iperf_port="${STRATA_SUITE_IPERF_PORT:-49201}"
# The three brokers' ports are below Linux's ephemeral range (32768-60999): a port in it
# can be taken by an outgoing connection between two runs' brokers (seen once).
cluster_base="${STRATA_SUITE_CLUSTER_BASE:-29092}"

# Sizes of the run. Counts (not durations) for the matrix, so every cell moves the same
# data whatever the load; durations for the e2e sweep, which is paced.
if $quick; then
    dd_cache_mib=256 dd_sync_mib=128 iperf_s=2
    msgs_100b=200000 msgs_1kib=50000
    sweep_max_s=3 sweep_step_s=2 idle_s=5
else
    dd_cache_mib=1024 dd_sync_mib=1024 iperf_s=5
    msgs_100b=2000000 msgs_1kib=500000
    sweep_max_s=10 sweep_step_s=10 idle_s=30
fi
# The latency target: e2e at 100 000 msgs/s of 1 KiB on one partition of one node,
# the producer sending at once (linger 0), repeated for a median.
if $quick; then target_runs=1 target_s=3; else target_runs=3 target_s=10; fi
target_rate=100000
sweep_pcts=(10 30 50 70 90)
sweep_partitions=8
sweep_size=1024

# -- tools -------------------------------------------------------------------------------
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
command -v cargo >/dev/null || { echo "benches/suite.sh: cargo not found" >&2; exit 2; }
for tool in iperf3 jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "== apt-get install $tool"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "$tool" || { apt-get update -q && apt-get install -y -q "$tool"; }
    fi
done

echo "== cargo build --release (strata, plot_latency)"
cargo build --release -j "$CARGO_BUILD_JOBS" --bin strata
cargo build --release -j "$CARGO_BUILD_JOBS" -p strata-benches --bin plot_latency
target_dir="${CARGO_TARGET_DIR:-target}"
strata="$target_dir/release/strata"
plot="$target_dir/release/plot_latency"

# -- run state and cleanup ---------------------------------------------------------------
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="benches/results/$stamp"
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-suite.XXXXXX")"
broker_pid="" iperf_pid=""
cluster_pids=()
cleanup() {
    if [[ -n "$broker_pid" ]]; then kill -TERM "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
    for pid in "${cluster_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${cluster_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "$iperf_pid" ]]; then kill -TERM "$iperf_pid" 2>/dev/null || true; wait "$iperf_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# True when something listens on 127.0.0.1/0.0.0.0 TCP port $1 (from /proc, no tools).
listening() {
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6
}
# Polls until port $1 listens (or process $2 dies); gives up after ~20 s.
wait_listening() {
    local port="$1" pid="$2" what="$3"
    for _ in $(seq 200); do
        listening "$port" && return 0
        kill -0 "$pid" 2>/dev/null || { echo "$what exited before listening on $port" >&2; return 1; }
        sleep 0.1
    done
    echo "$what did not listen on $port within 20 s" >&2
    return 1
}
for port in "$kafka_port" "$admin_port" "$iperf_port"; do
    if listening "$port"; then
        echo "benches/suite.sh: port $port is in use; set STRATA_SUITE_*_PORT" >&2
        exit 2
    fi
done

load_start="$(loadavg)"
echo "== run $stamp ($($quick && echo quick || echo full)), load average $load_start, results in $out"

# -- machine limits ----------------------------------------------------------------------
# MB/s (10^6 bytes) from dd's summary line: "N bytes (...) copied, T s, ...".
dd_mb_per_sec() {
    LC_ALL=C dd "$@" 2>&1 | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") t = $(i - 1) }
        END { if (t <= 0) { print "dd output not understood" > "/dev/stderr"; exit 1 }; printf "%.1f\n", $1 / t / 1e6 }'
}
# "median (all values)" of the numbers given, the values in the order given.
median_and_all() {
    printf '%s\n' "$@" | sort -g | awk -v all="$*" '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], all }'
}
# Median of DD_RUNS runs of dd into a fresh file in the data directory (dd is noisy on a
# shared machine: single page-cache runs spread 3x); prints "median (all runs)".
dd_median() {
    local runs=() r
    for _ in $(seq "$dd_runs"); do
        r="$(dd_mb_per_sec if=/dev/zero of="$work/data/dd.bin" bs=1M "$@")"
        rm -f "$work/data/dd.bin"
        runs+=("$r")
    done
    median_and_all "${runs[@]}"
}
# The same, but every run into a new file while the earlier ones stay: the page cache
# grows as a log's does. Reusing freed pages (the runs above) can be several times
# faster than growing the cache on a VM whose free memory the host takes back.
dd_median_growing() {
    local runs=() r i
    for i in $(seq "$dd_runs"); do
        runs+=("$(dd_mb_per_sec if=/dev/zero of="$work/data/dd-grow-$i.bin" bs=1M "$@")")
    done
    rm -f "$work/data"/dd-grow-*.bin
    median_and_all "${runs[@]}"
}
dd_runs=3
mkdir -p "$work/data"
echo "== dd, median of $dd_runs: ${dd_cache_mib} MiB into the page cache, ${dd_sync_mib} MiB with conv=fdatasync ($work)"
read -r dd_cache dd_cache_all <<<"$(dd_median count="$dd_cache_mib")"
read -r dd_sync dd_sync_all <<<"$(dd_median count="$dd_sync_mib" conv=fdatasync)"
read -r dd_grow dd_grow_all <<<"$(dd_median_growing count="$dd_cache_mib")"
echo "   page cache $dd_cache MB/s ($dd_cache_all), fdatasync $dd_sync MB/s ($dd_sync_all), growing page cache $dd_grow MB/s ($dd_grow_all)"

echo "== iperf3 loopback, ${iperf_s} s"
iperf3 -s -p "$iperf_port" -B 127.0.0.1 >"$work/iperf3-server.log" 2>&1 &
iperf_pid=$!
wait_listening "$iperf_port" "$iperf_pid" iperf3
iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$iperf_s" -J >"$out/iperf3.json"
kill -TERM "$iperf_pid"; wait "$iperf_pid" 2>/dev/null || true; iperf_pid=""
iperf_mb="$(jq '.end.sum_received.bits_per_second / 8 / 1e6 | . * 10 | round / 10' "$out/iperf3.json")"
echo "   loopback $iperf_mb MB/s"

machine_cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
jq -n --arg stamp "$stamp" --argjson quick "$quick" --arg rev "$(git rev-parse --short HEAD)" \
    --arg cpu "$machine_cpu" --argjson cores "$(nproc)" --arg kernel "$(uname -r)" \
    --arg fs "$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')" --arg load "$load_start" \
    --argjson dd_cache "$dd_cache" --argjson dd_sync "$dd_sync" --argjson iperf "$iperf_mb" \
    --argjson dd_grow "$dd_grow" --arg grow_all "$dd_grow_all" \
    --argjson cache_mib "$dd_cache_mib" --argjson sync_mib "$dd_sync_mib" --argjson dd_runs "$dd_runs" \
    --arg cache_all "$dd_cache_all" --arg sync_all "$dd_sync_all" \
    '{stamp: $stamp, quick: $quick, git: $rev, cpu: $cpu, cores: $cores, kernel: $kernel,
      filesystem: $fs, load_average_start: $load,
      dd_page_cache_mb_per_sec: $dd_cache, dd_page_cache_mib: $cache_mib,
      dd_fdatasync_mb_per_sec: $dd_sync, dd_fdatasync_mib: $sync_mib,
      dd_runs: $dd_runs, dd_page_cache_runs: $cache_all, dd_fdatasync_runs: $sync_all,
      dd_growing_page_cache_mb_per_sec: $dd_grow, dd_growing_page_cache_runs: $grow_all,
      iperf3_loopback_mb_per_sec: $iperf}' >"$out/limits.json"

# -- the broker --------------------------------------------------------------------------
echo "== strata serve on 127.0.0.1:$kafka_port (admin $admin_port), data in $work/data"
"$strata" serve --data-dir "$work/data" --kafka-addr "127.0.0.1:$kafka_port" \
    --admin-addr "127.0.0.1:$admin_port" --log-level warn 2>"$work/broker.log" &
broker_pid=$!
wait_listening "$kafka_port" "$broker_pid" "strata serve" || { cat "$work/broker.log" >&2; exit 1; }

brokers="127.0.0.1:$kafka_port"
# Runs one `strata bench` command, appends its JSON (tagged with the cell name) to
# results.jsonl and prints it.
bench() {
    local cell="$1"
    shift
    local json
    if ! json="$("$strata" bench "$@" --brokers "$brokers" --json 2>"$work/bench.err")"; then
        echo "strata bench $* failed:" >&2
        cat "$work/bench.err" >&2
        return 1
    fi
    jq -c --arg cell "$cell" --arg load "$(loadavg)" '. + {cell: $cell, load_average: $load}' \
        <<<"$json" | tee -a "$out/results.jsonl"
}
field() { jq -r "$1" <<<"$2"; }

# -- the matrix --------------------------------------------------------------------------
load_matrix="$(loadavg)"
echo "== matrix (load average $load_matrix)"
# The matrix against $brokers into CSV $1 (cell names prefixed with $2, topics with $3).
run_matrix() {
    local csv="$1" prefix="$2" topics="$3" partitions size acks messages topic cell p c limit_name limit
    echo "partitions,size_bytes,acks,messages,produce_msgs_per_sec,produce_mb_per_sec,p50_ms,p99_ms,produce_limit,produce_ratio,consume_msgs_per_sec,consume_mb_per_sec,consume_ratio" \
        >"$csv"
    for partitions in 1 8; do
        for size in 100 1024; do
            for acks in 1 all; do
                messages=$msgs_100b
                [[ "$size" == 1024 ]] && messages=$msgs_1kib
                topic="$topics-p$partitions-s$size-a$acks"
                cell="${prefix}p$partitions s$size acks=$acks"
                echo "-- $cell: produce $messages, then consume"
                p="$(bench "produce $cell" produce --topic "$topic" --partitions "$partitions" \
                    --messages "$messages" --size "$size" --acks "$acks")"
                c="$(bench "consume $cell" consume --topic "$topic" --messages "$messages" --cleanup)"
                if [[ "$acks" == 1 ]]; then limit_name=dd_page_cache limit=$dd_cache; else limit_name=dd_fdatasync limit=$dd_sync; fi
                jq -rn --argjson p "$p" --argjson c "$c" --arg ln "$limit_name" --argjson l "$limit" \
                    --argjson net "$iperf_mb" --arg parts "$partitions" --arg size "$size" --arg acks "$acks" \
                    '[$parts, $size, $acks, $p.messages, ($p.messages_per_sec | round),
                      ($p.mb_per_sec * 10 | round / 10), $p.latency_ms.p50, $p.latency_ms.p99, $ln,
                      ($p.mb_per_sec / $l * 1000 | round / 1000), ($c.messages_per_sec | round),
                      ($c.mb_per_sec * 10 | round / 10), ($c.mb_per_sec / $net * 1000 | round / 1000)]
                     | map(tostring) | join(",")' >>"$csv"
            done
        done
    done
}
run_matrix "$out/matrix.csv" "" "suite-$stamp"

# -- the latency sweep -------------------------------------------------------------------
load_sweep="$(loadavg)"
echo "== sweep: e2e, $sweep_partitions partitions, $sweep_size B (load average $load_sweep)"
echo "series,target_pct,rate_msgs_per_sec,achieved_msgs_per_sec,mb_per_sec,p50_ms,p99_ms,p999_ms" \
    >"$out/sweep.csv"
sweep_row() {
    jq -rn --argjson r "$3" --arg s "$1" --arg pct "$2" \
        '[$s, $pct, ($r.rate_msgs_per_sec // "max"), ($r.messages_per_sec | round),
          ($r.mb_per_sec * 10 | round / 10), $r.latency_ms.p50, $r.latency_ms.p99, $r.latency_ms.p999]
         | map(tostring) | join(",")' >>"$out/sweep.csv"
}
for acks in 1 all; do
    series="acks=$acks"
    echo "-- $series: max rate, ${sweep_max_s} s"
    r="$(bench "e2e $series max" e2e --topic "suite-$stamp-sweep-a$acks-max" \
        --partitions "$sweep_partitions" --size "$sweep_size" --acks "$acks" --duration "${sweep_max_s}s" --cleanup)"
    sweep_row "$series" 100 "$r"
    max_rate="$(field '.messages_per_sec | floor' "$r")"
    for pct in "${sweep_pcts[@]}"; do
        rate=$((max_rate * pct / 100))
        [[ "$rate" -ge 1 ]] || rate=1
        echo "-- $series: $pct % = $rate msgs/s, ${sweep_step_s} s"
        r="$(bench "e2e $series $pct%" e2e --topic "suite-$stamp-sweep-a$acks-r$pct" \
            --partitions "$sweep_partitions" --size "$sweep_size" --acks "$acks" \
            --rate "$rate" --duration "${sweep_step_s}s" --cleanup)"
        sweep_row "$series" "$pct" "$r"
    done
done

# -- the latency target ------------------------------------------------------------------
load_target="$(loadavg)"
echo "== latency target: e2e, 1 partition, $sweep_size B at $target_rate msgs/s, linger 0 (load average $load_target)"
echo "acks,run,rate_msgs_per_sec,achieved_msgs_per_sec,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,ack_p50_ms,ack_p99_ms" \
    >"$out/target.csv"
for acks in 1 all; do
    for run in $(seq "$target_runs"); do
        echo "-- acks=$acks: run $run, ${target_s} s"
        r="$(bench "e2e target acks=$acks $run" e2e --topic "suite-$stamp-target-a$acks-$run" \
            --partitions 1 --size "$sweep_size" --acks "$acks" --linger-ms 0 \
            --rate "$target_rate" --duration "${target_s}s" --cleanup)"
        jq -rn --argjson r "$r" --arg acks "$acks" --arg run "$run" \
            '[$acks, $run, $r.rate_msgs_per_sec, ($r.messages_per_sec | round), $r.latency_ms.p50,
              $r.latency_ms.p90, $r.latency_ms.p99, $r.latency_ms.p999, $r.latency_ms.max,
              $r.produce_latency_ms.p50, $r.produce_latency_ms.p99]
             | map(tostring) | join(",")' >>"$out/target.csv"
    done
done

# -- resident memory, then stop ----------------------------------------------------------
# "VmRSS RssAnon RssFile VmHWM" of the broker in MB (10^6 bytes).
rss_mb() {
    awk '/^(VmRSS|RssAnon|RssFile|VmHWM):/ { v[$1] = $2 * 1024 / 1e6 }
         END { printf "%.1f %.1f %.1f %.1f\n", v["VmRSS:"], v["RssAnon:"], v["RssFile:"], v["VmHWM:"] }' \
        "/proc/$broker_pid/status"
}
read -r rss_after anon_after file_after hwm_after <<<"$(rss_mb)"
echo "== broker after the run: VmRSS $rss_after MB (RssAnon $anon_after, RssFile $file_after), VmHWM $hwm_after MB; idle ${idle_s} s"
# A measured idle interval, not a wait for readiness: memory must not grow while idle.
sleep "$idle_s"
read -r rss_idle anon_idle file_idle hwm_idle <<<"$(rss_mb)"
echo "   after ${idle_s} s idle: VmRSS $rss_idle MB (RssAnon $anon_idle, RssFile $file_idle), VmHWM $hwm_idle MB"
data_mb="$(du -sm "$work/data" | cut -f1)"
kill -TERM "$broker_pid"
broker_rc=0
wait "$broker_pid" || broker_rc=$?
broker_pid=""
[[ "$broker_rc" == 0 ]] || { echo "broker exited with status $broker_rc; log:" >&2; cat "$work/broker.log" >&2; exit 1; }
load_end="$(loadavg)"
echo "   broker stopped cleanly (SIGTERM); $data_mb MiB of data; load average $load_end"

jq --arg lm "$load_matrix" --arg ls "$load_sweep" --arg le "$load_end" --argjson idle "$idle_s" \
    --arg after "$rss_after $anon_after $file_after $hwm_after" \
    --arg idle_rss "$rss_idle $anon_idle $file_idle $hwm_idle" --argjson data "$data_mb" \
    'def rss: split(" ") | map(tonumber) | {vmrss_mb: .[0], rss_anon_mb: .[1], rss_file_mb: .[2], vmhwm_mb: .[3]};
     . + {load_average_matrix: $lm, load_average_sweep: $ls, load_average_end: $le,
          broker_rss_after_run: ($after | rss), idle_s: $idle, broker_rss_after_idle: ($idle_rss | rss),
          data_dir_mib: $data}' "$out/limits.json" >"$work/limits.json"
mv "$work/limits.json" "$out/limits.json"

# -- three brokers, replication factor 3 ---------------------------------------------------
# Node i: Kafka on base+i, Raft on base+100+i, admin on base+200+i.
peers="1=127.0.0.1:$((cluster_base + 101)),2=127.0.0.1:$((cluster_base + 102)),3=127.0.0.1:$((cluster_base + 103))"
echo "== 3 brokers on 127.0.0.1:$((cluster_base + 1))-$((cluster_base + 3)), replication factor 3"
for i in 1 2 3; do
    "$strata" serve --node-id "$i" --data-dir "$work/node-$i" \
        --kafka-addr "127.0.0.1:$((cluster_base + i))" --admin-addr "127.0.0.1:$((cluster_base + 200 + i))" \
        --raft-addr "127.0.0.1:$((cluster_base + 100 + i))" --peers "$peers" --log-level warn \
        2>"$work/node-$i.log" &
    cluster_pids+=($!)
done
for i in 1 2 3; do
    wait_listening "$((cluster_base + i))" "${cluster_pids[$((i - 1))]}" "strata serve (node $i)" \
        || { cat "$work/node-$i.log" >&2; exit 1; }
done
# Until every broker registered with the controller (topics then get three replicas).
registered=false
for _ in $(seq 1 300); do
    if [[ "$("$strata" cluster status --admin "127.0.0.1:$((cluster_base + 201))" 2>/dev/null | grep -c ' up ')" == 3 ]]; then
        registered=true
        break
    fi
    sleep 0.1
done
$registered || { echo "the three brokers did not all register in 30 s" >&2; cat "$work"/node-*.log >&2; exit 1; }
brokers="127.0.0.1:$((cluster_base + 1)),127.0.0.1:$((cluster_base + 2)),127.0.0.1:$((cluster_base + 3))"
load_cluster="$(loadavg)"
echo "== matrix on 3 brokers (load average $load_cluster)"
run_matrix "$out/cluster_matrix.csv" "rf3 " "suite-$stamp-rf3"
cluster_rss=""
for i in 1 2 3; do
    cluster_rss+="$(awk '/^VmRSS:/ { printf "%.1f", $2 * 1024 / 1e6 }' "/proc/${cluster_pids[$((i - 1))]}/status") "
done
echo "   VmRSS of the three brokers after their matrix (MB): $cluster_rss"
for pid in "${cluster_pids[@]}"; do kill -TERM "$pid"; done
for i in 1 2 3; do
    rc=0
    wait "${cluster_pids[$((i - 1))]}" || rc=$?
    [[ "$rc" == 0 ]] || { echo "node $i exited with status $rc; log:" >&2; cat "$work/node-$i.log" >&2; exit 1; }
done
cluster_pids=()
echo "   the three brokers stopped cleanly (SIGTERM)"

# -- chart and markdown ------------------------------------------------------------------
echo "== chart"
label="$($quick && echo ", quick run" || true)"
"$plot" "$out/sweep.csv" "$out/latency-vs-throughput.png" \
    "Strata e2e latency vs throughput ($sweep_partitions partitions, $sweep_size B, 1 node, $stamp$label)"
if ! $quick; then
    mkdir -p docs/img
    cp "$out/latency-vs-throughput.png" docs/img/latency-vs-throughput.png
fi

{
    echo "**Run:** \`benches/suite.sh$($quick && echo ' --quick' || true)\`, $stamp, git $(jq -r .git "$out/limits.json"),"
    echo "$(nproc) cores ($machine_cpu), Linux $(uname -r), data on $(jq -r .filesystem "$out/limits.json")."
    echo "Load average (1/5/15 min): start $load_start, matrix $load_matrix, sweep $load_sweep, end $load_end."
    echo
    echo "**Machine limits (this run; dd = median of $dd_runs runs, \`bs=1M\`):** dd into the page cache ${dd_cache} MB/s"
    echo "(${dd_cache_mib} MiB; runs ${dd_cache_all}); dd \`conv=fdatasync\` ${dd_sync} MB/s (${dd_sync_mib} MiB; runs ${dd_sync_all});"
    echo "iperf3 loopback ${iperf_mb} MB/s (${iperf_s} s, one stream). Growing the page cache (each dd run into a new"
    echo "file, the earlier ones kept, as a log grows): ${dd_grow} MB/s (runs ${dd_grow_all})."
    echo
    echo "**Matrix** (\`strata bench produce --messages N --size S --acks A --partitions P\`, then"
    echo "\`strata bench consume\` of the same topic; client defaults: linger 5 ms, 16 KiB batches, 1 producer;"
    echo "latency = send → ack; ratio = MB/s ÷ the limit: dd page cache for acks=1, dd fdatasync for acks=all,"
    echo "iperf3 for consume):"
    echo
    echo "| partitions | size | acks | messages | produce msgs/s | MB/s | p50 / p99 ms | ratio to limit | consume msgs/s | MB/s | ratio to iperf3 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    tail -n +2 "$out/matrix.csv" | awk -F, '{
        lim = ($9 == "dd_page_cache") ? "dd cache" : "dd fdatasync"
        printf "| %s | %s B | %s | %s | %s | %s | %s / %s | %s× %s | %s | %s | %s× |\n",
            $1, $2, $3, $4, $5, $6, $7, $8, $10, lim, $11, $12, $13 }'
    echo
    echo "**Matrix on three brokers** (the same cells against three \`strata serve --peers\` on this"
    echo "machine, every topic with replication factor 3, acks=all = Raft commit on 2 of 3; load average"
    echo "$load_cluster; VmRSS after it: $cluster_rss MB; × single = msgs/s ÷ the single node's same cell):"
    echo
    echo "| partitions | size | acks | produce msgs/s | × single | MB/s | p50 / p99 ms | ratio to limit | consume msgs/s | × single |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    paste -d, <(tail -n +2 "$out/cluster_matrix.csv") <(tail -n +2 "$out/matrix.csv") | awk -F, '{
        lim = ($9 == "dd_page_cache") ? "dd cache" : "dd fdatasync"
        ps = ($18 > 0) ? sprintf("%.2f", $5 / $18) : "-"
        cs = ($24 > 0) ? sprintf("%.2f", $11 / $24) : "-"
        printf "| %s | %s B | %s | %s | %s× | %s | %s / %s | %s× %s | %s | %s× |\n",
            $1, $2, $3, $5, ps, $6, $7, $8, $10, lim, $11, cs }'
    echo
    echo "**Sweep** (\`strata bench e2e --partitions $sweep_partitions --size $sweep_size --acks A\`: unpaced for"
    echo "${sweep_max_s} s to find the maximum R, then \`--rate\` at 10–90 % of R for ${sweep_step_s} s each; latency ="
    echo "a record's age when the consumer reads it):"
    echo
    echo "| series | % of max | target msgs/s | achieved msgs/s | MB/s | p50 ms | p99 ms | p99.9 ms |"
    echo "|---|---|---|---|---|---|---|---|"
    tail -n +2 "$out/sweep.csv" | awk -F, '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
    echo
    echo "**Latency target** (\`strata bench e2e --partitions 1 --size $sweep_size --linger-ms 0 --rate $target_rate"
    echo "--acks A --duration ${target_s}s\`, $target_runs run(s) each, load average $load_target; e2e = a record's"
    echo "age when read, from the microsecond stamped in its value; ack = send → acknowledgement; target p99 < 2 ms,"
    echo "p99.9 < 5 ms):"
    echo
    echo "| acks | run | achieved msgs/s | e2e p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | ack p50 / p99 ms |"
    echo "|---|---|---|---|---|---|---|---|---|"
    tail -n +2 "$out/target.csv" | awk -F, '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", $1, $2, $4, $5, $6, $7, $8, $9, $10, $11 }'
    echo
    echo "**Broker resident memory** (/proc/PID/status, MB; $data_mb MiB of log on disk at the end; each cell's topic is deleted after it):"
    echo
    echo "| when | VmRSS | RssAnon | RssFile | VmHWM |"
    echo "|---|---|---|---|---|"
    echo "| after the matrix, sweep and latency target | $rss_after | $anon_after | $file_after | $hwm_after |"
    echo "| after ${idle_s} s idle | $rss_idle | $anon_idle | $file_idle | $hwm_idle |"
} >"$out/summary.md"

echo "== done: $out/summary.md"
cat "$out/summary.md"
