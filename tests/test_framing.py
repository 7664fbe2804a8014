"""COBS, CRC-32 and the incremental frame decoder (protocol/FRAMING.md)."""
from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from edgespike.errors import FramingError
from edgespike.protocol.framing import (
    BadCrc, BadFrame, FrameDecoder, FrameTooLong, cobs_decode, cobs_encode, crc32, decode_frame,
    encode_frame,
)


@given(st.binary(max_size=1200))
@settings(max_examples=300, deadline=None)
def test_cobs_round_trip_has_no_zero(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data
    # overhead: one code byte per started 254-byte block
    assert len(enc) <= len(data) + len(data) // 254 + 1


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00" * 300, bytes(range(1, 255)),
                                  bytes(range(1, 256)), b"\x01" * 254 + b"\x00",
                                  b"\x00" + b"\x07" * 254, b"\x05" * 508, b"\x05" * 509])
def test_cobs_edge_cases(data):
    assert cobs_decode(cobs_encode(data)) == data


def test_cobs_known_encodings():
    assert cobs_encode(b"") == b"\x01"
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    run = bytes(range(1, 255))
    assert cobs_encode(run) == b"\xff" + run + b"\x01"
    # the shorter form some encoders emit for a final full block decodes the same
    assert cobs_decode(b"\xff" + run) == run


def test_crc32_is_ieee():
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0
    assert crc32(b"hello") == zlib.crc32(b"hello")


@given(st.binary(max_size=600))
@settings(max_examples=200, deadline=None)
def test_frame_round_trip(payload):
    wire = encode_frame(payload)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert decode_frame(wire) == payload
    assert decode_frame(wire[:-1]) == payload


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8), st.data())
@settings(max_examples=150, deadline=None)
def test_decoder_any_chunking(payloads, data):
    stream = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    dec = FrameDecoder()
    got = []
    prev = 0
    for c in cuts + [len(stream)]:
        got += dec.feed(stream[prev:c])
        prev = c
    assert got == payloads
    assert dec.pending == 0


def test_decoder_skips_empty_frames_and_resyncs():
    dec = FrameDecoder()
    out = dec.feed(b"\x00\x00" + encode_frame(b"ab") + b"\x00" + encode_frame(b"cd"))
    assert out == [b"ab", b"cd"]


def test_bad_crc_detected():
    payload = b"\x08\x01\x12\x02\x08\x01"
    raw = bytearray(payload + struct.pack("<I", crc32(payload)))
    raw[2] ^= 0x40
    with pytest.raises(BadCrc) as info:
        decode_frame(cobs_encode(bytes(raw)))
    assert info.value.code == "ERR_BAD_CRC"
    assert isinstance(info.value, FramingError)


@pytest.mark.parametrize("wire", [b"\x02\xaa", b"\x04\x01\x02\x03", b"\xff\x01\x02", b"", b"\x01",
                                  b"\x05\x01\x02"])
def test_truncated_or_short_frames(wire):
    with pytest.raises(BadFrame) as info:
        decode_frame(wire)
    assert info.value.code == "ERR_BAD_FRAME"


def test_truncated_frame_in_stream_does_not_eat_the_next():
    good = encode_frame(b"hello world")
    cut = good[:-4] + b"\x00"  # loses the last bytes of its CRC block
    dec = FrameDecoder()
    out = dec.feed(cut + good)
    assert isinstance(out[0], FramingError)
    assert out[1] == b"hello world"


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_garbage_never_crashes(junk):
    dec = FrameDecoder(max_frame=128)
    for item in dec.feed(junk):
        assert isinstance(item, (bytes, FramingError))
    # after garbage and a delimiter the stream recovers
    assert dec.feed(b"\x00" + encode_frame(b"ok"))[-1] == b"ok"


def test_too_long_frame_dropped_up_to_next_delimiter():
    dec = FrameDecoder(max_frame=64)
    out = dec.feed(b"\x05" * 100)
    assert len(out) == 1 and isinstance(out[0], FrameTooLong)
    out = dec.feed(b"\x05" * 100 + b"\x00" + encode_frame(b"next"))
    assert out == [b"next"]  # the tail of the long frame is discarded, not decoded
    assert dec.dropped == 1
