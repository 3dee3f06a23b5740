#!/usr/bin/env bash
# Runs the mq demo end to end on this machine: installs redis-server if missing, builds in
# release mode, starts a private redis-server on a free port, enqueues, drains, prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
exec cargo run --release -q -p mq-examples --bin demo -- "$@"
