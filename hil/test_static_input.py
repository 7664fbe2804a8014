"""Direct input that is the same at every step (a still image) is sent once (Run.static_input).

A Fashion-MNIST-sized network (784-256-10, 8 steps, direct input) took 6,272 values per run,
more than any device accepts (4,096): sent as one step it runs, and the device's answer equals
the numpy reference's, spikes and counters included. An input that changes over time still
goes step by step, and the two give the same answer where both fit.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.sim import reference


def _layer(rng, fan_in: int, fan_out: int, bound: int) -> Layer:
    w = Weights(rng.integers(-128, 128, (fan_in, fan_out)).astype(np.int8))
    w.exp = 0
    while w.worst_case_input(bound) >= 1 << 17:
        w.exp -= 1
    return Layer(w, Neurons(du=4096, dv=410, vth=rng.integers(20, 200, fan_out)))


@pytest.fixture(scope="module")
def fashion_sized() -> Model:
    rng = np.random.default_rng(5)
    return Model(input_size=784, timesteps=8, input_kind="values", input_max_abs=127,
                 decoding="membrane_sum", name="fashion-784-256-10",
                 layers=[_layer(rng, 784, 256, 127), _layer(rng, 256, 10, 1)]).validate()


def test_fashion_sized_model_runs_with_a_static_input(device, fashion_sized) -> None:
    info = device.deploy(fashion_sized)
    assert info is not None
    rng = np.random.default_rng(6)
    images = rng.integers(0, 128, (2, 1, 784)) * (rng.random((2, 1, 784)) < 0.5)
    x = np.repeat(images, 8, axis=1).astype(np.int32)
    info = device.hello()
    assert x[0].size > info.max_input_items  # would not fit step by step
    msg = device.encode_input(x[0], fashion_sized)
    assert msg.static_input and len(msg.values) == 784
    for xi, ref in zip(x, reference.run_batch(fashion_sized, x)):
        out = device.run(xi, record_spikes=True)
        assert out.prediction == ref.prediction
        assert np.array_equal(out.scores, ref.scores)
        assert [c.synops for c in out.counters] == [c.synops for c in ref.counters]
        assert [c.spikes for c in out.counters] == [c.spikes for c in ref.counters]
        assert np.array_equal(out.spikes[-1], ref.spikes[-1])


def test_static_and_per_step_inputs_agree(device) -> None:
    rng = np.random.default_rng(8)
    model = Model(input_size=32, timesteps=6, input_kind="values", input_max_abs=100,
                  layers=[_layer(rng, 32, 24, 100), _layer(rng, 24, 5, 1)]).validate()
    device.deploy(model)
    still = np.repeat(rng.integers(-100, 101, (1, 32)), 6, axis=0).astype(np.int32)
    moving = rng.integers(-100, 101, (6, 32)).astype(np.int32)
    assert device.encode_input(still, model).static_input
    assert not device.encode_input(moving, model).static_input
    for x in (still, moving):
        out, ref = device.run(x), reference.run(model, x)
        assert np.array_equal(out.scores, ref.scores)
        assert [c.input_events for c in out.counters] == [c.input_events for c in ref.counters]
