"""Where the SDK finds what the build produced (firmware images, the host library).

The build (``firmware/build.sh``) writes into ``build/`` at the repository root:
``build/host/`` (the C core as a shared library, the host device process) and
``build/<board>/`` (firmware images for each emulated board). ``EDGESPIKE_BUILD`` overrides it.
"""
from __future__ import annotations

import os
from pathlib import Path

from edgespike.errors import ToolMissing

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BOARD = "mps2-an386"

#: Emulated boards whose firmware comes from another port's build tree: QEMU's netduinoplus2
#: (STM32F405) runs the stm32f4 port, ``build/stm32f4/edgespike-stm32f4.elf``.
FIRMWARE_TREES = {"netduinoplus2": "stm32f4"}


def build_dir() -> Path:
    """The build folder: ``$EDGESPIKE_BUILD`` or ``<repo>/build``."""
    return Path(os.environ.get("EDGESPIKE_BUILD", REPO_ROOT / "build"))


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise ToolMissing(f"{what} not found at {path}; build it with: bash firmware/build.sh")
    return path


def host_library() -> Path:
    """The C core as a shared library (for :mod:`edgespike.sim.core`)."""
    return _need(build_dir() / "host" / "libedgespike_host.so", "the host C library")


def hostdev_executable() -> Path:
    """The host device process: the firmware's link over a TCP socket, for fast tests."""
    return _need(build_dir() / "host" / "edgespike-hostdev", "the host device program")


def firmware_image(board: str = DEFAULT_BOARD) -> Path:
    """The link firmware (ELF) for an emulated board (``netduinoplus2``: the stm32f4 port)."""
    tree = FIRMWARE_TREES.get(board, board)
    return _need(build_dir() / tree / f"edgespike-{tree}.elf", f"the {board} firmware")


def runner_image(board: str = DEFAULT_BOARD, kernels: str = "default") -> Path:
    """The semihosting runner (ELF): runs one blob on one input file inside QEMU, no link.

    ``kernels="plain"``: the same runner built with the portable C kernels instead of the
    board's DSP kernels (``-DES_PLAIN_KERNELS=1``), to test both paths on the same core.
    ``kernels="m0"``: the runner built for the Cortex-M0 (ARMv6-M, ``build/<board>-m0``), run on
    the same board, whose block trace the M0 cycle model prices.
    """
    suffix = "" if kernels == "default" else f"-{kernels}"
    tree = f"{board}-m0" if kernels == "m0" else board
    return _need(build_dir() / tree / f"edgespike-runner-{board}{suffix}.elf",
                 f"the {board} runner ({kernels} kernels)")


def trace_plugin() -> Path:
    """The es_blocktrace QEMU plugin (cycle estimates), built by ``firmware/build.sh`` when
    Debian's qemu source package (for ``qemu-plugin.h``) could be fetched."""
    folder = build_dir() / "qemu-plugin"
    lib = folder / "libes_blocktrace.so"
    why = folder / "UNAVAILABLE"
    if why.is_file():
        raise ToolMissing(f"the QEMU block-trace plugin is not built: {why.read_text().strip()}; "
                          "see firmware/qemu-plugin/build.sh (QEMU_SOURCE_TARBALL for an "
                          "offline machine)")
    return _need(lib, "the QEMU block-trace plugin")
