"""Runs the C core's own unit tests (firmware/core/tests/test_core.c), built by the firmware
build as ``build/host/es_core_tests``. Builds nothing itself."""
from __future__ import annotations

import re
import subprocess

import pytest

from edgespike import paths


def test_c_core_unit_tests_pass():
    exe = paths.build_dir() / "host" / "es_core_tests"
    if not exe.exists():
        pytest.skip(f"{exe} not built; build it with: bash firmware/build.sh")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    summary = re.search(r"(\d+) passed, (\d+) failed", proc.stdout)
    assert summary, f"no summary line in the output:\n{proc.stdout}\n{proc.stderr}"
    passed, failed = int(summary.group(1)), int(summary.group(2))
    assert failed == 0 and proc.returncode == 0, proc.stdout
    assert passed >= 100, f"only {passed} checks ran:\n{proc.stdout}"
