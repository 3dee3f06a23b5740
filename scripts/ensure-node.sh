#!/usr/bin/env bash
# Makes sure Node.js and npm are installed (tests/tests/k8s.rs checks docker/k8s's manifests
# against the Kubernetes and KEDA schemas with npm packages): Debian's nodejs and npm with apt
# when run as root, otherwise says how.
set -euo pipefail
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "node or npm not found: installing nodejs and npm with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  exit 0
fi
echo "error: node or npm is not installed. Install them first, e.g. 'sudo apt-get install -y nodejs npm' (Debian)." >&2
exit 1
