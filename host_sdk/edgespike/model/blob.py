"""The model blob: :class:`~edgespike.model.quantized.Model` to and from protobuf bytes.

Layout and hash are in docs/SEMANTICS.md ("Content hash"): the serialized ``Model`` message
with ``content_crc32`` (field 1000) last, holding the CRC-32 of every byte before it.

Reading follows "Which blobs are accepted" in the same file, the rule set the firmware's parser
(firmware/core/es_model.c) applies too, so that the SDK and a device give the same verdict on
every blob: the hash, then the protobuf wire grammar (:func:`check_wire`), then every enum
value, array length, size and range.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from edgespike.errors import BlobError, ModelFormatError
from edgespike.model.quantized import VTH_MAX, EncoderSpec, Layer, Model, Neurons, Weights
from edgespike.protocol import crc32, pb

FORMAT_VERSION = 1
#: Tag of field 1000, wire type fixed32, as a varint.
HASH_TAG = b"\xc5\x3e"

_ENCODINGS = {"int8": "WEIGHTS_INT8", "ternary": "WEIGHTS_TERNARY2"}
_RESETS = {"zero": "RESET_ZERO", "subtract": "RESET_SUBTRACT"}
_INPUTS = {"spikes": "INPUT_SPIKES", "values": "INPUT_VALUES"}
_DECODINGS = {
    "spike_count": "DECODE_SPIKE_COUNT",
    "membrane_last": "DECODE_MEMBRANE_LAST",
    "membrane_sum": "DECODE_MEMBRANE_SUM",
    "first_spike": "DECODE_FIRST_SPIKE",
}


_REEXPORT = "export it again with this EdgeSpike version (edgespike quantize, or model.save)"


# ---- Wire grammar (docs/SEMANTICS.md, "Which blobs are accepted") ----------------------------
# nanopb (the firmware) and upb (protobuf's Python parser) accept different malformed bytes:
# nanopb refuses a known field with the wrong wire type, a varint field (enums included: they
# have no negative value, so nanopb reads them as uint32) at 2^32 or above, and groups, which
# upb accepts (as unknown fields, or truncated to 32 bits); upb refuses bad UTF-8 in strings, a
# malformed encoder message and tags or lengths of more than 5 bytes, which nanopb skips or
# accepts. Both sides first walk the blob by this grammar, the set both parsers read alike.
_WT_VARINT, _WT_I64, _WT_LEN, _WT_I32 = 0, 1, 2, 5
_FD = pb.Model.DESCRIPTOR.fields[0].__class__  # google.protobuf.descriptor.FieldDescriptor


class _WireError(Exception):
    def __init__(self, pos: int, what: str) -> None:
        super().__init__(what)
        self.pos = pos


def _varint(buf: memoryview, pos: int, end: int, max_bytes: int) -> tuple[int, int]:
    """Decode a varint of at most ``max_bytes`` bytes at ``pos``; returns (value, next pos)."""
    value = 0
    for i in range(max_bytes):
        if pos >= end:
            raise _WireError(pos, "a varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if i == 9 and b > 1:
                raise _WireError(pos - 1, "a varint exceeds 64 bits")
            return value, pos
    raise _WireError(pos, f"a varint is longer than {max_bytes} bytes")


def _tag(buf: memoryview, pos: int, end: int) -> tuple[int, int, int]:
    tag, nxt = _varint(buf, pos, end, 5)
    if tag >= 1 << 32:
        raise _WireError(pos, "a field tag exceeds 32 bits")
    if tag >> 3 == 0:
        raise _WireError(pos, "field number 0")
    return tag >> 3, tag & 7, nxt


def _length(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    n, nxt = _varint(buf, pos, end, 5)
    if n > end - nxt:
        raise _WireError(pos, f"a length of {n} bytes runs past the end of its message")
    return n, nxt


def _skip(buf: memoryview, pos: int, end: int, wt: int) -> int:
    if wt == _WT_VARINT:
        return _varint(buf, pos, end, 10)[1]
    if wt in (_WT_I64, _WT_I32):
        size = 8 if wt == _WT_I64 else 4
        if size > end - pos:
            raise _WireError(pos, "a fixed-size value runs past the end of its message")
        return pos + size
    if wt == _WT_LEN:
        n, pos = _length(buf, pos, end)
        return pos + n
    raise _WireError(pos, f"wire type {wt} (groups and types 6, 7 are not allowed)")


#: varint types of the model messages: nanopb refuses values of 2^32 and above.
_VARINT_32 = (_FD.TYPE_UINT32, _FD.TYPE_SINT32, _FD.TYPE_ENUM)


def _check_message(buf: memoryview, pos: int, end: int, desc, path: str) -> None:
    fields = desc.fields_by_number
    while pos < end:
        start = pos
        number, wt, pos = _tag(buf, pos, end)
        fd = fields.get(number)
        if fd is None:  # unknown fields are skipped (newer formats add fields)
            pos = _skip(buf, pos, end, wt)
            continue
        where = f"{path}.{fd.name} (field {number})"
        # (FieldDescriptor.label is gone from protobuf 7, is_repeated new in 4.x: take either)
        repeated = getattr(fd, "is_repeated", None)
        if repeated is None:
            repeated = fd.label == _FD.LABEL_REPEATED
        if fd.type in _VARINT_32:
            if wt == _WT_LEN and repeated:  # packed
                n, pos = _length(buf, pos, end)
                stop = pos + n
                while pos < stop:
                    value, nxt = _varint(buf, pos, stop, 10)
                    if value >= 1 << 32:
                        raise _WireError(pos, f"{where} holds {value}, above 2^32 - 1")
                    pos = nxt
                continue
            if wt != _WT_VARINT:
                raise _WireError(start, f"{where} has wire type {wt}, not 0 (varint)")
            value, nxt = _varint(buf, pos, end, 10)
            if value >= 1 << 32:
                raise _WireError(pos, f"{where} holds {value}, above 2^32 - 1")
            pos = nxt
        elif fd.type == _FD.TYPE_FIXED32:
            if wt != _WT_I32:
                raise _WireError(start, f"{where} has wire type {wt}, not 5 (fixed32)")
            pos = _skip(buf, pos, end, wt)
        elif fd.type in (_FD.TYPE_BYTES, _FD.TYPE_STRING, _FD.TYPE_MESSAGE):
            if wt != _WT_LEN:
                raise _WireError(start, f"{where} has wire type {wt}, not 2 (length-delimited)")
            n, pos = _length(buf, pos, end)
            if fd.type == _FD.TYPE_STRING:
                try:
                    bytes(buf[pos:pos + n]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _WireError(pos + exc.start, f"{where} is not valid UTF-8") from None
            elif fd.type == _FD.TYPE_MESSAGE:
                _check_message(buf, pos, pos + n, fd.message_type, f"{path}.{fd.name}")
            pos += n
        else:  # a type the firmware's grammar table (es_model.c) does not know yet
            raise RuntimeError(f"check_wire: {where} has a type this checker does not handle; "
                               "extend it here and in firmware/core/es_model.c together")


def check_wire(blob: bytes) -> None:
    """Check ``blob`` (hash field included) against the wire grammar of docs/SEMANTICS.md.

    Raises:
        ModelFormatError: with the byte offset and the field at fault.
    """
    buf = memoryview(blob)
    try:
        _check_message(buf, 0, len(buf), pb.Model.DESCRIPTOR, "Model")
    except _WireError as exc:
        raise ModelFormatError(f"model blob is malformed at byte {exc.pos}: {exc}; the blob was "
                               f"altered or not written by EdgeSpike: {_REEXPORT}") from None


def _enum(value: int, names: dict[int, str], what: str, where: str = "") -> str:
    """The SDK's name of an enum value, or :class:`ModelFormatError` for an unknown one."""
    if value in names:
        return names[value]
    known = ", ".join(f"{n}={v}" for v, n in sorted(names.items()))
    prefix = f"{where}: " if where else ""
    raise ModelFormatError(f"model blob {prefix}unknown {what} {value} (this SDK reads {known}); "
                           f"the blob comes from a newer EdgeSpike or was altered: {_REEXPORT}")


def _numbers(enum_type, names: dict[str, str]) -> dict[int, str]:
    """{protobuf enum number: SDK name} for a name table such as _ENCODINGS."""
    return {enum_type.Value(v): k for k, v in names.items()}


def _per_neuron_array(data: bytes, dtype: str, count: int, name: str, where: str) -> np.ndarray:
    """A per-neuron array of ``count`` values; ModelFormatError if its length is not that."""
    item = np.dtype(dtype).itemsize
    if len(data) != count * item:
        raise ModelFormatError(
            f"model blob {where}: {name} is {len(data)} bytes; it must hold one {item}-byte "
            f"value per neuron ({count} neurons, {count * item} bytes): {_REEXPORT}")
    return np.frombuffer(data, dtype=dtype).astype(np.int64)


def pack_ternary(codes: np.ndarray) -> bytes:
    """Pack ternary codes (fan_in x fan_out, values -1/0/+1) into 2-bit rows padded to bytes."""
    fan_in, fan_out = codes.shape
    stride = (fan_out + 3) // 4
    bits = np.zeros((fan_in, stride * 4), dtype=np.uint8)
    bits[:, :fan_out] = np.where(codes > 0, 1, np.where(codes < 0, 2, 0))
    quads = bits.reshape(fan_in, stride, 4)
    packed = quads[..., 0] | (quads[..., 1] << 2) | (quads[..., 2] << 4) | (quads[..., 3] << 6)
    return packed.astype(np.uint8).tobytes()


def unpack_ternary(data: bytes, fan_in: int, fan_out: int) -> np.ndarray:
    """Inverse of :func:`pack_ternary`; raises :class:`BlobError` on the invalid code 11."""
    stride = (fan_out + 3) // 4
    if len(data) != fan_in * stride:
        raise BlobError(f"ternary data is {len(data)} bytes, expected {fan_in * stride}")
    packed = np.frombuffer(data, dtype=np.uint8).reshape(fan_in, stride)
    quads = np.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], axis=-1).reshape(fan_in, -1)
    quads = quads[:, :fan_out]
    if (quads == 3).any():
        raise BlobError("ternary data holds the invalid code 0b11")
    return np.where(quads == 1, 1, np.where(quads == 2, -1, 0)).astype(np.int8)


def _weights_to_pb(w: Weights, msg) -> None:
    msg.fan_in = w.fan_in
    msg.fan_out = w.fan_out
    msg.encoding = pb.WeightEncoding.Value(_ENCODINGS[w.encoding])
    msg.exp = int(w.exp)
    if w.encoding == "int8":
        msg.data = w.values.astype(np.int8).tobytes()
    else:
        msg.data = pack_ternary(w.values)
        for name in ("a_pos", "a_neg"):
            val = getattr(w, name)
            if np.ndim(val) == 0:
                setattr(msg, name, int(val))
            else:
                setattr(msg, f"{name}_per_neuron", np.asarray(val, dtype=np.uint8).tobytes())


def _weights_from_pb(msg, where: str) -> Weights:
    enc = _enum(msg.encoding, _numbers(pb.WeightEncoding, _ENCODINGS), "weight encoding", where)
    if msg.fan_in < 1 or msg.fan_out < 1:
        raise BlobError(f"model blob is invalid: {where}: empty weight matrix "
                        f"{msg.fan_in}x{msg.fan_out}")
    if enc == "int8":
        if len(msg.data) != msg.fan_in * msg.fan_out:
            raise BlobError(f"int8 data is {len(msg.data)} bytes, expected {msg.fan_in * msg.fan_out}")
        values = np.frombuffer(msg.data, dtype=np.int8).reshape(msg.fan_in, msg.fan_out).copy()
        return Weights(values=values, exp=msg.exp, encoding="int8")
    codes = unpack_ternary(msg.data, msg.fan_in, msg.fan_out)
    a: dict[str, int | np.ndarray] = {}
    for name in ("a_pos", "a_neg"):
        per = getattr(msg, f"{name}_per_neuron")
        a[name] = (_per_neuron_array(per, "u1", msg.fan_out, f"{name}_per_neuron", where) if per
                   else int(getattr(msg, name)))
    return Weights(values=codes, exp=msg.exp, encoding="ternary", **a)


def _neurons_to_pb(n: Neurons, size: int, msg) -> None:
    msg.du, msg.dv = int(n.du), int(n.dv)
    if np.ndim(n.vth) == 0:
        msg.vth = int(n.vth)
    else:
        msg.vth_per_neuron = np.asarray(n.vth, dtype="<u4").tobytes()
    if np.ndim(n.bias_mant) == 0:
        msg.bias_mant = int(n.bias_mant)
    else:
        msg.bias_per_neuron = np.asarray(n.bias_mant, dtype="<i2").tobytes()
    msg.bias_exp = int(n.bias_exp)
    msg.reset = pb.ResetMode.Value(_RESETS[n.reset])
    msg.refractory = int(n.refractory)
    msg.adapt_step = int(n.adapt_step)
    msg.adapt_decay = int(n.adapt_decay)


def _neurons_from_pb(msg, size: int, where: str) -> Neurons:
    reset = _enum(msg.reset, _numbers(pb.ResetMode, _RESETS), "reset mode", where)
    # The scalars must be in range even when a per-neuron array overrides them (as the
    # firmware checks them).
    if msg.vth > VTH_MAX:
        raise BlobError(f"model blob is invalid: {where}: vth={msg.vth} outside 0..{VTH_MAX}")
    if not -4096 <= msg.bias_mant <= 4095:
        raise BlobError(f"model blob is invalid: {where}: bias_mant={msg.bias_mant} outside "
                        "-4096..4095")
    vth: int | np.ndarray = int(msg.vth)
    if msg.vth_per_neuron:
        vth = _per_neuron_array(msg.vth_per_neuron, "<u4", size, "vth_per_neuron", where)
    bias: int | np.ndarray = int(msg.bias_mant)
    if msg.bias_per_neuron:
        bias = _per_neuron_array(msg.bias_per_neuron, "<i2", size, "bias_per_neuron", where)
    return Neurons(
        du=msg.du, dv=msg.dv, vth=vth, bias_mant=bias, bias_exp=msg.bias_exp,
        reset=reset, refractory=msg.refractory,
        adapt_step=msg.adapt_step, adapt_decay=msg.adapt_decay,
    )


def to_message(model: Model):
    """The model as a protobuf ``Model`` message (without its content hash)."""
    msg = pb.Model()
    msg.format_version = FORMAT_VERSION
    msg.name = model.name
    msg.input_size = model.input_size
    msg.input_kind = pb.InputKind.Value(_INPUTS[model.input_kind])
    msg.input_max_abs = int(model.input_bound())
    msg.timesteps = model.timesteps
    msg.decoding = pb.Decoding.Value(_DECODINGS[model.decoding])
    msg.dt_us = model.dt_us
    msg.encoder.kind = pb.EncoderKind.Value("ENCODER_" + model.encoder.kind.upper())
    msg.encoder.channels = model.encoder.channels
    msg.encoder.thresholds.extend(int(t) for t in model.encoder.thresholds)
    msg.encoder.params_json = model.encoder.params_json
    msg.labels.extend(model.labels)
    msg.stream_window = int(model.stream_window)
    msg.stream_hop = int(model.stream_hop)
    for layer in model.layers:
        lm = msg.layers.add()
        lm.kind = pb.LayerKind.Value("LAYER_RECURRENT" if layer.recurrent is not None else "LAYER_DENSE")
        lm.size = layer.size
        lm.name = layer.name
        _weights_to_pb(layer.weights, lm.weights)
        if layer.recurrent is not None:
            _weights_to_pb(layer.recurrent, lm.recurrent)
        _neurons_to_pb(layer.neurons, layer.size, lm.neurons)
    return msg


def to_bytes(model: Model) -> bytes:
    """Serialize a validated model to blob bytes (hash appended)."""
    model.validate()
    body = to_message(model).SerializeToString(deterministic=True)
    return body + HASH_TAG + struct.pack("<I", crc32(body))


_LAYER_KINDS = {pb.LayerKind.Value("LAYER_DENSE"): "dense",
                pb.LayerKind.Value("LAYER_RECURRENT"): "recurrent"}


def from_bytes(blob: bytes) -> Model:
    """Parse and validate blob bytes (docs/SEMANTICS.md, "Which blobs are accepted").

    Raises:
        BlobError: hash missing or wrong, or a size or range the validator refuses.
        ModelFormatError: (a BlobError) the bytes are outside the wire grammar, or hold an
            unknown enum value or a per-neuron array of the wrong length.
    """
    blob = bytes(blob)
    if len(blob) < 6 or blob[-6:-4] != HASH_TAG:
        raise BlobError("not an EdgeSpike model blob: the content hash is missing (truncated?)")
    body, (stored,) = blob[:-6], struct.unpack("<I", blob[-4:])
    if crc32(body) != stored:
        raise BlobError(f"content hash mismatch: blob says {stored:08x}, bytes give {crc32(body):08x}")
    check_wire(blob)
    msg = pb.Model()
    try:
        msg.ParseFromString(blob)
    except Exception as exc:  # protobuf's DecodeError; check_wire should have caught it first
        raise ModelFormatError(f"model blob does not decode: {exc}; {_REEXPORT}") from exc
    if msg.format_version != FORMAT_VERSION:
        raise ModelFormatError(f"blob format version {msg.format_version}; this SDK reads "
                               f"{FORMAT_VERSION}: {_REEXPORT}")
    layers = []
    for i, lm in enumerate(msg.layers):
        where = f"layer {i}"
        lkind = _enum(lm.kind, _LAYER_KINDS, "layer kind", where)
        weights = _weights_from_pb(lm.weights, where)
        if lm.size != weights.fan_out:
            raise BlobError(f"model blob is invalid: {where}: size {lm.size} != weights fan_out "
                            f"{weights.fan_out}")
        recurrent = _weights_from_pb(lm.recurrent, f"{where} recurrent") if lkind == "recurrent" else None
        layers.append(Layer(weights=weights, neurons=_neurons_from_pb(lm.neurons, lm.size, where),
                            recurrent=recurrent, name=lm.name))
    kind = _enum(msg.input_kind, _numbers(pb.InputKind, _INPUTS), "input kind")
    decoding = _enum(msg.decoding, _numbers(pb.Decoding, _DECODINGS), "decoding")
    encoders = {v.number: v.name[len("ENCODER_"):].lower() for v in pb.EncoderKind.DESCRIPTOR.values}
    model = Model(
        input_size=msg.input_size, timesteps=msg.timesteps, layers=layers, input_kind=kind,
        input_max_abs=msg.input_max_abs if kind == "values" else 1,
        decoding=decoding, name=msg.name, dt_us=msg.dt_us,
        encoder=EncoderSpec(kind=_enum(msg.encoder.kind, encoders, "encoder kind"),
                            channels=msg.encoder.channels, thresholds=list(msg.encoder.thresholds),
                            params_json=msg.encoder.params_json),
        labels=list(msg.labels), stream_window=msg.stream_window, stream_hop=msg.stream_hop,
    )
    try:
        return model.validate()
    except Exception as exc:
        raise BlobError(f"model blob is invalid: {exc}") from exc


def save(model: Model, path: str | Path) -> Path:
    """Write the blob to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(to_bytes(model))
    return path


def load(path: str | Path) -> Model:
    """Read a blob written by :func:`save` (or by ``edgespike quantize``)."""
    return from_bytes(Path(path).read_bytes())
