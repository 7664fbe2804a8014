"""The PyNN back-end (NEST), the sPyNNaker mapping and the SpiNNaker 2 exporter plan.

Tolerance (docs/backends.md, "PyNN / SpiNNaker"): before a run the back-end predicts, from the
integer reference and the float recursion NEST integrates, how NEST's results will differ
(:func:`pynn.tolerance`). A wrap of u or a clip of v is refused with ``PynnInexact``; spikes or
membrane scores that the rounding changes warn with the predicted tolerance
(``inexact="raise"`` refuses those too). The tests check NEST against both: the
prediction exactly, the reference within the stated tolerance.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from edgespike.backends import pynn, spinnaker2
from edgespike.backends.pynn import PynnInexact, PynnToleranceWarning
from edgespike.errors import EdgeSpikeError, ModelError, ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.sim import reference
from relu_mlp import train_relu_mlp

COUNT_TOLERANCE = 1

needs_nest = pytest.mark.skipif(not pynn.available(),
                                reason="PyNN + NEST not installed (pip install pyNN nest-simulator)")


def _random_model(rng: np.random.Generator, *, du: int = 1024, dv: int = 256, bias: int = 0,
                  refractory: int = 0, kind: str = "spikes", decoding: str = "spike_count",
                  exp: int = 0) -> Model:
    l0 = Layer(Weights(rng.integers(-40, 80, (20, 12)).astype(np.int8), exp=exp),
               Neurons(du=du, dv=dv, vth=60, bias_mant=bias, refractory=refractory))
    l1 = Layer(Weights(rng.integers(-60, 90, (12, 5)).astype(np.int8)),
               Neurons(du=du, dv=dv, vth=50, refractory=refractory))
    return Model(input_size=20, timesteps=20, layers=[l0, l1], input_kind=kind,
                 input_max_abs=3 if kind == "values" else 1, decoding=decoding).validate()


def _inputs(rng: np.random.Generator, model: Model, n: int) -> np.ndarray:
    shape = (n, model.timesteps, model.input_size)
    if model.input_kind == "values":
        return rng.integers(-3, 4, shape)
    return (rng.random(shape) < 0.3).astype(np.uint8)


def test_decay_time_constant_mapping() -> None:
    for d in (1, 100, 1024, 2048, 4000):
        tau = pynn.decay_to_tau(d, 1.0)
        assert math.isclose(math.exp(-1.0 / tau), 1 - d / 4096, rel_tol=1e-12)
        assert pynn.tau_to_decay(tau, 1.0) == d
    assert pynn.decay_to_tau(0, 1.0) == pytest.approx(1e8)
    assert pynn.decay_to_tau(4096, 1.0) == pytest.approx(1 / 24)
    # P21 of NEST's iaf_psc_exp against a direct numeric integral
    ts, tm = 3.0, 7.0
    y = np.linspace(0, 1, 200001)
    f = np.exp(-y / ts) * np.exp(-(1 - y) / tm)
    integral = float(((f[1:] + f[:-1]) / 2 * np.diff(y)).sum())
    assert pynn.propagator_p21(ts, tm, 1.0) == pytest.approx(integral, rel=1e-8)


def test_refused_features() -> None:
    rng = np.random.default_rng(0)
    m = _random_model(rng)
    m.layers[0].neurons.reset = "subtract"
    with pytest.raises(ModelError, match="subtraction"):
        pynn.check_supported(m)
    m = _random_model(rng)
    m.layers[1].neurons.adapt_step = 3
    with pytest.raises(ModelError, match="adaptive"):
        pynn.check_supported(m)
    m = _random_model(rng)
    m.layers[1].recurrent = Weights(np.zeros((5, 5), dtype=np.int8))
    with pytest.raises(ModelError, match="recurrent"):
        pynn.check_supported(m)


def test_synapse_lists_split_signs() -> None:
    layer = Layer(Weights(np.array([[1, -2], [0, 3]], dtype=np.int8), exp=-1))
    exc, inh = pynn.synapse_lists(layer, gain=10.0, delay_ms=1.0)
    assert exc[:, :2].tolist() == [[0, 0], [1, 1]] and exc[:, 2].tolist() == [5.0, 15.0]
    assert inh[:, :3].tolist() == [[0, 1, -10.0]]
    _, inh_mag = pynn.synapse_lists(layer, gain=10.0, delay_ms=1.0, inhibitory_sign=1.0)
    assert inh_mag[0, 2] == 10.0


CASES = {
    "cuba": {},
    "plain_lif_no_leak": {"du": 4096, "dv": 0},
    "no_memory": {"du": 4096, "dv": 4096},
    "bias": {"bias": 5},
    "refractory": {"refractory": 2},
    "direct_values": {"kind": "values"},
    "first_spike": {"decoding": "first_spike"},
    "negative_exp": {"exp": -1},
}


#: cases whose spikes PyNN reproduces exactly (the others: one rounding-flipped decision)
EXACT_CASES = {"cuba", "plain_lif_no_leak", "no_memory", "bias", "refractory", "direct_values",
               "first_spike"}


def _assert_as_predicted(tol: "pynn.PynnTolerance", ref: list, got: list) -> None:
    """NEST equals the float prediction, and differs from the reference within the tolerance."""
    for b, (r, o) in enumerate(zip(ref, got)):
        for li in range(len(r.spikes)):
            np.testing.assert_array_equal(o.spikes[li], tol.float_spikes[li][b])
        assert pynn.spike_count_tolerance(r, o) <= tol.max_count_diff
        assert np.abs(r.scores - o.scores).max() <= tol.max_score_diff
        if tol.spikes_exact:
            for li in range(len(r.spikes)):
                np.testing.assert_array_equal(o.spikes[li], r.spikes[li])
            assert o.prediction == r.prediction and o.counters == r.counters


@needs_nest
@pytest.mark.parametrize("case", sorted(CASES))
def test_nest_matches_integer_reference(case: str) -> None:
    rng = np.random.default_rng(sorted(CASES).index(case) + 1)
    model = _random_model(rng, **CASES[case])
    x = _inputs(rng, model, 6)
    ref = reference.run_batch(model, x)
    total = sum(int(r.spikes[-1].sum()) for r in ref)
    assert total > 20, "test model too quiet to compare"
    tol = pynn.tolerance(model, x)
    assert tol.spikes_exact == (case in EXACT_CASES), tol.summary()
    if tol.spikes_exact:
        got = pynn.run_batch(model, x, inexact="raise")
    else:  # rounding flips a decision: a warning by default, refused on request
        assert not (tol.u_wraps or tol.v_clips)
        with pytest.raises(PynnInexact, match="differing spikes"):
            pynn.run_batch(model, x, inexact="raise")
        with pytest.warns(PynnToleranceWarning, match="differing spikes"):
            got = pynn.run_batch(model, x)
    assert len(got) == len(ref)
    _assert_as_predicted(tol, ref, got)


@needs_nest
@pytest.mark.parametrize("decoding, bound", [("membrane_last", 22), ("membrane_sum", 195)])
def test_membrane_decoding_close(decoding: str, bound: int) -> None:
    """Same spikes, membrane scores off by the trunc0 rounding: a warning states the bound."""
    rng = np.random.default_rng(11)
    model = _random_model(rng, decoding=decoding)
    x = _inputs(rng, model, 4)
    tol = pynn.tolerance(model, x)
    assert tol.spikes_exact and tol.max_score_diff == bound, tol.summary()
    with pytest.warns(PynnToleranceWarning, match=f"up to {tol.max_score_diff} integer units"):
        got = pynn.run_batch(model, x)
    _assert_as_predicted(tol, reference.run_batch(model, x), got)


@needs_nest
def test_registry_and_single_input() -> None:
    from edgespike.backends import get_backend

    backend = get_backend("pynn")
    rng = np.random.default_rng(3)
    model = _random_model(rng)
    x = _inputs(rng, model, 1)[0]
    out = backend.run_batch(model, x)
    assert len(out) == 1 and out[0].scores.shape == (5,)
    assert (out[0].spikes[0] == reference.run(model, x).spikes[0]).all()


def _digits_snn(timesteps: int = 16) -> tuple[Model, np.ndarray, np.ndarray]:
    """A ReLU MLP trained on scikit-learn's digits (a few seconds), converted to an int8 SNN.

    Input: deterministic rate code (pixel value p of 0..16 gives p evenly spaced spikes in 16
    steps). Conversion: weights normalised by the 99th percentile of each layer's activation
    (threshold 1), scaled so the largest is 127, integrate-and-fire with reset to zero.
    """
    torch = pytest.importorskip("torch")
    sk = pytest.importorskip("sklearn.datasets")
    torch.manual_seed(0)
    digits = sk.load_digits()
    x, y = digits.data.astype(np.int64), digits.target
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1437], order[1437:]
    mlp, lam1, lam2 = train_relu_mlp(x, y, train, hidden=48, epochs=80)
    with torch.no_grad():
        w1 = (mlp[0].weight / lam1).numpy().T
        w2 = (mlp[2].weight * lam1 / lam2).numpy().T
    layers = []
    for w in (w1, w2):
        unit = 127.0 / np.abs(w).max()
        layers.append(Layer(Weights(np.round(w * unit).astype(np.int8)),
                            Neurons(du=4096, dv=0, vth=int(round(unit)))))
    model = Model(input_size=64, timesteps=timesteps, layers=layers, name="digits").validate()
    t = np.arange(timesteps)[:, None, None]
    spikes = ((t + 1) * x[None] // 16 - t * x[None] // 16).transpose(1, 0, 2).astype(np.uint8)
    return model, spikes[test], y[test]


@needs_nest
def test_trained_digits_classification_agreement() -> None:
    model, x, y = _digits_snn()
    assert pynn.tolerance(model, x).exact  # du = 4096, dv = 0, exp = 0: nothing to round
    start = time.perf_counter()
    ref = reference.run_batch(model, x)
    got = pynn.run_batch(model, x)
    elapsed = time.perf_counter() - start
    ref_pred = np.array([r.prediction for r in ref])
    got_pred = np.array([o.prediction for o in got])
    assert (ref_pred == y).mean() > 0.85, "the converted SNN should classify digits"
    agreement = (ref_pred == got_pred).mean()
    assert agreement >= 0.95, f"NEST agrees with the integer reference on {agreement:.1%}"
    worst = max(pynn.spike_count_tolerance(r, o) for r, o in zip(ref, got))
    assert worst <= COUNT_TOLERANCE
    print(f"digits: {len(y)} test samples, reference acc {(ref_pred == y).mean():.3f}, "
          f"NEST agreement {agreement:.3f}, worst count diff {worst}, {elapsed:.1f} s")


@pytest.mark.skipif(not pynn.spynnaker_available(),
                    reason="sPyNNaker not installed (pip install 'sPyNNaker==1!7.4.1')")
def test_spinnaker_virtual_mapping(tmp_path) -> None:
    rng = np.random.default_rng(5)
    model = _random_model(rng)
    mapping = pynn.map_spinnaker(model, home=str(tmp_path))
    labels = {p[0].split("(")[0] for p in mapping.placements}
    assert labels == {"input", "layer0", "layer1"}
    assert mapping.cores_used == 3 and mapping.routing_entries >= 2
    for check in mapping.weights:
        assert check.exact, check
        assert check.max_fixed <= 65535 and check.max_error_units < 0.5


def test_spinnaker2_plan() -> None:
    model = Model(input_size=3, timesteps=5, layers=[
        Layer(Weights(np.array([[1, -1], [0, 1], [1, 0]], dtype=np.int8), encoding="ternary",
                      a_pos=5, a_neg=3, exp=-1),
              Neurons(du=2048, dv=100, vth=4, bias_mant=2, reset="subtract"), name="hid"),
    ]).validate()
    x = np.zeros((5, 3), dtype=np.uint8)
    x[0, 2] = x[3, 0] = 1
    p = spinnaker2.plan(model, x)
    assert [s.name for s in p.populations] == ["input", "hid"]
    assert p.populations[0].params == {0: [3], 1: [], 2: [0]}
    params = p.populations[1].params
    assert params["threshold"] == [8.0, 8.0]  # vth << 6 / 64, times 2 for exp = -1
    assert params["reset"] == "reset_by_subtraction"
    assert params["alpha_decay"] == pytest.approx(1 - 100 / 4096)
    assert sorted(p.projections[0].connections) == [[0, 0, 5, 0], [0, 1, -3, 0], [1, 1, 5, 0],
                                                   [2, 0, 5, 0]]
    big = Model(input_size=1, timesteps=2, layers=[Layer(Weights(np.array([[100]], np.int8)))])
    with pytest.raises(ModelError, match="4-bit"):
        spinnaker2.plan(big)


@pytest.mark.skipif(spinnaker2.available(), reason="py-spinnaker2 is installed here")
def test_spinnaker2_absent_is_reported() -> None:
    model = Model(input_size=1, timesteps=2, layers=[Layer(Weights(np.array([[1]], np.int8)))])
    with pytest.raises(ToolMissing, match="py-spinnaker2"):
        spinnaker2.run_batch(model, np.zeros((2, 1), np.uint8), eth_ip="192.168.1.1")
    with pytest.raises(ToolMissing):
        spinnaker2.export_via_nir(model)


@pytest.mark.skipif(not spinnaker2.available(),
                    reason="py-spinnaker2 is not on PyPI and not installed here")
def test_spinnaker2_network_builds() -> None:
    model = Model(input_size=2, timesteps=3, layers=[Layer(Weights(np.array([[1], [-2]], np.int8)))])
    net, pops = spinnaker2.build_network(spinnaker2.plan(model))
    assert set(pops) == {"input", "layer0"}


# --------------------------------------------------------------------------- issue 12, case 4

def _wrapping_model() -> Model:
    """u += 127 << 9 << 6 (about 2^22) per step and never decays: it wraps from step 1 on."""
    return Model(input_size=2, timesteps=20, layers=[
        Layer(Weights(np.array([[127, 60], [127, 60]], np.int8), exp=9),
              Neurons(du=1, dv=4096, vth=100000))]).validate()


def test_issue12_case4_wrap_of_u_is_refused_up_front() -> None:
    """Where the 24-bit u wraps, NEST's float u does not: refused before NEST is touched."""
    model, x = _wrapping_model(), np.ones((1, 20, 2), np.int64)
    tol = pynn.tolerance(model, x)
    assert tol.u_wraps == 15 and not tol.spikes_exact
    assert "u wraps" in tol.first and tol.max_count_diff == 16
    for policy in ("auto", "raise"):
        with pytest.raises(PynnInexact, match="15 wraps of the 24-bit current u") as err:
            pynn.run_batch(model, x, inexact=policy)
    assert err.value.tolerance.max_count_diff == 16
    with pytest.raises(EdgeSpikeError, match="inexact"):
        pynn.run_batch(model, x, inexact="ignore")


def test_issue12_case4_clip_of_v_is_refused_up_front() -> None:
    """v saturates at -(2^23 - 1) under a constant negative bias; the float v keeps falling."""
    model = Model(input_size=1, timesteps=20, decoding="membrane_last", layers=[
        Layer(Weights(np.array([[1]], np.int8)),
              Neurons(du=4096, dv=0, vth=100, bias_mant=-4096, bias_exp=7))]).validate()
    x = np.zeros((1, 20, 1), np.int64)
    tol = pynn.tolerance(model, x)
    assert tol.v_clips == 5 and tol.spike_mismatches == 0 and not tol.spikes_exact
    # the float v falls to about -20 * 4096 * 128 (dv = 0 is a 1e8 ms leak: a unit or two less)
    assert abs(tol.max_score_diff - (20 * 4096 * 128 - (2**23 - 1))) <= 2
    with pytest.raises(PynnInexact, match="5 clips of the 24-bit voltage v"):
        pynn.run_batch(model, x)


@needs_nest
def test_issue12_case4_wrap_with_warn_runs_as_predicted() -> None:
    """inexact='warn' runs anyway; NEST gives the predicted (wrong by 16 spikes) raster."""
    model, x = _wrapping_model(), np.ones((1, 20, 2), np.int64)
    tol = pynn.tolerance(model, x)
    with pytest.warns(PynnToleranceWarning, match="up to 16 per neuron"):
        got = pynn.run_batch(model, x, inexact="warn")
    ref = reference.run_batch(model, x)
    assert pynn.spike_count_tolerance(ref[0], got[0]) == 16  # what used to pass silently
    _assert_as_predicted(tol, ref, got)


@needs_nest
def test_issue12_case4_negative_exponent_membrane_tolerance() -> None:
    """No leak, exponent -8, odd weights: the floor NEST does not do moves v by thousands of
    units over 200 steps. Same spikes, so it runs, with a warning that states the bound."""
    rng = np.random.default_rng(0)
    model = Model(input_size=16, timesteps=200, decoding="membrane_last", layers=[
        Layer(Weights((rng.integers(-60, 61, (16, 3)) | 1).astype(np.int8), exp=-8),
              Neurons(du=4096, dv=0, vth=131071))]).validate()
    x = (rng.random((2, 200, 16)) < 0.5).astype(np.uint8)
    tol = pynn.tolerance(model, x)
    assert tol.spikes_exact and tol.max_score_diff == 7050
    with pytest.warns(PynnToleranceWarning, match="up to 7050 integer units"):
        got = pynn.run_batch(model, x)
    ref = reference.run_batch(model, x)
    _assert_as_predicted(tol, ref, got)
    assert max(int(np.abs(r.scores - o.scores).max()) for r, o in zip(ref, got)) == 7050
