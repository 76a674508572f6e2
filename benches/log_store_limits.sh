#!/usr/bin/env bash
# Measures the machine limits the log-store benchmarks are ratios of, on the filesystem
# that holds the bench data (STRATA_BENCH_DIR, default /tmp):
#
#   page-cache write   dd if=/dev/zero of=F bs=16k count=65536           (1 GiB, no sync)
#   durable write      dd if=/dev/zero of=F bs=1M count=1024 conv=fdatasync
#   page-cache read    dd if=F of=/dev/null bs=1M                        (F just written)
#
# Each is run once unmeasured (as criterion warms up; on a VM the first touch of fresh
# memory is much slower), then RUNS times (default 3); the median MB/s (dd's MB = 10^6
# bytes) is printed with every run's figure.
# The files are removed on exit, including on Ctrl-C.
#
# Usage: benches/log_store_limits.sh            (STRATA_BENCH_DIR=/path RUNS=5 to change)
set -euo pipefail

dir="${STRATA_BENCH_DIR:-/tmp}"
runs="${RUNS:-3}"
[[ -d "$dir" ]] || { echo "no such directory: $dir" >&2; exit 1; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 1; }

work="$(mktemp -d "$dir/strata-limits.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
file="$work/dd.bin"

# Runs dd with the given arguments and prints its throughput in MB/s, computed from the
# bytes and seconds of dd's summary line (dd's own unit varies: kB/s, MB/s, GB/s).
dd_mb_per_s() {
    local summary
    summary="$(LC_ALL=C dd "$@" 2>&1 >/dev/null | tail -n 1)"
    # e.g. "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 0.612 s, 1.8 GB/s"
    awk -v line="$summary" 'BEGIN {
        n = split(line, f, " ");
        bytes = f[1];
        for (i = 1; i <= n; i++) if (f[i] == "s,") secs = f[i - 1];
        if (secs <= 0) { print "dd output not understood: " line > "/dev/stderr"; exit 1 }
        printf "%.0f\n", bytes / secs / 1e6
    }'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# Runs one measurement once to warm up, then `runs` times; prints
# "label: median MB/s (runs: ...)".
measure() {
    local label="$1" setup="$2"; shift 2
    eval "$setup"
    dd_mb_per_s "$@" >/dev/null
    local results=()
    for _ in $(seq "$runs"); do
        eval "$setup"
        results+=("$(dd_mb_per_s "$@")")
    done
    local med
    med="$(printf '%s\n' "${results[@]}" | median)"
    printf '%-38s %6s MB/s   (runs: %s)\n' "$label" "$med" "${results[*]}"
}

echo "# log-store limits — $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
echo "# dir: $dir ($(df -T "$dir" | awk 'NR == 2 { print $2 " on " $1 }')), runs: $runs"
echo "# host: $(nproc) cpus, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"

# A fresh file each run, so every run allocates blocks as the log's appends do.
measure "page-cache write (bs=16k, 1 GiB)" 'rm -f "$file"' \
    if=/dev/zero of="$file" bs=16k count=65536
measure "fdatasync write (bs=1M, 1 GiB)" 'rm -f "$file"' \
    if=/dev/zero of="$file" bs=1M count=1024 conv=fdatasync
# The last write left F complete and cached: this reads from the page cache.
measure "page-cache read (bs=1M, 1 GiB)" ':' \
    if="$file" of=/dev/null bs=1M
