#!/usr/bin/env bash
# Runs every Strata test, installing what the tests need first. `.ci/run` calls exactly
# this script; run it from anywhere.
#
# The Rust suite (unit, property, crash and CLI tests, plus one pass of every criterion
# bench in smoke mode), then the real-client tests: tests/python runs kcat, confluent-kafka
# (librdkafka) and kafka-python against a real `strata serve` (the debug binary). This
# script installs what those need: a venv at .venv/ with tests/python/requirements.txt
# (reinstalled only when that file changes) and kcat from Debian's packages (as root).
# Set PYTHON to choose the interpreter that makes the venv (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 2
fi
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (unit, property, crash, CLI; benches run once in smoke mode)"
# The fuzz targets' binaries are libFuzzer's own main (they would fuzz forever); clippy above
# compiles them, `cargo fuzz run request_decoder` (or `sasl_exchange`) runs one.
cargo test --workspace --all-targets --locked --exclude strata-fuzz

echo "== doc tests"
cargo test --workspace --doc --locked

echo "== cargo build (the debug strata binary every Python test runs)"
# `cargo test --all-targets` above built it already (the CLI tests run it). The same
# target selection keeps the same dependency features, so this only checks that it is
# fresh; `--bin strata` alone would build the dependencies again (about 70 s) without
# the dev-dependencies' features.
cargo build -j "$CARGO_BUILD_JOBS" --workspace --all-targets --locked --exclude strata-fuzz
STRATA_BIN="${CARGO_TARGET_DIR:-target}/debug/strata"

echo "== Python venv for the real-client tests (.venv/)"
requirements=tests/python/requirements.txt
stamp=.venv/.requirements.sha256
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1 \
    || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "${PYTHON:-python3}" -m venv --clear .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
        --requirement "$requirements"
    echo "$want" >"$stamp"
fi

if ! command -v kcat >/dev/null 2>&1; then
    echo "== apt-get install kcat"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q kcat || { apt-get update -q && apt-get install -y -q kcat; }
fi

echo "== real-client tests (pytest tests/python against $STRATA_BIN)"
STRATA_BIN="$STRATA_BIN" PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest tests/python -x -q
