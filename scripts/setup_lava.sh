#!/usr/bin/env bash
# Create the Lava (Loihi 2) environment for edgespike.backends.lava: a virtual environment from
# Python 3.10 with lava-nc 0.10.0 and its pinned dependencies (Lava 0.10 requires Python 3.10 and
# numpy < 2; the SDK itself stays on the current Python and numpy and talks to it through a
# subprocess). Idempotent: a second run only checks.
#
#   bash scripts/setup_lava.sh            # -> build/lava-venv (or $EDGESPIKE_BUILD/lava-venv)
#
# Environment:
#   EDGESPIKE_LAVA_VENV      where to create it (default: <build>/lava-venv)
#   EDGESPIKE_LAVA_BASE_PY   the Python 3.10 to create it from (default: pyenv's 3.10, python3.10)
# If you put the environment elsewhere, point the SDK at its interpreter with
# EDGESPIKE_LAVA_PYTHON=/path/to/venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup_lava]\033[0m %s\n' "$*"; }

BUILD=${EDGESPIKE_BUILD:-$PWD/build}
VENV=${EDGESPIKE_LAVA_VENV:-$BUILD/lava-venv}
# The exact set this was tested with (pip freeze of a fresh install of lava-nc==0.10.0).
PINS=(lava-nc==0.10.0 numpy==1.26.4 scipy==1.15.3 scikit-learn==1.7.2 networkx==2.8.7
      asteval==0.9.33 joblib==1.6.0 threadpoolctl==3.8.0 cloudpickle==3.1.2)
CHECK="import lava, lava.magma.core.run_configs, lava.proc.lif.process, numpy; assert numpy.__version__ == '1.26.4'"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -I -c "$CHECK" 2>/dev/null; then
  log "Lava environment ready: $VENV"
  exit 0
fi

find_py310() {
  if [ -n "${EDGESPIKE_LAVA_BASE_PY:-}" ]; then echo "$EDGESPIKE_LAVA_BASE_PY"; return; fi
  local root=${PYENV_ROOT:-$HOME/.pyenv} cand
  for cand in "$root"/versions/3.10.*/bin/python3 /root/.pyenv/versions/3.10.*/bin/python3; do
    [ -x "$cand" ] && { echo "$cand"; return; }
  done
  if command -v pyenv >/dev/null && pyenv prefix 3.10 >/dev/null 2>&1; then
    echo "$(pyenv prefix 3.10 | head -n1)/bin/python3"; return
  fi
  command -v python3.10 || true
}
BASE=$(find_py310)
if [ -z "$BASE" ] || ! "$BASE" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
  log "no Python 3.10 found (lava-nc 0.10 needs exactly 3.10): install one (pyenv install 3.10,"
  log "or apt/deadsnakes python3.10 with venv) and re-run, or set EDGESPIKE_LAVA_BASE_PY"
  exit 1
fi

log "creating $VENV from $BASE"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$BASE" -m venv "$VENV"
log "pip install ${PINS[*]}"
# (this machine's pip config names local mirrors that may be absent: hide those warnings only)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}" \
  2> >(grep -v "is neither a file nor a directory" >&2)
"$VENV/bin/python" -I -c "$CHECK"
log "Lava environment ready: $VENV"
