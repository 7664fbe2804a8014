"""The host side of protocol/: the generated protobuf classes and the byte framing."""
from edgespike.protocol.schema import pb, proto_path
from edgespike.protocol.framing import (
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    crc32,
    decode_frame,
    encode_frame,
)

__all__ = [
    "pb",
    "proto_path",
    "FrameDecoder",
    "cobs_decode",
    "cobs_encode",
    "crc32",
    "decode_frame",
    "encode_frame",
]
