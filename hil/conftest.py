"""Hardware-in-the-loop suite: the link firmware on a board, checked against the numpy reference.

By default each session starts the emulated board (QEMU mps2-an386) once. Options:
  --port URL        a real board (/dev/ttyACM0) or a running emulator (socket://127.0.0.1:PORT)
  --board host      the host device program (build/host/edgespike-hostdev) instead of QEMU
  --board netduinoplus2   QEMU's STM32F405 running the stm32f4 port (build/stm32f4)
Tests skip, saying why, when qemu-system-arm or the firmware image is missing.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from edgespike import paths
from hil_models import board_missing

HIL_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgespike hil")
    group.addoption("--port", default=None, metavar="URL",
                    help="device for hil/: serial port or socket://HOST:PORT (default: start one)")
    group.addoption("--board", default=paths.DEFAULT_BOARD,
                    choices=("mps2-an386", "netduinoplus2", "host"),
                    help="board hil/ starts when --port is not given (default mps2-an386)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "qemu: needs qemu-system-arm and the cross-built firmware")
    config.addinivalue_line("markers", "hil: runs against a device (hil/)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    emulated = (config.getoption("--port") is None
                and config.getoption("--board") in ("mps2-an386", "netduinoplus2"))
    for item in items:
        if HIL_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.hil)
            if emulated:
                item.add_marker(pytest.mark.qemu)


@pytest.fixture(scope="session")
def board_name(request: pytest.FixtureRequest) -> str | None:
    """The board hil/ starts, or None when --port names an existing device."""
    return None if request.config.getoption("--port") else request.config.getoption("--board")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest, board_name: str | None):
    """One connected :class:`edgespike.device.Device` for the whole session."""
    from edgespike.device import open_device

    port = request.config.getoption("--port")
    if port is None:
        why = board_missing(board_name or paths.DEFAULT_BOARD)
        if why:
            pytest.skip(f"hil: {why}")
    dev = open_device(port=port, board=board_name, timeout=20.0)
    try:
        dev.drain(0.2)
        yield dev
    finally:
        dev.close()
