"""Flash a firmware image onto a board: through any gdbserver, or a debug probe with pyOCD.

Each way does the same four steps: write the ELF's loadable segments (:mod:`.image`), read
every byte back and compare (a difference raises :class:`~edgespike.errors.FlashVerifyError`
naming the address), reset the target and let it run. Given the board's link port, it then
says Hello and checks that the board runs the image just flashed: the link reports the GNU
build id of its image (``DeviceInfo.build_id``).

    from edgespike.device import flash
    flash("build/stm32f4/edgespike-stm32f4.elf", gdb="localhost:3333", server="openocd",
          port="/dev/ttyACM0")
    flash("build/stm32f4/edgespike-stm32f4.elf", probe="auto", target="stm32f405rg")

GDB remote protocol (:mod:`.gdbremote`, no GDB needed): QEMU's gdbstub, OpenOCD, pyOCD's
gdbserver, J-Link GDB Server, st-util. Servers that publish a memory map get flash regions
programmed with ``vFlashErase/vFlashWrite/vFlashDone`` (as GDB's ``load`` does); the rest of
memory, and every address on servers without a map (QEMU), with ``X``/``M`` writes.

pyOCD (``pip install 'edgespike[pyocd]'``): CMSIS-DAP (DAPLink), ST-Link and J-Link probes over
USB; pyOCD's flash algorithms program the part (its built-in targets, e.g. ``stm32f405rg``,
``nrf51``; other parts need a CMSIS-Pack installed with ``pyocd pack install``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from edgespike.device.gdbremote import GdbRemote, MemoryRegion
from edgespike.device.image import FirmwareImage, Segment, read_elf
from edgespike.errors import FlashError, FlashVerifyError, ProbeNotFound, ToolMissing

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class GdbServerKind:
    """A gdbserver the GDB path knows: how it resets the target (a ``monitor`` command that
    leaves the core halted at its reset vector) and where it listens by default."""

    name: str
    what: str
    default_port: int
    reset: str


#: The gdbservers covered. A new one is a line here: its name, its monitor command that resets
#: and halts the target, and its usual port.
GDB_SERVERS: dict[str, GdbServerKind] = {k.name: k for k in (
    GdbServerKind("qemu", "QEMU's gdbstub (-S -gdb tcp::PORT)", 1234, "system_reset"),
    GdbServerKind("openocd", "OpenOCD", 3333, "reset halt"),
    GdbServerKind("pyocd", "pyOCD's gdbserver", 3333, "reset halt"),
    GdbServerKind("jlink", "SEGGER J-Link GDB Server", 2331, "reset"),
    GdbServerKind("stutil", "stlink's st-util (ST-Link)", 4242, "reset halt"),
)}


@dataclass
class FlashResult:
    """What :func:`flash` did. Times in seconds, sizes in bytes.

    Attributes:
        firmware: the ELF flashed.
        method: ``"gdb"`` or ``"pyocd"``.
        target: the gdbserver address, or the probe's unique id.
        server: the gdbserver kind (GDB path) or the pyOCD target type.
        segments: loadable segments written.
        bytes_written: their total size.
        flash_regions: segments (or parts) programmed as flash (vFlash packets, pyOCD loader).
        write_s / verify_s: time to write, time to read back and compare.
        verified: every byte read back equal.
        running: the target was reset and resumed.
        build_id: the image's GNU build id (hex), "" if it has none.
        device_build_id: what the board's link answered to Hello afterwards ("" if not asked).
        retransmits: GDB packets sent again after the server refused their checksum.
    """

    firmware: str
    method: str
    target: str
    server: str
    segments: int = 0
    bytes_written: int = 0
    flash_regions: int = 0
    write_s: float = 0.0
    verify_s: float = 0.0
    verified: bool = False
    running: bool = False
    build_id: str = ""
    device_build_id: str = ""
    retransmits: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def flash(firmware: str | Path, *, gdb: Optional[str] = None, server: str = "auto",
          probe: Optional[str] = None, target: Optional[str] = None, verify: bool = True,
          run: bool = True, port: Optional[str] = None, timeout: float = 10.0,
          progress: Optional[ProgressFn] = None) -> FlashResult:
    """Flash ``firmware`` (an ELF) through a gdbserver (``gdb="host:port"``) or a debug probe
    (``probe="auto"`` or a probe's unique id, with pyOCD).

    Args:
        firmware: the ELF file (``build/<board>/*.elf``; a raw .bin has no addresses).
        gdb: ``host:port`` of a gdbserver.
        server: which gdbserver (:data:`GDB_SERVERS`); ``"auto"``: ``qemu`` when the server
            publishes no memory map, else ``openocd`` (whose ``reset halt`` pyOCD and st-util
            take too).
        probe: pyOCD: ``"auto"`` (the only probe connected) or a probe's unique id.
        target: pyOCD target type (``stm32f405rg``, ``nrf51``...); default: what the probe
            reports (on-board probes), else pyOCD's generic Cortex-M, which cannot program
            flash.
        verify: read every written byte back and compare.
        run: reset the target and let it run afterwards.
        port: the board's link port (serial port or ``socket://``): after running, say Hello
            and check that the board reports the image's build id.
        timeout: seconds to wait for each answer of the gdbserver or the board.
        progress: called with (bytes done, bytes total) while writing.

    Raises:
        FlashError (bad image, refused write, no gdbserver), FlashVerifyError (read-back
        differs), ProbeNotFound, ToolMissing (pyOCD not installed).
    """
    if (gdb is None) == (probe is None):
        raise FlashError("say how to reach the board: gdb='HOST:PORT' (a gdbserver) or "
                         "probe='auto' / a probe id (pyOCD), not both")
    image = read_elf(firmware)
    if gdb is not None:
        result = _flash_gdb(image, gdb, server, verify, run, timeout, progress)
    else:
        result = _flash_pyocd(image, probe or "auto", target, verify, run, progress)
    if port is not None and run:
        result.device_build_id = check_running(image, port, timeout)
    return result


def check_running(image: FirmwareImage, port: str, timeout: float = 10.0) -> str:
    """Say Hello on the board's link ``port``; return the build id it reports, and raise
    :class:`FlashError` when it differs from ``image``'s."""
    from edgespike.device.client import Device

    with Device.open(port, timeout=timeout, connect_timeout=timeout) as dev:
        info = dev.hello()
    if image.build_id and info.build_id != image.build_id:
        raise FlashError(
            f"the board on {port} runs build {info.build_id or '(none reported)'}, not the image "
            f"just flashed ({image.build_id}): is {port} this board's link port, and does its "
            "firmware report a build id (DeviceInfo.build_id)?")
    return info.build_id


def verify_segments(image: FirmwareImage, read: Callable[[int, int], bytes]) -> None:
    """Read every segment back with ``read(address, length)`` and compare; raises
    :class:`FlashVerifyError` at the first byte that differs."""
    for seg in image.segments:
        try:
            got = read(seg.address, len(seg.data))
        except FlashVerifyError:
            raise
        except FlashError as exc:
            raise FlashError(f"verify: {exc}") from exc
        if got != seg.data:
            at = next((i for i, (a, b) in enumerate(zip(seg.data, got)) if a != b),
                      min(len(got), len(seg.data)))
            exp_b = seg.data[at] if at < len(seg.data) else -1
            got_b = got[at] if at < len(got) else -1
            raise FlashVerifyError(
                f"verify failed: byte {seg.address + at:#010x} reads {got_b:#04x}, the image "
                f"has {exp_b:#04x} ({image.path.name}, segment at {seg.address:#x}); the write "
                "did not take: flash again, and check the probe's wiring and the target's "
                "flash protection", seg.address + at, exp_b, got_b)


# ---- GDB remote protocol ---------------------------------------------------------------------
def _split(seg: Segment, regions: list[MemoryRegion]) -> list[tuple[Segment, Optional[MemoryRegion]]]:
    """A segment cut where it crosses into or out of flash regions: (part, flash region or
    None for plain memory)."""
    parts: list[tuple[Segment, Optional[MemoryRegion]]] = []
    pos = seg.address
    end = seg.end
    flash = sorted((r for r in regions if r.kind == "flash"), key=lambda r: r.start)
    while pos < end:
        region = next((r for r in flash if r.start <= pos < r.end), None)
        if region is not None:
            stop = min(end, region.end)
        else:
            stop = min([end] + [r.start for r in flash if r.start > pos])
        parts.append((Segment(pos, seg.data[pos - seg.address:stop - seg.address]), region))
        pos = stop
    return parts


def _erase_range(part: Segment, region: MemoryRegion) -> tuple[int, int]:
    """The whole erase blocks of ``region`` that cover ``part``: (start, length)."""
    block = region.blocksize or 1
    start = region.start + (part.address - region.start) // block * block
    stop = region.start + -(-(part.end - region.start) // block) * block
    return start, min(stop, region.end) - start


def _flash_gdb(image: FirmwareImage, address: str, server: str, verify: bool, run: bool,
               timeout: float, progress: Optional[ProgressFn]) -> FlashResult:
    if server != "auto" and server not in GDB_SERVERS:
        raise FlashError(f"unknown gdbserver kind {server!r}; choose one of "
                         f"{', '.join(GDB_SERVERS)} or 'auto'")
    with GdbRemote(address, timeout=timeout, connect_timeout=timeout) as gdb:
        regions = gdb.memory_map()
        if server == "auto":
            server = "openocd" if regions else "qemu"
        kind = GDB_SERVERS[server]
        result = FlashResult(firmware=str(image.path), method="gdb", target=address,
                             server=server, segments=len(image.segments),
                             bytes_written=image.size, build_id=image.build_id)
        log.info("flashing %s (%d bytes in %d segments) through %s at %s", image.path,
                 image.size, len(image.segments), kind.what, address)
        if regions:  # a real target: start from a clean halted state, as 'load' expects
            gdb.monitor(kind.reset)
        t0 = time.perf_counter()
        done = 0
        flash_parts = []
        for seg in image.segments:
            for part, region in _split(seg, regions):
                if region is None:
                    gdb.write_memory(part.address, part.data)
                    done += len(part.data)
                    if progress:
                        progress(done, image.size)
                else:
                    flash_parts.append((part, region))
        if flash_parts:
            for start, length in sorted({_erase_range(p, r) for p, r in flash_parts}):
                gdb.flash_erase(start, length)
            for part, _ in flash_parts:
                gdb.flash_write(part.address, part.data)
                done += len(part.data)
                if progress:
                    progress(done, image.size)
            gdb.flash_done()
        result.flash_regions = len(flash_parts)
        result.write_s = time.perf_counter() - t0
        if verify:
            t1 = time.perf_counter()
            verify_segments(image, gdb.read_memory)
            result.verify_s = time.perf_counter() - t1
            result.verified = True
        if run:
            gdb.monitor(kind.reset)
            gdb.cont()
            result.running = True
        result.retransmits = gdb.retransmits
    return result


# ---- pyOCD --------------------------------------------------------------------------------------
def _pyocd():
    try:
        from pyocd.core.helpers import ConnectHelper
        from pyocd.flash.loader import MemoryLoader
    except ImportError as exc:
        raise ToolMissing("flashing through a debug probe needs pyOCD: pip install "
                          "'edgespike[pyocd]' (or flash through a gdbserver with --gdb "
                          "HOST:PORT)") from exc
    return ConnectHelper, MemoryLoader


def list_probes() -> list[dict[str, str]]:
    """The debug probes pyOCD sees: unique id, vendor and product, description."""
    helper, _ = _pyocd()
    return [{"unique_id": p.unique_id, "vendor": getattr(p, "vendor_name", ""),
             "product": getattr(p, "product_name", ""), "description": p.description}
            for p in helper.get_all_connected_probes(blocking=False, print_wait_message=False)]


def _flash_pyocd(image: FirmwareImage, probe: str, target: Optional[str], verify: bool,
                 run: bool, progress: Optional[ProgressFn]) -> FlashResult:
    helper, loader_cls = _pyocd()
    probes = helper.get_all_connected_probes(blocking=False, print_wait_message=False)
    ids = [p.unique_id for p in probes]
    if not probes:
        raise ProbeNotFound(
            "no debug probe found: pyOCD sees no CMSIS-DAP, ST-Link or J-Link probe on USB. "
            "Connect the board's probe (and check its USB permissions: pyOCD's udev rules), or "
            "flash through a running gdbserver with --gdb HOST:PORT")
    if probe == "auto":
        if len(probes) > 1:
            raise ProbeNotFound(f"{len(probes)} probes connected ({', '.join(ids)}): name one "
                                "with --probe UNIQUE_ID")
        probe = ids[0]
    elif probe not in ids:
        raise ProbeNotFound(f"probe {probe!r} is not connected; pyOCD sees: {', '.join(ids)}")
    options: dict[str, Any] = {}
    if target:
        options["target_override"] = target
    session = helper.session_with_chosen_probe(blocking=False, unique_id=probe, options=options)
    if session is None:
        raise ProbeNotFound(f"probe {probe} could not be opened (in use by another program?)")
    result = FlashResult(firmware=str(image.path), method="pyocd", target=probe,
                         server=target or "probe default", segments=len(image.segments),
                         bytes_written=image.size, build_id=image.build_id)
    try:
        with session:
            core = session.board.target
            core.reset_and_halt()
            t0 = time.perf_counter()
            loader = loader_cls(session, progress=(lambda f: progress(int(f * image.size),
                                                                      image.size))
                                if progress else None)
            for seg in image.segments:
                loader.add_data(seg.address, list(seg.data))
            loader.commit()
            result.flash_regions = len(image.segments)
            result.write_s = time.perf_counter() - t0
            if verify:
                t1 = time.perf_counter()
                verify_segments(image, lambda a, n: bytes(core.read_memory_block8(a, n)))
                result.verify_s = time.perf_counter() - t1
                result.verified = True
            if run:
                core.reset()
                result.running = True
    except (FlashError, ToolMissing):
        raise
    except Exception as exc:  # pyOCD's own errors: say which step and what to try
        raise FlashError(f"pyOCD could not flash {image.path.name} through probe {probe}: "
                         f"{type(exc).__name__}: {exc}; name the part with --target (pyocd "
                         "list --targets)") from exc
    return result
