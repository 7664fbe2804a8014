"""Byte transports to a device: a serial port, or ``socket://HOST:PORT`` (emulators, hostdev).

Both go through pyserial's :func:`serial.serial_for_url`, so a real board on ``/dev/ttyACM0``
and QEMU's UART on ``socket://127.0.0.1:PORT`` look the same to the client.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import serial

from edgespike.errors import DeviceTimeout, LinkClosed

log = logging.getLogger(__name__)

#: Default baud rate for real serial ports (ignored by sockets and by QEMU).
DEFAULT_BAUD = 115200


class Transport:
    """A byte pipe to one device with timed reads.

    Args:
        url: a serial port (``/dev/ttyACM0``, ``COM3``) or a pyserial URL such as
            ``socket://127.0.0.1:5555``.
        baudrate: bits per second for real serial ports.
        connect_timeout: seconds to keep retrying a refused connection (an emulator's socket
            appears some tens of ms after the process starts).
        alive: called between connection attempts; it raises (e.g. ``EmulatorError``) when
            the process that should listen has died, so a dead emulator fails fast.
    """

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUD, connect_timeout: float = 5.0,
                 alive: Optional[Callable[[], None]] = None) -> None:
        self.url = url
        self._ser = self._connect(url, baudrate, connect_timeout, alive)

    @staticmethod
    def _connect(url: str, baudrate: int, connect_timeout: float,
                 alive: Optional[Callable[[], None]]) -> serial.SerialBase:
        deadline = time.monotonic() + connect_timeout
        delay = 0.02
        while True:
            try:
                ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1, write_timeout=10.0)
                log.debug("connected to %s", url)
                return ser
            except (serial.SerialException, OSError, ValueError) as exc:
                if alive is not None:
                    alive()
                if not url.startswith("socket://") or time.monotonic() >= deadline:
                    raise LinkClosed(
                        f"cannot open {url}: {exc}. Check the port name (e.g. /dev/ttyACM0) or, "
                        "for an emulator, that 'edgespike emulator start' is running and printed "
                        "this URL") from exc
                time.sleep(delay)
                delay = min(delay * 1.5, 0.2)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._ser is None

    def write(self, data: bytes) -> None:
        """Send all of ``data``; raises :class:`LinkClosed` if the link is gone."""
        ser = self._require()
        try:
            ser.write(data)
            ser.flush()
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"{self.url}: write of {len(data)} bytes timed out") from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(f"{self.url}: link closed while writing ({exc})") from exc

    def read(self, timeout: float) -> bytes:
        """Bytes available within ``timeout`` seconds (``b""`` if none came).

        Raises :class:`LinkClosed` when the other end closed the connection.
        """
        ser = self._require()
        try:
            ser.timeout = max(timeout, 0.0)
            data = ser.read(1)
            if data:
                # then whatever else already arrived, without waiting (timeout 0 = non-blocking)
                ser.timeout = 0
                data += ser.read(65536)
            return bytes(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(f"{self.url}: link closed ({exc})") from exc

    def close(self) -> None:
        """Close the port; safe to call twice."""
        if self._ser is not None:
            try:
                self._ser.close()
            finally:
                self._ser = None

    def _require(self) -> serial.SerialBase:
        if self._ser is None:
            raise LinkClosed(f"{self.url}: transport already closed")
        return self._ser

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
