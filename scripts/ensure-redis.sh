#!/usr/bin/env bash
# Makes sure redis-server and redis-cli (which joins the nodes of the tests' local Redis Cluster)
# are installed: installs them with apt when run as root, otherwise says how.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server or redis-cli not found: installing them with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
  # The package starts a system service on port 6379; mq's demo and tests start their own.
  exit 0
fi
echo "error: redis-server or redis-cli is not installed. Install them first, e.g. 'sudo apt-get install -y redis-server redis-tools' (Debian/Ubuntu) or 'brew install redis' (macOS)." >&2
exit 1
