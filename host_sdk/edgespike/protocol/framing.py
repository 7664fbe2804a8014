"""Byte framing of the link (protocol/FRAMING.md): COBS, a 0x00 delimiter and CRC-32.

A frame on the wire is ``COBS(payload || crc32_le(payload)) || 0x00`` where ``payload`` is one
serialized ``Frame`` message.
"""
from __future__ import annotations

import struct
import zlib

from edgespike.errors import FramingError

#: Largest decoded payload (protobuf bytes, without the CRC) the host will accept.
MAX_PAYLOAD_BYTES = 65536
#: Largest frame on the wire for that payload: CRC, COBS overhead (1 per 254) and the 0x00.
MAX_WIRE_BYTES = MAX_PAYLOAD_BYTES + 4 + (MAX_PAYLOAD_BYTES + 4) // 254 + 2


class BadFrame(FramingError):
    """COBS error, or a frame shorter than its CRC (the device's ERR_BAD_FRAME)."""

    code = "ERR_BAD_FRAME"


class BadCrc(FramingError):
    """The frame's CRC-32 does not match its payload (the device's ERR_BAD_CRC)."""

    code = "ERR_BAD_CRC"


class FrameTooLong(FramingError):
    """More bytes than the receiver's buffer before a 0x00 (the device's ERR_FRAME_TOO_LONG)."""

    code = "ERR_FRAME_TOO_LONG"


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as zlib) of ``data``."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result has no 0x00 byte."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; raises :class:`FramingError` on malformed input."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise BadFrame("COBS: unexpected 0x00 inside a frame")
        end = i + code
        if end > n:
            raise BadFrame("COBS: block runs past the end of the frame (truncated)")
        block = data[i + 1 : end]
        if 0 in block:
            raise BadFrame("COBS: 0x00 inside a block")
        out += block
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    """Wrap a serialized message into a wire frame, delimiter included."""
    return cobs_encode(payload + struct.pack("<I", crc32(payload))) + b"\x00"


def decode_frame(frame: bytes) -> bytes:
    """Check and unwrap one frame (with or without its trailing 0x00); returns the payload.

    Raises :class:`BadFrame` (COBS error, empty or shorter than the CRC) or :class:`BadCrc`.
    """
    if frame.endswith(b"\x00"):
        frame = frame[:-1]
    if not frame:
        raise BadFrame("empty frame")
    raw = cobs_decode(frame)
    if len(raw) < 4:
        raise BadFrame(f"frame of {len(raw)} bytes is shorter than its CRC (truncated)")
    payload, crc = raw[:-4], struct.unpack("<I", raw[-4:])[0]
    if crc32(payload) != crc:
        raise BadCrc(f"CRC mismatch: frame says {crc:08x}, payload gives {crc32(payload):08x}")
    return payload


class FrameDecoder:
    """Incremental splitter: feed bytes as they arrive, get complete payloads out.

    A frame that grows past ``max_frame`` wire bytes before its 0x00 is dropped, and every byte
    up to the next 0x00 is discarded with it (one :class:`FramingError` per dropped frame), so a
    lost delimiter costs one frame, not the stream.
    """

    def __init__(self, max_frame: int = MAX_WIRE_BYTES):
        self._buf = bytearray()
        self._max = max_frame
        self._discarding = False
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Bytes buffered of a frame not yet complete, in bytes."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (e.g. after reconnecting)."""
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | FramingError]:
        """Return, in order, the payloads completed by ``data``, or the error of each bad frame."""
        out: list[bytes | FramingError] = []
        start = 0
        while start <= len(data):
            idx = data.find(b"\x00", start)
            chunk = data[start:] if idx < 0 else data[start:idx]
            if not self._discarding:
                self._buf += chunk
                if len(self._buf) > self._max:
                    self._buf.clear()
                    self._discarding = True
                    self.dropped += 1
                    out.append(FrameTooLong(
                        f"frame longer than the host's buffer ({self._max} bytes); dropped"))
            if idx < 0:
                break
            start = idx + 1
            if self._discarding:
                self._discarding = False
            elif self._buf:
                try:
                    out.append(decode_frame(bytes(self._buf)))
                except FramingError as exc:
                    out.append(exc)
                self._buf.clear()
        return out
