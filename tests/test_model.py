"""The quantized model: validation, the blob form and its content hash."""
from __future__ import annotations

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
