#!/usr/bin/env bash
# Runs every check of mq: formatting, clippy (warnings denied), unit, doc, UI and integration
# tests against real redis-server processes that the tests start on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export RUSTDOCFLAGS="${RUSTDOCFLAGS:--D warnings}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo doc --workspace --no-deps -q
cargo build --workspace --bins -q
cargo test --workspace
