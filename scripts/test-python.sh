#!/usr/bin/env bash
# Builds the Python package `mq` (mq-python, PyO3 + maturin; a dev-profile wheel) into a
# virtualenv under the target directory and runs its pytest suite against real redis-servers
# started on free loopback ports. Needs the workspace binaries (`cargo build --workspace
# --bins`) for the Rust<->Python round trips.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
venv="$(mkdir -p "$target" && cd "$target" && pwd)/pyenv"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 ships venv separately.
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi
"$venv/bin/pip" install -q -r mq-python/requirements-test.txt
rm -rf "$target/wheels"
"$venv/bin/maturin" build -q -m mq-python/Cargo.toml --profile dev -o "$target/wheels"
"$venv/bin/pip" install -q --force-reinstall --no-deps "$target"/wheels/mq-*.whl
# The type stubs: mypy --strict over the package, and stubtest, which imports the built module
# and fails on any class, method or parameter the stubs get wrong or leave out.
(cd mq-python && "$venv/bin/python" -m mypy --strict --no-incremental python/mq &&
  "$venv/bin/python" -m mypy.stubtest --ignore-disjoint-bases mq._native)
cd mq-python/tests
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
