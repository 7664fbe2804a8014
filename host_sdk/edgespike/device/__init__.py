"""Talking to devices: transports, the protocol client, and local board processes.

- :class:`Device` (``client``): hello/info, chunked deploy, run, stream, stats, reset over one
  link.
- :class:`Transport` (``transport``): a serial port or ``socket://HOST:PORT``, timed reads.
- :class:`Emulator` / :class:`HostDevice` (``emulator``): QEMU or the host device program as
  a board on a loopback port; :func:`open_device` picks or starts one.
- :class:`FakeDevice` (``fake``): an in-process protocol simulator for tests of the host side.
- :func:`flash` (``flashing``): write an ELF onto a board through a gdbserver (``gdbremote``,
  the GDB remote protocol) or a debug probe (pyOCD), verify it by read-back, reset and run.
"""
from edgespike.device.client import (
    DeployResult, Device, DeviceInfo, DeviceRunOutput, DeviceStats,
)
from edgespike.device.emulator import (
    BOARDS, Emulator, HostDevice, make_board, open_device,
)
from edgespike.device.flashing import GDB_SERVERS, FlashResult, flash
from edgespike.device.transport import Transport

__all__ = [
    "BOARDS", "DeployResult", "Device", "DeviceInfo", "DeviceRunOutput", "DeviceStats",
    "Emulator", "FlashResult", "GDB_SERVERS", "HostDevice", "Transport", "flash", "make_board",
    "open_device",
]
