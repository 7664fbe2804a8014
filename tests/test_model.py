"""The quantized model: validation, the blob form and its content hash."""
from __future__ import annotations

import re

import numpy as np
import pytest

from edgespike.errors import BlobError, ModelError
from edgespike.model import Layer, Model, Neurons, Weights, from_bytes, to_bytes
from edgespike.model.blob import HASH_TAG, pack_ternary, unpack_ternary


def small_model(rng: np.random.Generator, ternary_per_neuron: bool = False) -> Model:
    w0 = rng.integers(-128, 128, (12, 9)).astype(np.int8)
    codes = rng.integers(-1, 2, (9, 5)).astype(np.int8)
    a_neg = rng.integers(1, 200, 5) if ternary_per_neuron else 7
    return Model(
        input_size=12, timesteps=6, name="small", labels=list("abcde"),
        layers=[
            Layer(Weights(w0, exp=-2), Neurons(du=1200, dv=300, vth=rng.integers(1, 500, 9),
                                               bias_mant=rng.integers(-50, 50, 9), bias_exp=2)),
            Layer(Weights(codes, encoding="ternary", a_pos=40, a_neg=a_neg),
                  Neurons(dv=4096, vth=90, reset="subtract", refractory=2, adapt_step=5, adapt_decay=100),
                  recurrent=Weights(rng.integers(-20, 20, (5, 5)).astype(np.int8))),
        ],
    )


@pytest.mark.parametrize("per_neuron", [False, True])
def test_blob_round_trip_is_exact(per_neuron: bool) -> None:
    rng = np.random.default_rng(1)
    model = small_model(rng, per_neuron)
    blob = to_bytes(model)
    back = from_bytes(blob)
    assert to_bytes(back) == blob
    for a, b in zip(model.layers, back.layers):
        assert np.array_equal(a.weights.integer_matrix(), b.weights.integer_matrix())
        assert np.array_equal(np.broadcast_to(a.neurons.vth, a.size), np.broadcast_to(b.neurons.vth, b.size))
    assert back.labels == list("abcde") and back.name == "small"


def test_hash_trailer_is_field_1000_and_checked() -> None:
    blob = to_bytes(small_model(np.random.default_rng(2)))
    assert blob[-6:-4] == HASH_TAG
    tampered = bytearray(blob)
    tampered[10] ^= 0x01
    with pytest.raises(BlobError, match="hash mismatch"):
        from_bytes(bytes(tampered))
    with pytest.raises(BlobError, match="hash is missing"):
        from_bytes(blob[:-3])


def test_ternary_packing_round_trip_and_rejects_code_3() -> None:
    rng = np.random.default_rng(3)
    for fan_out in (1, 3, 4, 5, 17):
        codes = rng.integers(-1, 2, (7, fan_out)).astype(np.int8)
        packed = pack_ternary(codes)
        assert len(packed) == 7 * ((fan_out + 3) // 4)
        assert np.array_equal(unpack_ternary(packed, 7, fan_out), codes)
    with pytest.raises(BlobError, match="0b11"):
        unpack_ternary(b"\x03", 1, 1)


def test_ternary_is_16x_smaller_than_fp32() -> None:
    codes = np.random.default_rng(4).integers(-1, 2, (256, 128)).astype(np.int8)
    model = Model(input_size=256, timesteps=4, layers=[Layer(Weights(codes, encoding="ternary"))])
    assert model.fp32_weight_bytes() / model.weight_bytes() == 16


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: setattr(m.layers[0].neurons, "du", 5000), "du=5000"),
        (lambda m: setattr(m.layers[0].neurons, "bias_exp", 8), "bias_exp"),
        (lambda m: setattr(m.layers[0].neurons, "vth", 1 << 17), "vth"),
        (lambda m: setattr(m, "timesteps", 0), "timesteps"),
        (lambda m: setattr(m, "input_size", 13), "fan_in"),
        (lambda m: setattr(m.layers[1].weights, "a_pos", 0), "a_pos"),
        (lambda m: setattr(m.layers[0].weights, "exp", 12), "2\\^17"),
        (lambda m: setattr(m, "decoding", "vote"), "decoding"),
    ],
)
def test_validation_names_the_culprit(mutate, message: str) -> None:
    model = small_model(np.random.default_rng(5))
    mutate(model)
    with pytest.raises(ModelError, match=message):
        model.validate()


def test_int8_range_is_checked() -> None:
    w = np.full((2, 2), 200, dtype=np.int16)
    with pytest.raises(ModelError, match="int8 weights out of range"):
        Model(input_size=2, timesteps=1, layers=[Layer(Weights(w))]).validate()


def test_direct_input_bound_uses_input_max_abs() -> None:
    w = np.full((64, 4), 127, dtype=np.int8)
    model = Model(input_size=64, timesteps=2, input_kind="values", input_max_abs=127,
                  layers=[Layer(Weights(w, exp=0))])
    with pytest.raises(ModelError, match="2\\^17"):
        model.validate()
    model.layers[0].weights.exp = -4  # 64 * 127 * 127 / 16 = 64516 < 2^17
    model.validate()


# ---- Case 11 of issue 12: a correctly hashed blob the SDK cannot interpret -------------------
# Each is refused by load() with ModelFormatError (a BlobError, a ModelError) whose message
# names the field and says what to do; the C parser refuses the same blobs
# (tests/test_blob_agreement.py).

def _sealed(msg) -> bytes:
    from edgespike.protocol import crc32
    body = msg.SerializeToString(deterministic=True)
    return body + HASH_TAG + crc32(body).to_bytes(4, "little")


def _message(per_neuron: bool = True):
    from edgespike.model.blob import to_message
    return to_message(small_model(np.random.default_rng(5), per_neuron))


def _set(path: str, value):
    def edit(msg):
        *parents, name = path.split(".")
        obj = msg
        for p in parents:
            obj = obj.layers[int(p[7:-1])] if p.startswith("layers[") else getattr(obj, p)
        setattr(obj, name, value)
    return edit


@pytest.mark.parametrize("edit, text", [
    (_set("input_kind", 2), "unknown input kind 2 (this SDK reads spikes=0, values=1)"),
    (_set("decoding", 9), "unknown decoding 9"),
    (_set("encoder.kind", 42), "unknown encoder kind 42"),
    (_set("layers[0].kind", 3), "layer 0: unknown layer kind 3"),
    (_set("layers[1].weights.encoding", 2), "layer 1: unknown weight encoding 2"),
    (_set("layers[1].recurrent.encoding", 7), "layer 1 recurrent: unknown weight encoding 7"),
    (_set("layers[1].neurons.reset", 5), "layer 1: unknown reset mode 5"),
    # a negative enum is a 10-byte varint: nanopb refuses it before looking at the value
    (_set("input_kind", -1), "Model.input_kind (field 4) holds 18446744073709551615, above 2^32 - 1"),
])
def test_unknown_enum_value_is_a_model_format_error(edit, text) -> None:
    from edgespike.errors import ModelFormatError
    msg = _message()
    edit(msg)
    with pytest.raises(ModelFormatError, match=re.escape(text)) as info:
        from_bytes(_sealed(msg))
    assert "export it again" in str(info.value)
    assert isinstance(info.value, BlobError) and isinstance(info.value, ModelError)


@pytest.mark.parametrize("field, data, text", [
    ("vth_per_neuron", b"\x01\x00\x00\x00" * 8 + b"\x01", "vth_per_neuron is 33 bytes; it must hold one 4-byte value per neuron (9 neurons, 36 bytes)"),
    ("bias_per_neuron", b"\x01\x00" * 8 + b"\x01", "bias_per_neuron is 17 bytes; it must hold one 2-byte value per neuron (9 neurons, 18 bytes)"),
    ("vth_per_neuron", b"\x01\x00\x00\x00" * 10, "vth_per_neuron is 40 bytes"),
])
def test_per_neuron_array_of_wrong_length_is_a_model_format_error(field, data, text) -> None:
    from edgespike.errors import ModelFormatError
    msg = _message()
    setattr(msg.layers[0].neurons, field, data)
    with pytest.raises(ModelFormatError, match=re.escape(text)):
        from_bytes(_sealed(msg))


def test_ternary_magnitudes_of_wrong_length_are_a_model_format_error() -> None:
    from edgespike.errors import ModelFormatError
    msg = _message(per_neuron=True)
    msg.layers[1].weights.a_neg_per_neuron = b"\x05" * 4  # 5 neurons
    with pytest.raises(ModelFormatError, match="layer 1: a_neg_per_neuron is 4 bytes"):
        from_bytes(_sealed(msg))


def test_layer_size_must_equal_fan_out() -> None:
    msg = _message()
    msg.layers[0].size = 8  # fan_out 9; the C parser refuses it too
    with pytest.raises(BlobError, match="layer 0: size 8 != weights fan_out 9"):
        from_bytes(_sealed(msg))


def test_empty_weight_matrix_is_a_blob_error_not_a_reshape_error() -> None:
    msg = _message()
    msg.layers[1].weights.fan_in = 0
    msg.layers[1].weights.data = b""
    with pytest.raises(BlobError, match="layer 1: empty weight matrix 0x5"):
        from_bytes(_sealed(msg))


def test_overridden_scalars_must_still_be_in_range() -> None:
    # the firmware checks vth and bias_mant even when a per-neuron array overrides them
    for name, value, text in (("vth", 1 << 17, "vth=131072"), ("bias_mant", 5000, "bias_mant=5000")):
        msg = _message()
        setattr(msg.layers[0].neurons, name, value)
        with pytest.raises(BlobError, match=text):
            from_bytes(_sealed(msg))


def test_load_raises_the_named_error_for_a_file(tmp_path) -> None:
    from edgespike.errors import ModelFormatError
    from edgespike.model import load
    msg = _message()
    msg.layers[0].neurons.reset = 9
    path = tmp_path / "bad.esm"
    path.write_bytes(_sealed(msg))
    with pytest.raises(ModelFormatError, match="layer 0: unknown reset mode 9"):
        load(path)
