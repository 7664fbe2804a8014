"""A small client of the GDB remote serial protocol (RSP), over TCP.

What a flasher needs from any gdbserver: QEMU's gdbstub (``qemu-system-arm -S -gdb tcp::PORT``),
OpenOCD (port 3333), pyOCD's gdbserver (3333), SEGGER's J-Link GDB Server (2331) and stlink's
st-util (4242). The wire format (GDB manual, appendix "Remote Protocol"):

- a packet is ``$payload#cs``, ``cs`` the two hex digits of the sum of the payload bytes mod 256;
  the receiver answers ``+`` (good) or ``-`` (bad checksum: send it again);
- binary data (``X``, ``vFlashWrite``) escapes ``#$}*`` as ``}`` then the byte XOR 0x20; replies
  may be run-length encoded (``c*n``: ``c`` repeated ``n - 29`` more times);
- ``m addr,len`` reads memory (hex reply), ``M addr,len:hex`` and ``X addr,len:bin`` write it,
  ``qRcmd,hex`` runs a monitor command (output in ``O`` packets), ``qXfer:memory-map:read``
  says where flash is, ``vFlashErase``/``vFlashWrite``/``vFlashDone`` program it, ``c``
  continues, ``D`` detaches; ``Exx`` is an error, an empty reply "not supported".

    with GdbRemote("127.0.0.1:1234") as gdb:
        gdb.write_memory(0x0, data)
        assert gdb.read_memory(0x0, len(data)) == data
"""
from __future__ import annotations

import logging
import re
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Optional

from edgespike.errors import DeviceTimeout, FlashError, LinkClosed

log = logging.getLogger(__name__)

#: Bytes a binary payload must escape.
_ESCAPE = frozenset(b"#$}*")
#: Packet size assumed when the server does not say (GDB's own default is 400 bytes).
DEFAULT_PACKET_SIZE = 400
#: Times a packet is sent again after a ``-`` before giving up.
RETRANSMITS = 5


def checksum(payload: bytes) -> int:
    """The RSP checksum: the sum of the bytes mod 256."""
    return sum(payload) & 0xFF


def frame(payload: bytes) -> bytes:
    """``$payload#cs`` (payload already escaped)."""
    return b"$" + payload + b"#" + b"%02x" % checksum(payload)


def escape(data: bytes) -> bytes:
    """Binary data as it travels in ``X`` and ``vFlashWrite`` packets."""
    out = bytearray()
    for b in data:
        if b in _ESCAPE:
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def decode(payload: bytes) -> bytes:
    """Undo escapes and run-length encoding of a received payload."""
    out = bytearray()
    i = 0
    while i < len(payload):
        b = payload[i]
        if b == 0x7D and i + 1 < len(payload):
            out.append(payload[i + 1] ^ 0x20)
            i += 2
        elif b == 0x2A and out and i + 1 < len(payload):
            out += bytes((out[-1],)) * (payload[i + 1] - 29)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``tcp:host:port``, ``:port`` or ``port`` as (host, port)."""
    text = address.strip()
    if text.startswith("tcp:"):
        text = text[4:]
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    try:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except ValueError:
        raise FlashError(f"gdbserver address {address!r}: expected HOST:PORT, e.g. "
                         "localhost:3333 (OpenOCD, pyOCD), :2331 (J-Link), :4242 (st-util)"
                         ) from None
    return host or "127.0.0.1", number


@dataclass(frozen=True)
class MemoryRegion:
    """One ``<memory>`` entry of the target's memory map (``qXfer:memory-map:read``)."""

    kind: str          # "ram", "rom" or "flash"
    start: int
    length: int
    blocksize: int = 0  # flash: erase unit in bytes

    @property
    def end(self) -> int:
        return self.start + self.length


class GdbRemote:
    """One connection to a gdbserver. Every wait has a deadline (``timeout`` seconds per
    answer); a closed socket raises :class:`LinkClosed`, silence :class:`DeviceTimeout`,
    an ``Exx`` answer :class:`FlashError` naming the request.

    Args:
        address: ``host:port`` of the gdbserver.
        timeout: seconds to wait for each answer.
        connect_timeout: seconds to keep retrying the connection (a server just started).
    """

    def __init__(self, address: str, *, timeout: float = 5.0,
                 connect_timeout: float = 5.0) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.sock: Optional[socket.socket] = None
        self._buf = bytearray()
        self.packet_size = DEFAULT_PACKET_SIZE
        self.features: dict[str, str] = {}
        self._binary_write: Optional[bool] = None  # X supported? (None: not probed yet)
        #: packets sent again after the server answered ``-`` (a checksum it did not accept)
        self.retransmits = 0

    # ---- connection ---------------------------------------------------------------------
    def connect(self) -> "GdbRemote":
        """Open the socket (retrying until ``connect_timeout``) and agree on features."""
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                self.sock = socket.create_connection((self.host, self.port),
                                                     timeout=max(0.1, self.timeout))
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise FlashError(
                        f"no gdbserver answers at {self.host}:{self.port} ({exc.strerror or exc});"
                        " start one (QEMU: -S -gdb tcp::PORT; OpenOCD; pyocd gdbserver; "
                        "JLinkGDBServer; st-util) or check the address") from exc
                time.sleep(0.05)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reply = self.request(b"qSupported:multiprocess-;swbreak+;hwbreak+;xmlRegisters=arm")
        for item in reply.decode(errors="replace").split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                self.features[key] = value
            elif item.endswith(("+", "-")):
                self.features[item[:-1]] = item[-1]
        if "PacketSize" in self.features:
            self.packet_size = max(64, int(self.features["PacketSize"], 16))
        self.request(b"?")  # the halt reason; every server answers it, and it must come first
        return self

    def close(self) -> None:
        """Close the socket (the target keeps whatever state it is in)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> "GdbRemote":
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- packets --------------------------------------------------------------------------
    def _recv_some(self, deadline: float) -> None:
        if self.sock is None:
            raise LinkClosed("not connected to the gdbserver")
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeviceTimeout(f"the gdbserver at {self.host}:{self.port} did not answer "
                                f"within {self.timeout:.1f} s")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise DeviceTimeout(f"the gdbserver at {self.host}:{self.port} did not answer "
                                f"within {self.timeout:.1f} s") from None
        except OSError as exc:
            raise LinkClosed(f"gdbserver connection failed: {exc}") from exc
        if not chunk:
            raise LinkClosed(f"the gdbserver at {self.host}:{self.port} closed the connection")
        self._buf += chunk

    def send(self, payload: bytes) -> None:
        """Send one packet (payload already escaped) and wait for its ``+``; sent again on
        ``-`` up to :data:`RETRANSMITS` times."""
        if self.sock is None:
            raise LinkClosed("not connected to the gdbserver")
        wire = frame(payload)
        for attempt in range(RETRANSMITS + 1):
            self.sock.sendall(wire)
            deadline = time.monotonic() + self.timeout
            while True:
                while self._buf and self._buf[0] not in b"+-$":
                    del self._buf[0]  # noise between packets
                if not self._buf:
                    self._recv_some(deadline)
                    continue
                if self._buf[0] == ord("+"):
                    del self._buf[0]
                    return
                if self._buf[0] == ord("-"):
                    del self._buf[0]
                    self.retransmits += 1
                    log.debug("gdbserver: checksum refused, sending %r again", payload[:16])
                    break
                return  # a packet started: the server acknowledged implicitly (no-ack mode)
        raise FlashError(f"the gdbserver refused the packet {payload[:24]!r}... "
                         f"{RETRANSMITS + 1} times (checksum errors on the connection)")

    def receive(self) -> bytes:
        """The next packet's decoded payload; a bad checksum is answered ``-`` and the
        server's retransmission read instead."""
        deadline = time.monotonic() + self.timeout
        while True:
            start = self._buf.find(b"$")
            if start < 0:
                self._buf.clear()
                self._recv_some(deadline)
                continue
            end = self._buf.find(b"#", start)
            if end < 0 or len(self._buf) < end + 3:
                self._recv_some(deadline)
                continue
            raw = bytes(self._buf[start + 1:end])
            cs = bytes(self._buf[end + 1:end + 3])
            del self._buf[:end + 3]
            try:
                good = int(cs, 16) == checksum(raw)
            except ValueError:
                good = False
            assert self.sock is not None
            if not good:
                self.sock.sendall(b"-")
                deadline = time.monotonic() + self.timeout
                continue
            self.sock.sendall(b"+")
            return decode(raw)

    def request(self, payload: bytes) -> bytes:
        """Send a packet and return the answer (console ``O`` packets are logged and skipped,
        except for ``qRcmd``, see :meth:`monitor`)."""
        self.send(payload)
        while True:
            reply = self.receive()
            if reply.startswith(b"O") and reply != b"OK" and _is_hex(reply[1:]):
                log.info("gdbserver: %s", bytes.fromhex(reply[1:].decode()).decode(
                    errors="replace").rstrip())
                continue
            return reply

    def _check(self, reply: bytes, what: str) -> bytes:
        if re.fullmatch(rb"E[0-9a-fA-F]{2}", reply) or reply.startswith(b"E."):
            raise FlashError(f"the gdbserver refused to {what}: {reply.decode(errors='replace')}"
                             " (is the address in the target's memory, and the target halted?)")
        return reply

    # ---- memory ---------------------------------------------------------------------------
    def _chunk(self, overhead: int = 32) -> int:
        """Data bytes that fit one hex-encoded packet (each byte: two characters)."""
        return max(16, (self.packet_size - overhead) // 2)

    def read_memory(self, address: int, length: int) -> bytes:
        """``length`` bytes from ``address`` (``m`` packets, split to fit the packet size)."""
        out = bytearray()
        while len(out) < length:
            n = min(self._chunk(), length - len(out))
            at = address + len(out)
            reply = self._check(self.request(b"m%x,%x" % (at, n)), f"read {n} bytes at {at:#x}")
            if not reply or not _is_hex(reply) or len(reply) % 2:
                raise FlashError(f"the gdbserver answered a read at {at:#x} with {reply[:40]!r}")
            out += bytes.fromhex(reply.decode())
        return bytes(out[:length])

    def write_memory(self, address: int, data: bytes) -> None:
        """Write ``data`` at ``address``: binary ``X`` packets where the server takes them
        (probed once with an empty ``X``, as GDB does), else hex ``M`` packets."""
        if self._binary_write is None:
            reply = self.request(b"X%x,0:" % address)
            self._binary_write = reply == b"OK"
        pos = 0
        while pos < len(data):
            at = address + pos
            if self._binary_write:
                body, n = self._fit_binary(data, pos, self.packet_size - 32)
                reply = self.request(b"X%x,%x:" % (at, n) + body)
            else:
                n = min(self._chunk(), len(data) - pos)
                reply = self.request(b"M%x,%x:" % (at, n) + data[pos:pos + n].hex().encode())
            if reply != b"OK":
                self._check(reply, f"write {n} bytes at {at:#x}")
                raise FlashError(f"the gdbserver answered a write at {at:#x} with {reply[:40]!r}")
            pos += n

    @staticmethod
    def _fit_binary(data: bytes, pos: int, budget: int) -> tuple[bytes, int]:
        """The escaped bytes of data[pos:] that fit ``budget`` bytes on the wire, and how many
        data bytes they carry."""
        out = bytearray()
        n = 0
        for b in data[pos:]:
            piece = bytes((0x7D, b ^ 0x20)) if b in _ESCAPE else bytes((b,))
            if len(out) + len(piece) > budget:
                break
            out += piece
            n += 1
        return bytes(out), n

    # ---- flash (servers with a memory map: OpenOCD, pyOCD, st-util, J-Link) ------------------
    def memory_map(self) -> list[MemoryRegion]:
        """The target's memory map, or [] when the server offers none (QEMU: every address
        is written with plain memory writes)."""
        if self.features.get("qXfer:memory-map:read") != "+":
            return []
        xml, offset = b"", 0
        while True:
            reply = self._check(self.request(b"qXfer:memory-map:read::%x,%x" % (
                offset, self._chunk())), "read the memory map")
            if not reply or reply[:1] not in b"ml":
                return []
            xml += reply[1:]
            offset += len(reply) - 1
            if reply[:1] == b"l":
                break
        regions = []
        for mem in ET.fromstring(xml.decode(errors="replace")).iter("memory"):
            block = 0
            for prop in mem.iter("property"):
                if prop.get("name") == "blocksize":
                    block = int((prop.text or "0").strip(), 0)
            regions.append(MemoryRegion(mem.get("type", "ram"), int(mem.get("start", "0"), 0),
                                        int(mem.get("length", "0"), 0), block))
        return regions

    def flash_erase(self, address: int, length: int) -> None:
        """``vFlashErase``: whole erase blocks from ``address`` (aligned by the caller)."""
        reply = self.request(b"vFlashErase:%x,%x" % (address, length))
        if reply != b"OK":
            self._check(reply, f"erase flash {address:#x}..{address + length:#x}")
            raise FlashError(f"vFlashErase at {address:#x} answered {reply[:40]!r}")

    def flash_write(self, address: int, data: bytes) -> None:
        """``vFlashWrite`` packets (binary); programmed for good at :meth:`flash_done`."""
        pos = 0
        while pos < len(data):
            at = address + pos
            head = b"vFlashWrite:%x:" % at
            body, n = self._fit_binary(data, pos, self.packet_size - 32 - len(head))
            reply = self.request(head + body)
            if reply != b"OK":
                self._check(reply, f"write flash at {at:#x}")
                raise FlashError(f"vFlashWrite at {at:#x} answered {reply[:40]!r}")
            pos += n

    def flash_done(self) -> None:
        """``vFlashDone``: the server programs what the vFlashWrite packets gave it."""
        reply = self.request(b"vFlashDone")
        if reply != b"OK":
            self._check(reply, "finish programming flash")
            raise FlashError(f"vFlashDone answered {reply[:40]!r}")

    # ---- control ----------------------------------------------------------------------------
    def monitor(self, command: str) -> str:
        """Run a monitor command (``qRcmd``, GDB's ``monitor ...``); returns its output.
        Raises :class:`FlashError` when the server has no monitor or refuses the command."""
        self.send(b"qRcmd," + command.encode().hex().encode())
        text = []
        while True:
            reply = self.receive()
            if reply.startswith(b"O") and reply != b"OK" and _is_hex(reply[1:]):
                text.append(bytes.fromhex(reply[1:].decode()).decode(errors="replace"))
                continue
            break
        if reply == b"":
            raise FlashError(f"the gdbserver has no monitor commands (monitor {command!r} "
                             "unsupported); choose the server it is with --server")
        self._check(reply, f"run 'monitor {command}'")
        if reply != b"OK" and _is_hex(reply):  # some servers answer the output itself in hex
            text.append(bytes.fromhex(reply.decode()).decode(errors="replace"))
        return "".join(text)

    def write_register(self, number: int, value: int) -> None:
        """``P n=value`` (32-bit little-endian): r13 is SP, r15 PC, 25 the xPSR on Cortex-M."""
        reply = self.request(b"P%x=%s" % (number, value.to_bytes(4, "little").hex().encode()))
        if reply != b"OK":
            self._check(reply, f"write register {number}")
            raise FlashError(f"the gdbserver cannot write register {number} ({reply[:40]!r})")

    def cont(self) -> None:
        """Resume the target (``c``); the stop reply that comes when it halts is not awaited."""
        self.send(b"c")

    def detach(self) -> None:
        """``D``: end the debug session; the target runs on."""
        reply = self.request(b"D")
        if reply not in (b"OK", b""):
            self._check(reply, "detach")


def _is_hex(data: bytes) -> bool:
    return bool(data) and all(c in b"0123456789abcdefABCDEF" for c in data)
