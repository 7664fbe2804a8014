"""Boards as local processes: QEMU emulating a Cortex-M, or the host device program.

Both listen on a loopback TCP port and speak the link protocol there, so the client connects
to ``socket://127.0.0.1:PORT`` exactly as it would to a real board's serial port.

    with Emulator() as emu:                     # qemu-system-arm -M mps2-an386 ...
        with Device.open(emu.url) as dev: ...

    with open_device(board="host") as dev:     # the board process belongs to the device
        dev.info()

The process is always torn down: on ``stop()``, on leaving the ``with`` block (exceptions
included), and at interpreter exit.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Optional

from edgespike import paths
from edgespike.device.client import DEFAULT_TIMEOUT, Device
from edgespike.device.transport import Transport
from edgespike.errors import EmulatorError, ToolMissing

log = logging.getLogger(__name__)

#: Boards a local process can provide: QEMU machines and the host device program.
#: netduinoplus2 is QEMU's STM32F405 board running the stm32f4 port (firmware/ports/stm32f4).
QEMU_BOARDS = ("mps2-an386", "netduinoplus2")
BOARDS = QEMU_BOARDS + ("host",)
QEMU = "qemu-system-arm"

#: Boards whose firmware announces itself once its UART is up: QEMU's STM32 USART drops bytes
#: that arrive before the firmware enables it, so the host waits for this line (ending in
#: 0x00) before it sends anything.
READY_BANNERS = {"netduinoplus2": b"ES-READY"}
#: Boards whose firmware uses semihosting (faults, exit codes); QEMU must enable it for them.
SEMIHOSTING_BOARDS = ("mps2-an386",)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies, so a board
    never outlives a killed SDK process (atexit does not run on signals). Linux ties this to
    the starting thread: start boards from a thread that lives as long as they should."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BoardProcess:
    """Common life cycle of a board process: start, URL, liveness, guaranteed teardown."""

    board = ""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self._log: Optional[IO[bytes]] = None
        self._detached = False

    @property
    def url(self) -> str:
        """``socket://127.0.0.1:PORT`` of the running board."""
        if self.port is None:
            raise EmulatorError(f"{self.board}: not started")
        return f"socket://127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        """Process id, or None before start."""
        return self.proc.pid if self.proc is not None else None

    def start(self) -> "BoardProcess":  # pragma: no cover - overridden
        raise NotImplementedError

    def _spawn(self, argv: list[str], *, stdout: int | IO[bytes] | None = None,
               detach: bool = False, log_path: Optional[Path] = None) -> None:
        if log_path is not None:
            self._log = open(log_path, "a+b")
        else:
            # append mode: the child writes at the end even while we seek to read it back
            self._log = tempfile.TemporaryFile(mode="a+b", prefix=f"edgespike-{self.board}-")
        log.debug("starting %s", " ".join(argv))
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log if stdout is None else stdout,
            stderr=self._log, start_new_session=detach,
            preexec_fn=None if detach else _die_with_parent)
        self._detached = detach
        if not detach:
            atexit.register(self.stop)

    def output(self) -> str:
        """What the process wrote to stderr (and stdout, for QEMU) so far."""
        if self._log is None:
            return ""
        try:
            # pread on the descriptor, not the buffered file object: its read-ahead buffer can
            # hold stale bytes while the child appends (seen once as a garbled ready line)
            fd = self._log.fileno()
            size = os.fstat(fd).st_size
            start = max(0, size - 16000)
            return os.pread(fd, size - start, start).decode(errors="replace")[-4000:]
        except (OSError, ValueError):
            return ""

    def alive(self) -> None:
        """Raise :class:`EmulatorError` (with the process's output) if it has exited."""
        if self.proc is None:
            raise EmulatorError(f"{self.board}: not started")
        code = self.proc.poll()
        if code is not None:
            raise EmulatorError(f"{self.board} process exited with status {code}:\n"
                                f"{self.output().strip() or '(no output)'}")

    def connect(self, timeout: float = 10.0) -> Transport:
        """Open the board's socket, retrying until it listens; fails fast if the process died."""
        return Transport(self.url, connect_timeout=timeout, alive=self.alive)

    def release(self) -> None:
        """Leave the process running (``emulator start --detach``): no teardown at exit."""
        self._detached = True
        atexit.unregister(self.stop)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, grace: float = 2.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``grace`` seconds). Idempotent."""
        atexit.unregister(self.stop)
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "BoardProcess":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._detached:
            self.stop()


class Emulator(BoardProcess):
    """QEMU running the link firmware of an emulated board, its UART on a loopback TCP port.

    Args:
        board: a QEMU board (``"mps2-an386"``, or ``"netduinoplus2"``: STM32F405 running the
            stm32f4 port, which sends a ready banner the host waits for in :meth:`connect`).
        firmware: the ELF to run; default :func:`edgespike.paths.firmware_image` (
            ``build/<board>/edgespike-<board>.elf``, ``build/stm32f4/...`` for netduinoplus2).
        port: TCP port for the UART (0: a free one).
        icount: run with ``-icount shift=0`` so cycle counts are deterministic instructions.
        detach: start in its own session and leave it running (see :meth:`release`).
        log_path: file for QEMU's output (default: a temporary file).
        gdb: start halted with QEMU's gdbstub on a free loopback port (:attr:`gdb_address`),
            waiting for a debugger or :func:`edgespike.device.flash`; the UART does not wait
            for its client then (``wait=off``), and no ready banner is awaited.
        load: load ``firmware`` with ``-kernel``; False starts an empty board to be flashed
            through the gdbstub (with ``gdb=True``).
    """

    def __init__(self, board: str = paths.DEFAULT_BOARD, firmware: Optional[str | Path] = None,
                 *, port: int = 0, icount: bool = True, detach: bool = False,
                 log_path: Optional[Path] = None, gdb: bool = False,
                 load: bool = True) -> None:
        super().__init__()
        if board not in QEMU_BOARDS:
            raise EmulatorError(f"unknown emulated board {board!r}; choose one of "
                                f"{', '.join(QEMU_BOARDS)} (or board 'host' via HostDevice)")
        self.board = board
        self.firmware = Path(firmware) if firmware else None
        self._want_port = port
        self.icount = icount
        self.detach = detach
        self.log_path = log_path
        self.gdb = gdb
        self.load = load
        self.gdb_port: Optional[int] = None

    @property
    def gdb_address(self) -> str:
        """``127.0.0.1:PORT`` of QEMU's gdbstub (started with ``gdb=True``)."""
        if self.gdb_port is None:
            raise EmulatorError(f"{self.board}: not started with its gdbstub (gdb=True)")
        return f"127.0.0.1:{self.gdb_port}"

    def command(self, port: int) -> list[str]:
        """The QEMU command line for ``port``."""
        argv = [QEMU, "-M", self.board, "-nographic", "-monitor", "none"]
        if self.icount:
            argv += ["-icount", "shift=0"]
        if self.board in SEMIHOSTING_BOARDS:
            argv += ["-semihosting-config", "enable=on,target=native"]
        wait = "off" if self.gdb else "on"
        argv += ["-serial", f"tcp:127.0.0.1:{port},server=on,wait={wait},nodelay=on"]
        if self.gdb:
            argv += ["-S", "-gdb", f"tcp:127.0.0.1:{self.gdb_port}"]
        if self.load:
            argv += ["-kernel", str(self.firmware or paths.firmware_image(self.board))]
        return argv

    def connect(self, timeout: float = 10.0) -> Transport:
        """Open the board's socket; on boards with a ready banner, return once it came."""
        transport = super().connect(timeout)
        banner = READY_BANNERS.get(self.board)
        if banner is None or self.gdb:
            return transport
        try:
            self.wait_ready(transport, banner, timeout)
        except BaseException:
            transport.close()
            raise
        return transport

    def wait_ready(self, transport: Transport, banner: bytes, timeout: float) -> None:
        """Read until ``banner`` and the 0x00 that ends it (the firmware's UART is up)."""
        deadline = time.monotonic() + timeout
        seen = b""
        while True:
            at = seen.find(banner)
            if at >= 0 and seen.find(b"\x00", at) >= 0:
                extra = seen[seen.find(b"\x00", at) + 1:]
                if extra:  # the firmware sends nothing else before the host's first request
                    log.debug("%s: %d bytes after the ready banner dropped", self.board,
                              len(extra))
                return
            self.alive()
            left = deadline - time.monotonic()
            if left <= 0:
                raise EmulatorError(f"{self.board}: no ready banner ({banner.decode()}) within "
                                    f"{timeout:.1f} s; got {seen[-80:]!r}; QEMU output:\n"
                                    f"{self.output().strip() or '(none)'}")
            seen += transport.read(min(left, 0.2))

    def start(self) -> "Emulator":
        """Start QEMU; it waits for the first connection before running the firmware."""
        if shutil.which(QEMU) is None:
            raise ToolMissing(f"{QEMU} not found; install it: sudo apt-get install qemu-system-arm")
        if self.load:
            firmware = self.firmware or paths.firmware_image(self.board)
            if not Path(firmware).is_file():
                raise ToolMissing(f"firmware image {firmware} not found; build it: bash "
                                  "firmware/build.sh")
        for attempt in range(3):
            port = self._want_port or free_port()
            if self.gdb:
                self.gdb_port = free_port()
            self._spawn(self.command(port), detach=self.detach, log_path=self.log_path)
            self.port = port
            # QEMU binds its socket before it runs; a port taken in between shows up as an
            # early exit, then try another port
            time.sleep(0.05)
            if self.proc is not None and self.proc.poll() is not None:
                text = self.output()
                self.stop()
                if "in use" in text and not self._want_port and attempt < 2:
                    continue
                raise EmulatorError(f"{QEMU} exited at start:\n{text.strip() or '(no output)'}")
            break
        return self


class HostDevice(BoardProcess):
    """``build/host/edgespike-hostdev``: the same link code on the host, over TCP (fast tests).

    It prints ``listening socket://127.0.0.1:PORT`` when started with ``--port 0``. It serves
    one client at a time: another gets ``ERR_BUSY`` at once (:meth:`Device.open` retries
    until its connect timeout, then raises :class:`~edgespike.errors.DeviceBusy`), and a
    client silent for ``idle_timeout`` seconds (None: the program's default, 60; 0: never)
    with no stream open is disconnected.
    """

    board = "host"

    def __init__(self, executable: Optional[str | Path] = None, *, port: int = 0,
                 detach: bool = False, log_path: Optional[Path] = None,
                 start_timeout: float = 10.0, idle_timeout: Optional[int] = None) -> None:
        super().__init__()
        self.executable = Path(executable) if executable else None
        self.idle_timeout = idle_timeout
        self._want_port = port
        self.detach = detach
        self.log_path = log_path
        self.start_timeout = start_timeout

    def start(self) -> "HostDevice":
        """Start the program and read the port it listens on from its output."""
        exe = self.executable or paths.hostdev_executable()
        argv = [str(exe), "--port", str(self._want_port)]
        if self.idle_timeout is not None:
            argv += ["--idle-timeout", str(int(self.idle_timeout))]
        self._spawn(argv, detach=self.detach, log_path=self.log_path)
        deadline = time.monotonic() + self.start_timeout
        while True:
            m = re.search(r"listening socket://[\w.\-]+:(\d+)", self.output())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc is not None and self.proc.poll() is not None:
                text = self.output()
                self.stop()
                raise EmulatorError(f"{exe} exited at start:\n{text.strip() or '(no output)'}")
            if time.monotonic() > deadline:
                text = self.output()
                self.stop()
                raise EmulatorError(f"{exe} printed no 'listening socket://...' line within "
                                    f"{self.start_timeout} s; output:\n{text.strip()}")
            time.sleep(0.01)


def make_board(board: str, **kwargs: object) -> BoardProcess:
    """A (not yet started) board process by name: a QEMU board or ``"host"``."""
    if board == "host":
        return HostDevice(**kwargs)  # type: ignore[arg-type]
    if board in QEMU_BOARDS:
        return Emulator(board, **kwargs)  # type: ignore[arg-type]
    raise EmulatorError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}, or give "
                        "--port for a real board")


def open_device(port: Optional[str] = None, board: Optional[str] = None, *,
                timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = 10.0) -> Device:
    """A connected :class:`Device`: on ``port`` if given, else on a freshly started ``board``
    (default ``mps2-an386``), which then belongs to the device and stops when it closes.
    """
    if port:
        return Device.open(port, timeout=timeout, connect_timeout=connect_timeout)
    proc = make_board(board or paths.DEFAULT_BOARD)
    proc.start()
    try:
        transport = proc.connect(connect_timeout)
        dev = Device(transport, timeout=timeout, owner=proc)
        dev.resync()
        return dev
    except BaseException:
        proc.stop()
        raise


def stop_pid(pid: int, grace: float = 3.0) -> bool:
    """SIGTERM (then SIGKILL) a detached board process; False if it was not running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
