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
            raise FramingError("COBS: unexpected 0x00 inside a frame")
        end = i + code
        if end > n:
            raise FramingError("COBS: block runs past the end of the frame (truncated)")
        block = data[i + 1 : end]
        if 0 in block:
            raise FramingError("COBS: 0x00 inside a block")
        out += block
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    """Wrap a serialized message into a wire frame, delimiter included."""
    return cobs_encode(payload + struct.pack("<I", crc32(payload))) + b"\x00"


def decode_frame(frame: bytes) -> bytes:
    """Check and unwrap one frame (with or without its trailing 0x00); returns the payload."""
    if frame.endswith(b"\x00"):
        frame = frame[:-1]
    raw = cobs_decode(frame)
    if len(raw) < 4:
        raise FramingError(f"frame of {len(raw)} bytes is shorter than its CRC (truncated)")
    payload, crc = raw[:-4], struct.unpack("<I", raw[-4:])[0]
    if crc32(payload) != crc:
        raise FramingError(f"CRC mismatch: frame says {crc:08x}, payload gives {crc32(payload):08x}")
    return payload


class FrameDecoder:
    """Incremental splitter: feed bytes as they arrive, get complete payloads out."""

    def __init__(self, max_frame: int = MAX_PAYLOAD_BYTES + 4 + MAX_PAYLOAD_BYTES // 254 + 2):
        self._buf = bytearray()
        self._max = max_frame
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes | FramingError]:
        """Return, in order, the payloads completed by ``data``, or the error of each bad frame."""
        out: list[bytes | FramingError] = []
        start = 0
        while True:
            idx = data.find(b"\x00", start)
            if idx < 0:
                self._buf += data[start:]
                if len(self._buf) > self._max:
                    self._buf.clear()
                    self.dropped += 1
                    out.append(FramingError("frame longer than the host's buffer; dropped"))
                break
            self._buf += data[start:idx]
            start = idx + 1
            if self._buf:
                try:
                    out.append(decode_frame(bytes(self._buf)))
                except FramingError as exc:
                    out.append(exc)
                self._buf.clear()
        return out
