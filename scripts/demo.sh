#!/usr/bin/env bash
# Runs the mq demo end to end on this machine: installs redis-server if missing, builds in
# release mode, starts a private redis-server on a free port, enqueues, drains, prints a summary.
# With `--model minilm` it builds with the feature `minilm` and, unless MQ_MODEL_DIR is set,
# fetches the model first (scripts/fetch-model.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
features=()
case " $* ${MQ_MODEL:+--model $MQ_MODEL} " in
  *" --model minilm "* | *" --model=minilm "*)
    features=(--features minilm)
    MQ_MODEL_DIR="${MQ_MODEL_DIR:-$(scripts/fetch-model.sh)}"
    export MQ_MODEL_DIR
    ;;
esac
exec cargo run --release -q -p mq-examples "${features[@]}" --bin demo -- "$@"
