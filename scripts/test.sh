#!/usr/bin/env bash
# Runs every Strata test, installing what the tests need first. `.ci/run` calls exactly
# this script; run it from anywhere.
#
# Today the suite is Rust only (unit, property, crash and CLI tests, plus one pass of
# every criterion bench in smoke mode). The real-client tests that arrive with the broker
# add their Python venv and kcat install here.
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
# The fuzz target's binary is libFuzzer's own main (it would fuzz forever); clippy above
# compiles it, `cargo fuzz run request_decoder` runs it.
cargo test --workspace --all-targets --locked --exclude strata-fuzz

echo "== doc tests"
cargo test --workspace --doc --locked
