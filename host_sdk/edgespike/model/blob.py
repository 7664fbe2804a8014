"""The model blob: :class:`~edgespike.model.quantized.Model` to and from protobuf bytes.

Layout and hash are in docs/SEMANTICS.md ("Content hash"): the serialized ``Model`` message
with ``content_crc32`` (field 1000) last, holding the CRC-32 of every byte before it.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from edgespike.errors import BlobError
from edgespike.model.quantized import EncoderSpec, Layer, Model, Neurons, Weights
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


def _inverse(d: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in d.items()}


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


def _weights_from_pb(msg) -> Weights:
    enc = _inverse(_ENCODINGS)[pb.WeightEncoding.Name(msg.encoding)]
    if enc == "int8":
        if len(msg.data) != msg.fan_in * msg.fan_out:
            raise BlobError(f"int8 data is {len(msg.data)} bytes, expected {msg.fan_in * msg.fan_out}")
        values = np.frombuffer(msg.data, dtype=np.int8).reshape(msg.fan_in, msg.fan_out).copy()
        return Weights(values=values, exp=msg.exp, encoding="int8")
    codes = unpack_ternary(msg.data, msg.fan_in, msg.fan_out)
    a: dict[str, int | np.ndarray] = {}
    for name in ("a_pos", "a_neg"):
        per = getattr(msg, f"{name}_per_neuron")
        a[name] = np.frombuffer(per, dtype=np.uint8).astype(np.int64) if per else int(getattr(msg, name))
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


def _neurons_from_pb(msg, size: int) -> Neurons:
    vth: int | np.ndarray = int(msg.vth)
    if msg.vth_per_neuron:
        vth = np.frombuffer(msg.vth_per_neuron, dtype="<u4").astype(np.int64)
    bias: int | np.ndarray = int(msg.bias_mant)
    if msg.bias_per_neuron:
        bias = np.frombuffer(msg.bias_per_neuron, dtype="<i2").astype(np.int64)
    for name, arr in (("vth_per_neuron", vth), ("bias_per_neuron", bias)):
        if np.ndim(arr) and len(arr) != size:
            raise BlobError(f"{name} has {len(arr)} values for {size} neurons")
    return Neurons(
        du=msg.du, dv=msg.dv, vth=vth, bias_mant=bias, bias_exp=msg.bias_exp,
        reset=_inverse(_RESETS)[pb.ResetMode.Name(msg.reset)], refractory=msg.refractory,
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


def from_bytes(blob: bytes) -> Model:
    """Parse and validate blob bytes; raises :class:`BlobError` on any inconsistency."""
    if len(blob) < 6 or blob[-6:-4] != HASH_TAG:
        raise BlobError("not an EdgeSpike model blob: the content hash is missing (truncated?)")
    body, (stored,) = blob[:-6], struct.unpack("<I", blob[-4:])
    if crc32(body) != stored:
        raise BlobError(f"content hash mismatch: blob says {stored:08x}, bytes give {crc32(body):08x}")
    msg = pb.Model()
    try:
        msg.ParseFromString(blob)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise BlobError(f"model blob does not decode: {exc}") from exc
    if msg.format_version != FORMAT_VERSION:
        raise BlobError(f"blob format version {msg.format_version}; this SDK reads {FORMAT_VERSION}")
    layers = []
    for lm in msg.layers:
        weights = _weights_from_pb(lm.weights)
        recurrent = _weights_from_pb(lm.recurrent) if lm.kind == pb.LayerKind.Value("LAYER_RECURRENT") else None
        layers.append(Layer(weights=weights, neurons=_neurons_from_pb(lm.neurons, lm.size),
                            recurrent=recurrent, name=lm.name))
    kind = _inverse(_INPUTS)[pb.InputKind.Name(msg.input_kind)]
    model = Model(
        input_size=msg.input_size, timesteps=msg.timesteps, layers=layers, input_kind=kind,
        input_max_abs=msg.input_max_abs if kind == "values" else 1,
        decoding=_inverse(_DECODINGS)[pb.Decoding.Name(msg.decoding)], name=msg.name,
        dt_us=msg.dt_us,
        encoder=EncoderSpec(kind=pb.EncoderKind.Name(msg.encoder.kind)[len("ENCODER_"):].lower(),
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
