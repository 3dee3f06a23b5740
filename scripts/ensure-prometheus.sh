#!/usr/bin/env bash
# Makes sure prometheus and promtool are installed (the dashboard test runs a real Prometheus):
# installs Debian's package with apt when run as root, otherwise says how.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "prometheus not found: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  # The package may start system services; the tests start their own Prometheus.
  (service prometheus stop >/dev/null 2>&1 || true)
  (service prometheus-node-exporter stop >/dev/null 2>&1 || true)
  exit 0
fi
echo "error: prometheus is not installed. Install it first, e.g. 'sudo apt-get install -y prometheus' (Debian/Ubuntu)." >&2
exit 1
