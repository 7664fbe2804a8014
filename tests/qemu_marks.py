"""The marks of a test that needs the emulated board: ``qemu``, and a skip saying what is
missing (qemu-system-arm, or a firmware image / library not built yet)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from edgespike.errors import ToolMissing


def needs_qemu(*artefacts: Callable[[], Path]) -> list[pytest.MarkDecorator]:
    """Marks for a test that runs ``artefacts`` (e.g. ``paths.firmware_image``) under QEMU."""
    missing = None
    try:
        for artefact in artefacts:
            artefact()
        if shutil.which("qemu-system-arm") is None:
            missing = "qemu-system-arm not installed"
    except ToolMissing as exc:  # depends on the build
        missing = str(exc)
    return [pytest.mark.qemu, pytest.mark.skipif(missing is not None, reason=str(missing))]
