#!/usr/bin/env bash
# Makes sure redis-server is installed: installs it with apt when run as root, otherwise says how.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The package starts a system service on port 6379; mq's demo and tests start their own.
  exit 0
fi
echo "error: redis-server is not installed. Install it first, e.g. 'sudo apt-get install -y redis-server' (Debian/Ubuntu) or 'brew install redis' (macOS)." >&2
exit 1
