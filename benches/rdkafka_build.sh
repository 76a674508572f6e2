#!/usr/bin/env bash
# Builds librdkafka's `rdkafka_performance` (examples/rdkafka_performance.c, the
# librdkafka project's own producer/consumer benchmark) once into a cache directory and
# prints the binary's path as the last line of stdout (progress goes to stderr).
# benches/rdkafka_compare.sh calls it; it can also be run by hand.
#
# Where the source comes from: the npm registry's `node-rdkafka` package bundles
# librdkafka's whole source tree (examples included) under deps/librdkafka. Version
# 2.15.0 bundles librdkafka 2.0.2, the version of Debian bookworm's librdkafka1 /
# librdkafka-dev. The tarball is fetched with `npm pack` (which checks the registry's
# integrity) and checked again here against the sha512 pinned below, so a changed
# tarball is refused. (crates.io's rdkafka-sys has no release bundling 2.0.2: its
# releases bundle 1.9.2, then 2.2.0.)
#
# How it is built: only the example is compiled, against Debian's librdkafka-dev
# (installed with apt-get when missing, as scripts/test.sh does for kcat), when
# Debian's library is the bundled version: the example includes some of librdkafka's
# internal headers (rd.h, rdtime.h, which include the config.h that librdkafka's
# `./configure` writes), so the bundled tree's `./configure --no-download` runs first to
# write config.h; nothing of the library itself is built. When Debian's librdkafka is
# another version, the bundled librdkafka is built (`make -C src librdkafka.a`, static,
# without SSL, SASL/GSSAPI, zstd, zlib, curl) and the example linked with it instead.
#
# Cache: ${STRATA_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-bench}/
#   rdkafka-<librdkafka version>-node-rdkafka-<version>/: the tarball, the extracted
#   tree, the binary, and PROVENANCE (source, checksums, linked library, compile command).
#   Reused while PROVENANCE matches and the binary's libraries resolve; delete the
#   directory to rebuild.
#
# Usage: benches/rdkafka_build.sh [--help]
set -euo pipefail

case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benches/rdkafka_build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

node_rdkafka_version=2.15.0
librdkafka_version=2.0.2
# From the npm registry's metadata for node-rdkafka@2.15.0 (dist.integrity, dist.shasum).
tarball_integrity="sha512-LXeliPuuWC9QaeQL48RWbXz1AUl6M0JAbZJN800VHYMXO+jO7GBc97rtClBau+fMj2qxFiPw+d0IovIIcgaVdw=="
tarball_sha1=aaee6e9793229e7f029f014a1c44067f5f38d21c

cache_root="${STRATA_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-bench}"
dir="$cache_root/rdkafka-$librdkafka_version-node-rdkafka-$node_rdkafka_version"
bin="$dir/rdkafka_performance"
log() { echo "rdkafka_build: $*" >&2; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    log "apt-get install $*"
    apt-get install -y -q "$@" >&2 || { apt-get update -q >&2 && apt-get install -y -q "$@" >&2; }
}
# Debian's librdkafka (headers, shared library, pkg-config file) and a C compiler.
missing=()
dpkg -s librdkafka-dev >/dev/null 2>&1 || missing+=(librdkafka-dev)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [[ ${#missing[@]} -gt 0 ]]; then apt_install "${missing[@]}"; fi
debian_version="$(pkg-config --modversion rdkafka)"

# The expected PROVENANCE header: a cached build is reused only if it was made from the
# same tarball against the same Debian library.
stamp="source: npm registry, node-rdkafka@$node_rdkafka_version (deps/librdkafka = librdkafka $librdkafka_version)
tarball integrity: $tarball_integrity
tarball sha1: $tarball_sha1
debian librdkafka-dev: $debian_version"

if [[ -x "$bin" && -f "$dir/PROVENANCE" ]] && [[ "$(head -4 "$dir/PROVENANCE")" == "$stamp" ]] \
    && ! ldd "$bin" | grep -q 'not found'; then
    log "cached: $bin"
    echo "$bin"
    exit 0
fi

rm -rf "$dir"
mkdir -p "$dir"
tgz="$dir/node-rdkafka-$node_rdkafka_version.tgz"
if ! command -v npm >/dev/null 2>&1; then apt_install npm; fi
log "npm pack node-rdkafka@$node_rdkafka_version"
(cd "$dir" && npm pack "node-rdkafka@$node_rdkafka_version" --ignore-scripts --silent >/dev/null)
[[ -f "$tgz" ]] || { log "npm pack did not leave $tgz"; exit 1; }
want_sha512="$(base64 -d <<<"${tarball_integrity#sha512-}" | od -An -v -tx1 | tr -d ' \n')"
got_sha512="$(sha512sum "$tgz" | cut -d' ' -f1)"
got_sha1="$(sha1sum "$tgz" | cut -d' ' -f1)"
if [[ "$got_sha512" != "$want_sha512" || "$got_sha1" != "$tarball_sha1" ]]; then
    log "checksum mismatch for $tgz: sha512 $got_sha512 (want $want_sha512), sha1 $got_sha1 (want $tarball_sha1)"
    exit 1
fi
log "checksums match (sha512 $got_sha512)"

tar -xzf "$tgz" -C "$dir" package/deps/librdkafka
src="$dir/package/deps/librdkafka"
hex="$(awk '$1 == "#define" && $2 == "RD_KAFKA_VERSION" { print $3 }' "$src/src/rdkafka.h")"
bundled="$((hex >> 24 & 0xff)).$((hex >> 16 & 0xff)).$((hex >> 8 & 0xff))"
if [[ "$bundled" != "$librdkafka_version" ]]; then
    log "the tarball bundles librdkafka $bundled, expected $librdkafka_version"
    exit 1
fi

# config.h for the example's internal headers (and, when needed, for the library build).
log "configure (librdkafka $bundled, for config.h)"
(cd "$src" && ./configure --no-download --disable-ssl --disable-gssapi --disable-zstd \
    --disable-curl --disable-zlib >"$dir/configure.log" 2>&1) \
    || { cat "$dir/configure.log" >&2; exit 1; }

cflags=(-O2 -g -Wall -I "$src/src")
if [[ "$debian_version" == "$bundled" ]]; then
    if cmp -s "$src/src/rdkafka.h" /usr/include/librdkafka/rdkafka.h; then
        header_note="identical to /usr/include/librdkafka/rdkafka.h"
    else
        header_note="differs from /usr/include/librdkafka/rdkafka.h (same version)"
    fi
    linked="Debian librdkafka $debian_version (shared, $(pkg-config --libs rdkafka | xargs))"
    read -r -a libs <<<"$(pkg-config --libs rdkafka)"
    libs+=(-lpthread -lm)
else
    log "Debian's librdkafka is $debian_version, not $bundled: building the bundled library (make librdkafka.a)"
    make -C "$src/src" -j "$(nproc)" librdkafka.a >"$dir/make.log" 2>&1 || { tail -40 "$dir/make.log" >&2; exit 1; }
    header_note="bundled (Debian's librdkafka is $debian_version)"
    linked="bundled librdkafka $bundled (static, $src/src/librdkafka.a)"
    # The system libraries that configure found librdkafka needs (LIBS in Makefile.config).
    read -r -a sys_libs <<<"$(awk '/^LIBS\+?=/ { sub(/^LIBS\+?=[ \t]*/, ""); printf "%s ", $0 }' "$src/Makefile.config")"
    libs=("$src/src/librdkafka.a" "${sys_libs[@]}")
fi
cmd=(gcc "${cflags[@]}" "$src/examples/rdkafka_performance.c" -o "$bin" "${libs[@]}")
log "${cmd[*]}"
"${cmd[@]}" >&2
# The binary's own report of the library it runs with (its usage text, exit status 1).
runtime="$("$bin" -h 2>&1 | awk '/^librdkafka version/ { print; exit }' || true)"
[[ -n "$runtime" ]] || { log "$bin did not report its librdkafka version"; exit 1; }
{
    echo "$stamp"
    echo "bundled rdkafka.h: $header_note"
    echo "linked: $linked"
    echo "runtime: $runtime"
    echo "compiler: $(gcc --version | head -1)"
    echo "compile: ${cmd[*]}"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$dir/PROVENANCE"
log "built $bin ($runtime)"
echo "$bin"
