"""Byte transports to a device: a serial port, or ``socket://HOST:PORT`` (emulators, hostdev).

A real board on ``/dev/ttyACM0`` goes through pyserial; QEMU's UART and the host device on
``socket://127.0.0.1:PORT`` through a plain TCP socket, so that every wait (connect, read,
write) has the deadline it was given, and a failure says what happened (nothing listens, the
listener accepts nobody, the peer closed) rather than a generic "check the port name". Both
look the same to the client.
"""
from __future__ import annotations

import logging
import select
import socket
import time
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import serial

from edgespike.errors import DeviceTimeout, LinkClosed

log = logging.getLogger(__name__)

#: Default baud rate for real serial ports (ignored by sockets and by QEMU).
DEFAULT_BAUD = 115200
#: Seconds a write may block (the device not reading) before :class:`DeviceTimeout`.
DEFAULT_WRITE_TIMEOUT = 10.0


def parse_socket_url(url: str) -> tuple[str, int]:
    """``socket://HOST:PORT`` as ``(host, port)``; raises :class:`LinkClosed` if malformed."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:
        scheme, host, port = "", None, None
    if scheme != "socket" or not host or port is None:
        raise LinkClosed(f"{url!r} is not a socket://HOST:PORT address (e.g. "
                         "socket://127.0.0.1:5555, as 'edgespike emulator start' prints)")
    return host, port


class _SocketPort:
    """A connected TCP socket with timed reads and writes (what the transport needs of it)."""

    def __init__(self, sock: socket.socket, write_timeout: float) -> None:
        self.sock = sock
        self.write_timeout = write_timeout

    def read(self, timeout: float) -> bytes:
        """What arrives within ``timeout`` s (``b""`` if nothing); raises OSError on EOF."""
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
        if not ready:
            return b""
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the device closed the connection")
        return data

    def write(self, data: bytes) -> None:
        """Send all of ``data`` within the write timeout (socket.timeout otherwise)."""
        self.sock.settimeout(self.write_timeout)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.settimeout(None)

    def close(self) -> None:
        self.sock.close()


class _SerialPort:
    """A pyserial port with the same read/write/close as :class:`_SocketPort`."""

    def __init__(self, ser: serial.SerialBase) -> None:
        self.ser = ser

    def read(self, timeout: float) -> bytes:
        self.ser.timeout = max(timeout, 0.0)
        data = self.ser.read(1)
        if data:
            # then whatever else already arrived, without waiting (timeout 0 = non-blocking)
            self.ser.timeout = 0
            data += self.ser.read(65536)
        return bytes(data)

    def write(self, data: bytes) -> None:
        self.ser.write(data)
        self.ser.flush()

    def close(self) -> None:
        self.ser.close()


class Transport:
    """A byte pipe to one device with timed reads and writes.

    Args:
        url: a serial port (``/dev/ttyACM0``, ``COM3``), ``socket://HOST:PORT``, or another
            pyserial URL.
        baudrate: bits per second for real serial ports.
        connect_timeout: seconds, in all, to keep trying to connect (an emulator's socket
            appears some tens of ms after the process starts); a connection attempt never
            outlasts it.
        alive: called between connection attempts; it raises (e.g. ``EmulatorError``) when
            the process that should listen has died, so a dead emulator fails fast.
        write_timeout: seconds a write may block before :class:`DeviceTimeout`.

    Raises:
        LinkClosed: the connection could not be made; the message says why.
    """

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUD, connect_timeout: float = 5.0,
                 alive: Optional[Callable[[], None]] = None,
                 write_timeout: float = DEFAULT_WRITE_TIMEOUT) -> None:
        self.url = url
        self.write_timeout = write_timeout
        if url.startswith("socket://"):
            self._ser: Any = self._connect_socket(url, connect_timeout, alive, write_timeout)
        else:
            self._ser = self._open_serial(url, baudrate, alive, write_timeout)

    @staticmethod
    def _connect_socket(url: str, connect_timeout: float, alive: Optional[Callable[[], None]],
                        write_timeout: float) -> _SocketPort:
        host, port = parse_socket_url(url)
        t0 = time.monotonic()
        deadline = t0 + max(connect_timeout, 0.0)
        delay = 0.02
        refused = 0
        while True:
            left = deadline - time.monotonic()
            try:
                # one attempt never waits past the deadline (at least 50 ms)
                sock = socket.create_connection((host, port), timeout=max(left, 0.05))
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                log.debug("connected to %s", url)
                return _SocketPort(sock, write_timeout)
            except ConnectionRefusedError as exc:
                refused += 1
                last: OSError = exc
            except socket.timeout as exc:
                raise LinkClosed(
                    f"cannot connect to {url}: {host}:{port} accepted no connection within "
                    f"{time.monotonic() - t0:.1f} s (it listens, but its queue is full: another "
                    "client may hold the device)") from exc
            except socket.gaierror as exc:
                raise LinkClosed(f"cannot connect to {url}: unknown host {host!r} ({exc})") from exc
            except OSError as exc:
                last = exc
            if alive is not None:
                alive()
            if time.monotonic() + delay >= deadline:
                if refused:
                    raise LinkClosed(
                        f"cannot connect to {url}: nothing listens on {host}:{port} (connection "
                        f"refused for {time.monotonic() - t0:.1f} s). Start the board first "
                        "('edgespike emulator start' prints its URL) and check the port") from last
                raise LinkClosed(f"cannot connect to {url}: {last}") from last
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    @staticmethod
    def _open_serial(url: str, baudrate: int, alive: Optional[Callable[[], None]],
                     write_timeout: float) -> _SerialPort:
        try:
            ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1,
                                        write_timeout=write_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            if alive is not None:
                alive()
            raise LinkClosed(f"cannot open {url}: {exc}. Check the port name (e.g. /dev/ttyACM0 "
                             "or COM3) and that no other program holds it") from exc
        log.debug("opened %s", url)
        return _SerialPort(ser)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._ser is None

    def write(self, data: bytes) -> None:
        """Send all of ``data``.

        Raises :class:`DeviceTimeout` when the device takes nothing for ``write_timeout``
        seconds, :class:`LinkClosed` if the link is gone.
        """
        port = self._require()
        try:
            port.write(data)
        except (serial.SerialTimeoutException, socket.timeout) as exc:
            raise DeviceTimeout(f"{self.url}: write of {len(data)} bytes timed out after "
                                f"{self.write_timeout:.1f} s: the device reads nothing") from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(f"{self.url}: link closed while writing ({exc})") from exc

    def read(self, timeout: float) -> bytes:
        """Bytes available within ``timeout`` seconds (``b""`` if none came).

        Raises :class:`LinkClosed` when the other end closed the connection.
        """
        port = self._require()
        try:
            return port.read(timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkClosed(f"{self.url}: link closed ({exc}). The host device also closes "
                             "a session idle for longer than its --idle-timeout"
                             if self.url.startswith("socket://")
                             else f"{self.url}: link closed ({exc})") from exc

    def close(self) -> None:
        """Close the port; safe to call twice."""
        if self._ser is not None:
            try:
                self._ser.close()
            finally:
                self._ser = None

    def _require(self) -> Any:
        if self._ser is None:
            raise LinkClosed(f"{self.url}: transport already closed")
        return self._ser

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
