#!/usr/bin/env bash
# Makes sure Chromium and chromedriver (the browser mq-cli/tests/web_ui.rs drives the `mq web`
# page in, headless) are installed: Debian's chromium and chromium-driver with apt when run as
# root, otherwise says how.
set -euo pipefail
if command -v chromedriver >/dev/null 2>&1 && [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium or chromedriver not found: installing chromium and chromium-driver with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  exit 0
fi
echo "error: chromium or chromedriver is not installed. Install them first, e.g. 'sudo apt-get install -y chromium chromium-driver' (Debian)." >&2
exit 1
