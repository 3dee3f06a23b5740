#!/usr/bin/env bash
# Builds the example workers with CUDA: text-worker (MiniLM) and image-worker (MobileNetV2),
# cargo features `cuda` and `mobilenet`, release profile. Installs Debian's CUDA toolkit
# (package nvidia-cuda-toolkit, 11.8 on bookworm, in the `non-free` component, which this
# script adds to apt's sources) when nvcc is missing and we are root. On a host without a GPU
# it still builds (the kernels for compute capability CUDA_COMPUTE_CAP, default 80); the
# binaries then run on the CPU. Measured here (2 cores, no GPU): the toolkit is 2.3 GB to
# download, and the build takes about 14 minutes, nearly all of it nvcc compiling candle's
# kernels.
#
#   scripts/build-cuda.sh [more cargo build flags]
#
# Then, on a GPU host:
#   MQ_MODEL_DIR="$(scripts/fetch-model.sh)" target/release/text-worker --url $URL --model minilm
#   MQ_IMAGE_MODEL_DIR="$(scripts/fetch-image-model.sh)" target/release/image-worker --url $URL --model mobilenet
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: nvcc not found; install the CUDA toolkit (Debian: nvidia-cuda-toolkit from non-free)" >&2
    exit 1
  fi
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  sources=/etc/apt/sources.list.d/mq-cuda.sources
  if [ ! -f "$sources" ]; then
    echo "adding Debian's contrib and non-free components for $codename to $sources" >&2
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$codename" "$codename" >"$sources"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-cuda-toolkit >/dev/null
fi
nvcc --version | tail -2
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d . || true)"
  export CUDA_COMPUTE_CAP="${cap:-80}"
fi
echo "building for compute capability $CUDA_COMPUTE_CAP" >&2
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo build --release -p mq-examples --features cuda,mobilenet --bin text-worker --bin image-worker "$@"
