"""Mutated model blobs, and the verdicts of the C parser and the Python loader on them.

Used by tests/test_blob_agreement.py (mutants of SDK-built blobs) and tests/test_fuzz.py (the
libFuzzer corpora). The rule both sides must follow is in docs/SEMANTICS.md, "Which blobs are
accepted": the same blob is accepted by both or refused by both. One allowance: a blob the SDK
reads but that exceeds the device's compile-time capacity (more than ES_MAX_LAYERS layers, a
layer or input wider than ES_MAX_LAYER_SIZE) is refused by the C parser with
ERR_MODEL_TOO_LARGE, which is a property of the target, not of the blob.
"""
from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import numpy as np

from edgespike.errors import BlobError
from edgespike.model import EncoderSpec, Layer, Model, Neurons, Weights, from_bytes, to_bytes
from edgespike.model.blob import HASH_TAG
from edgespike.protocol import crc32, pb
from edgespike.sim.core import library

ES_OK = 0
ES_ERR_MODEL_TOO_LARGE = 7
ES_MAX_LAYERS = 8          # firmware/core/es_engine.h defaults, as the host library is built
ES_MAX_LAYER_SIZE = 4096


def rehash(body: bytes) -> bytes:
    """``body`` with the content hash field appended, so that the CRC passes."""
    return bytes(body) + HASH_TAG + struct.pack("<I", crc32(bytes(body)))


def c_status(blob: bytes) -> int:
    """es_model_parse's status on ``blob`` (through the host library's es_blob_info)."""
    info = (ctypes.c_uint32 * 32)()
    return int(library().es_blob_info(bytes(blob), len(blob), info, 32))


def py_verdict(blob: bytes) -> tuple[Optional[Model], Optional[BlobError]]:
    """(model, None) if the SDK loads ``blob``, (None, error) if it refuses it with a named
    BlobError. Anything else (a bare ValueError, IndexError...) propagates: a test failure."""
    try:
        return from_bytes(blob), None
    except BlobError as exc:
        return None, exc


def exceeds_device(model: Model) -> bool:
    """Whether the model is over the host library's compile-time capacity."""
    return (len(model.layers) > ES_MAX_LAYERS or model.input_size > ES_MAX_LAYER_SIZE
            or any(layer.size > ES_MAX_LAYER_SIZE for layer in model.layers))


def disagreement(blob: bytes) -> Optional[str]:
    """None when both sides give the same verdict on ``blob``, else what differs."""
    status = c_status(blob)
    model, exc = py_verdict(blob)
    if model is not None:
        want = ES_ERR_MODEL_TOO_LARGE if exceeds_device(model) else ES_OK
        if status != want:
            return f"Python accepts, C answers status {status} (expected {want})"
        return None
    if status == ES_OK:
        return f"C accepts, Python refuses: {type(exc).__name__}: {exc}"
    return None


# ---- A lenient protobuf tree, to mutate blobs field by field -------------------------------

def varint(n: int) -> bytes:
    """Unsigned varint of n (n < 2^64; negative n as its 64-bit two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


@dataclass
class Field:
    """One field occurrence: value is an int (varint), bytes (fixed, length-delimited), or a
    list of Field (a known sub-message)."""

    number: int
    wt: int
    value: Union[int, bytes, list]
    desc: object = None  # descriptor of the sub-message, for list values


def parse_tree(buf: bytes, desc=pb.Model.DESCRIPTOR) -> list[Field]:
    """Split a well-formed message into fields, recursing into known sub-messages."""
    out: list[Field] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        number, wt = tag >> 3, tag & 7
        if wt == 0:
            value, pos = _read_varint(buf, pos)
            out.append(Field(number, wt, value))
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            out.append(Field(number, wt, buf[pos:pos + size]))
            pos += size
        elif wt == 2:
            n, pos = _read_varint(buf, pos)
            data = buf[pos:pos + n]
            pos += n
            fd = desc.fields_by_number.get(number)
            if fd is not None and fd.message_type is not None:
                out.append(Field(number, wt, parse_tree(data, fd.message_type), fd.message_type))
            else:
                out.append(Field(number, wt, data))
        else:
            raise ValueError(f"wire type {wt}")
    return out


def serialize(tree: list[Field]) -> bytes:
    out = bytearray()
    for f in tree:
        out += varint((f.number << 3) | f.wt)
        if isinstance(f.value, int):
            out += varint(f.value)
        elif isinstance(f.value, list):
            data = serialize(f.value)
            out += varint(len(data)) + data
        elif f.wt == 2:
            out += varint(len(f.value)) + f.value
        else:
            out += f.value
    return bytes(out)


def _locations(tree: list[Field], path: tuple = ()) -> Iterator[tuple[tuple, Field]]:
    for i, f in enumerate(tree):
        yield path + (i,), f
        if isinstance(f.value, list):
            yield from _locations(f.value, path + (i,))


def _copy(tree: list[Field]) -> list[Field]:
    return [Field(f.number, f.wt, _copy(f.value) if isinstance(f.value, list) else f.value, f.desc)
            for f in tree]


def _at(tree: list[Field], path: tuple) -> tuple[list[Field], int]:
    for i in path[:-1]:
        tree = tree[i].value
    return tree, path[-1]


BAD_UTF8 = (b"\xff", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"ab\xe2\x82", b"\x80")
GOOD_TEXT = (b"", b"\x00", "\U0010ffff".encode(), "na\u00efve \u2713".encode())
BIG_VARINTS = (2, 3, 4, 7, 8, 99, 255, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63), (1 << 64) - 1, -1)


def structured_mutants(body: bytes) -> Iterator[tuple[str, bytes]]:
    """Deterministic edits of every field of a valid blob body (hash excluded): unknown enum
    and out-of-range values, every other wire type, odd-length arrays, bad UTF-8, overlong
    tags and lengths, groups, unknown fields, duplicated and dropped fields."""
    tree = parse_tree(body)
    locations = list(_locations(tree))
    for path, f in locations:
        name = f"field {f.number} at {path}"

        def edit(fn, what: str):
            t = _copy(tree)
            parent, i = _at(t, path)
            fn(parent, i)
            return f"{name}: {what}", serialize(t)

        if isinstance(f.value, int):
            for v in BIG_VARINTS:
                yield edit(lambda p, i, v=v: setattr(p[i], "value", v), f"value {v}")
        if isinstance(f.value, bytes) and f.wt == 2:
            data = f.value
            for what, new in (("one byte short", data[:-1]), ("one byte more", data + b"\x01"),
                              ("empty", b""), ("doubled", data + data)):
                yield edit(lambda p, i, new=new: setattr(p[i], "value", new), what)
            for bad in BAD_UTF8 + GOOD_TEXT:
                yield edit(lambda p, i, bad=bad: setattr(p[i], "value", bad), f"text {bad!r}")
        # every other wire type, with a payload of that type
        for wt, payload in ((0, 1), (1, b"\x01" * 8), (2, b"\x08\x01"), (5, b"\x01\x00\x00\x00")):
            if wt != f.wt:
                yield edit(lambda p, i, wt=wt, payload=payload: p.__setitem__(
                    i, Field(p[i].number, wt, payload)), f"wire type {wt}")
        yield edit(lambda p, i: p.__delitem__(i), "dropped")
        yield edit(lambda p, i: p.insert(i, _copy([p[i]])[0]), "duplicated")
        # groups around it, and an unknown field of each wire type before it
        yield edit(lambda p, i: p.insert(i, Field(p[i].number, 3, b"")), "start group")
        for wt, payload in ((0, 5), (1, b"\x00" * 8), (2, b"xyz"), (5, b"\x00" * 4)):
            yield edit(lambda p, i, wt=wt, payload=payload: p.insert(i, Field(200, wt, payload)),
                       f"unknown field wire type {wt}")
    # byte-level: overlong tags and lengths, long unknown varints, stray groups
    raw_tree = tree
    for path, f in locations[:40]:
        for pad in (1, 4, 5, 9):
            t = _copy(raw_tree)
            parent, i = _at(t, path)
            head = serialize(parent[:i])
            one = serialize([parent[i]])
            tag, after = _read_varint(one, 0)
            padded = bytearray(varint(tag))
            padded[-1] |= 0x80
            padded += b"\x80" * (pad - 1) + b"\x00"
            parent_bytes = head + bytes(padded) + one[after:] + serialize(parent[i + 1:])
            yield f"field {f.number} at {path}: tag padded by {pad}", _splice(t, path[:-1], parent_bytes)
            if f.wt == 2:
                n, after_len = _read_varint(one, after)
                longlen = bytearray(varint(n))
                longlen[-1] |= 0x80
                longlen += b"\x80" * (pad - 1) + b"\x00"
                body2 = head + one[:after] + bytes(longlen) + one[after_len:] + serialize(parent[i + 1:])
                yield (f"field {f.number} at {path}: length padded by {pad}",
                       _splice(_copy(raw_tree), path[:-1], body2))
    for n in (10, 11, 12, 20):
        yield f"unknown varint of {n} bytes", body + varint(200 << 3) + b"\x80" * (n - 1) + b"\x00"
    yield "10-byte varint ending in 2", body + varint(200 << 3) + b"\xff" * 9 + b"\x02"
    for wt in (3, 4, 6, 7):
        yield f"top-level wire type {wt}", body + varint((200 << 3) | wt) + b"\x00"
    yield "hash field in the middle", varint((1000 << 3) | 5) + b"\x00" * 4 + body
    yield "field number 0", body + b"\x00\x00"
    yield "tag above 2^32", body + b"\xf8\xff\xff\xff\x1f\x00"
    for kinds in ((99, 1), (1, 99), (-1, 0), (0, -1)):
        encs = [b"\x08" + varint(k) for k in kinds]
        yield (f"encoder twice, kinds {kinds}",
               body + b"".join(varint((10 << 3) | 2) + varint(len(e)) + e for e in encs))


def _splice(tree: list[Field], parent_path: tuple, parent_bytes: bytes) -> bytes:
    """The blob body with the message at parent_path replaced by raw parent_bytes."""
    if not parent_path:
        return parent_bytes
    t = _copy(tree)
    holder, i = _at(t, parent_path)
    holder[i] = Field(holder[i].number, 2, parent_bytes)
    return serialize(t)


def random_mutants(body: bytes, rng: np.random.Generator, count: int) -> Iterator[tuple[str, bytes]]:
    """Random byte edits of a blob body: bit flips, overwrites, truncations, insertions,
    deletions, duplicated ranges."""
    n = len(body)
    for _ in range(count):
        b = bytearray(body)
        op = int(rng.integers(0, 6))
        pos = int(rng.integers(0, n))
        if op == 0:
            for _ in range(int(rng.integers(1, 4))):
                p = int(rng.integers(0, n))
                b[p] ^= 1 << int(rng.integers(0, 8))
            what = "bit flips"
        elif op == 1:
            b[pos] = int(rng.integers(0, 256))
            what = f"byte {pos} overwritten"
        elif op == 2:
            b = b[:pos]
            what = f"truncated at {pos}"
        elif op == 3:
            b[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 6))).astype(np.uint8).tobytes()
            what = f"bytes inserted at {pos}"
        elif op == 4:
            del b[pos:pos + int(rng.integers(1, 8))]
            what = f"bytes deleted at {pos}"
        else:
            end = min(n, pos + int(rng.integers(1, 24)))
            b[pos:pos] = b[pos:end]
            what = f"range {pos}:{end} duplicated"
        yield what, bytes(b)


# ---- Valid models that reach every field the parser reads ---------------------------------

def seed_models() -> list[Model]:
    """A handful of valid models: int8 and ternary (scalar and per-neuron magnitudes),
    recurrent, per-neuron thresholds and biases, direct input, every decoding, an encoder
    with thresholds and parameters, labels and streaming fields."""
    rng = np.random.default_rng(12)
    m1 = Model(input_size=4, timesteps=3, name="spikes", labels=["a", "b"],
               layers=[Layer(Weights(rng.integers(-9, 9, (4, 3)).astype(np.int8)),
                             Neurons(vth=rng.integers(1, 90, 3), bias_mant=rng.integers(-9, 9, 3))),
                       Layer(Weights(rng.integers(-1, 2, (3, 2)).astype(np.int8), encoding="ternary",
                                     a_pos=rng.integers(1, 9, 2), a_neg=3),
                             Neurons(reset="subtract", refractory=1, adapt_step=2, adapt_decay=9),
                             recurrent=Weights(rng.integers(-5, 5, (2, 2)).astype(np.int8)))])
    m2 = Model(input_size=3, timesteps=2, input_kind="values", input_max_abs=300,
               decoding="membrane_sum", name="values", dt_us=500, stream_window=2, stream_hop=1,
               encoder=EncoderSpec(kind="delta", channels=3, thresholds=[4, -2, 7],
                                   params_json='{"hop": 1}'),
               layers=[Layer(Weights(rng.integers(-5, 5, (3, 2)).astype(np.int8), exp=-3),
                             Neurons(du=100, dv=200, vth=5, bias_mant=-3, bias_exp=2))])
    m3 = Model(input_size=2, timesteps=1, decoding="first_spike", name="",
               layers=[Layer(Weights(rng.integers(-1, 2, (2, 5)).astype(np.int8), encoding="ternary",
                                     a_pos=200, a_neg=rng.integers(1, 255, 5)))])
    m4 = Model(input_size=1, timesteps=4, decoding="membrane_last", name="deep",
               layers=[Layer(Weights(np.full((1, 1), 3, np.int8))) for _ in range(3)])
    return [m1, m2, m3, m4]


def seed_bodies() -> list[bytes]:
    """Blob bodies (hash stripped) of seed_models()."""
    return [to_bytes(m)[:-6] for m in seed_models()]
