#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up (idempotent), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 -m pytest -q -p no:cacheprovider "$@"
