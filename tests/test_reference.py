"""The numpy integer reference against hand-computed cases of docs/SEMANTICS.md."""
from __future__ import annotations

import numpy as np
import pytest

from edgespike.errors import InputError
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.sim import events_from_spikes, run, spikes_from_events
from edgespike.sim.reference import clip24, decay, shift, wrap24


def one_neuron(weight: int, neurons: Neurons, steps: int, exp: int = 0, **kw) -> Model:
    return Model(input_size=1, timesteps=steps, layers=[Layer(Weights(np.array([[weight]], np.int8), exp=exp), neurons)], **kw)


def test_helpers_match_lava_arithmetic() -> None:
    # -4097 * 4095 / 4096 = -4095.999...: toward zero gives -4095 (floor would give -4096)
    assert decay(np.array([-4097]), 1).tolist() == [-4095]
    assert decay(np.array([4097]), 1).tolist() == [4095]
    assert wrap24(np.array([2**23, 2**23 + 1, -(2**23), -(2**23) + 1])).tolist() == [
        2**23, -(2**23) + 1, 2**23, -(2**23) + 1]
    assert clip24(np.array([2**23, -(2**23)])).tolist() == [2**23 - 1, -(2**23) + 1]
    assert shift(np.array([-3]), -1).tolist() == [-2]           # floor, as Lava's right_shift


def test_hand_computed_trace() -> None:
    # du = 2048 halves u each step; dv = 4096 makes v memoryless; vth = 100 -> 6400.
    model = one_neuron(100, Neurons(du=2048, dv=4096, vth=100), steps=4)
    x = np.array([[1], [0], [0], [0]])
    out = run(model, x)
    # u: 6400, 3200, 1600, 800 ; v = u (memoryless) ; spike when v > 6400: never (6400 is not >)
    assert out.spikes[0][:, 0].tolist() == [0, 0, 0, 0]
    assert out.u[0].tolist() == [800] and out.v[0].tolist() == [800]
    model.layers[0].neurons.vth = 99  # 6336 < 6400: spikes at step 0 only
    out = run(model, x)
    assert out.spikes[0][:, 0].tolist() == [1, 0, 0, 0]
    assert out.counters[0].synops == 1 and out.counters[0].input_events == 1
    assert out.counters[0].neuron_updates == 4 and out.counters[0].spikes == 1


def test_bias_is_not_shifted_by_6_and_reset_subtract() -> None:
    # no input; bias 10 << 3 = 80 per step into a perfect integrator (dv = 0); vth = 2 -> 128
    model = one_neuron(0, Neurons(du=4096, dv=0, vth=2, bias_mant=10, bias_exp=3, reset="subtract"), steps=3)
    out = run(model, np.zeros((3, 1), dtype=np.int64))
    # v: 80, 160 -> spike, 32, 112
    assert out.spikes[0][:, 0].tolist() == [0, 1, 0]
    assert out.v[0].tolist() == [112]


def test_refractory_holds_v_and_adaptive_threshold_rises() -> None:
    n = Neurons(du=4096, dv=0, vth=1, bias_mant=100, refractory=2)
    out = run(one_neuron(0, n, steps=7), np.zeros((7, 1), dtype=np.int64))
    # v += 100 per active step, threshold 64: spike every active step, then 2 held steps
    assert out.spikes[0][:, 0].tolist() == [1, 0, 0, 1, 0, 0, 1]
    n = Neurons(du=4096, dv=0, vth=1, bias_mant=100, adapt_step=1, adapt_decay=4096)
    out = run(one_neuron(0, n, steps=3), np.zeros((3, 1), dtype=np.int64))
    # th after a spike = 64, decays fully next step (adapt_decay 4096): theta 64, 128, 64
    assert out.spikes[0][:, 0].tolist() == [1, 0, 1]


@pytest.mark.parametrize("decoding, scores, prediction", [
    ("spike_count", [2, 0], 0),
    ("first_spike", [4, 0], 0),
    ("membrane_last", [0, 0], 0),
    ("membrane_sum", [0, 12800], 1),
])
def test_decodings(decoding: str, scores: list[int], prediction: int) -> None:
    # memoryless neurons (du = dv = 4096): v = u = 6400 on an input step; thresholds 6336, 6400
    model = Model(input_size=1, timesteps=4, decoding=decoding,
                  layers=[Layer(Weights(np.array([[100, 100]], np.int8)),
                                Neurons(du=4096, dv=4096, vth=np.array([99, 100])))])
    out = run(model, np.array([[1], [0], [1], [0]]))
    assert out.scores.tolist() == scores
    assert out.prediction == prediction


def test_events_round_trip_and_range_errors() -> None:
    raster = (np.random.default_rng(0).random((5, 7)) < 0.3).astype(np.uint8)
    ev = events_from_spikes(raster)
    assert np.array_equal(spikes_from_events(ev, 5, 7), raster)
    with pytest.raises(InputError, match="out of range"):
        spikes_from_events(np.array([(5 << 16) | 1]), 5, 7)


def test_input_checks() -> None:
    model = one_neuron(1, Neurons(), steps=2, input_kind="values", input_max_abs=10)
    with pytest.raises(InputError, match="input_max_abs"):
        run(model, np.array([[11], [0]]))
    with pytest.raises(InputError, match="shape"):
        run(model, np.zeros((3, 1), dtype=np.int64))
    with pytest.raises(InputError, match="integer"):
        run(model, np.array([[0.5], [0.0]]))
    # exactly integral floats are taken as the integers they are (docs/SEMANTICS.md, "Inputs")
    assert run(model, np.array([[3.0], [-2.0]])).scores.tolist() == \
        run(model, np.array([[3], [-2]])).scores.tolist()
