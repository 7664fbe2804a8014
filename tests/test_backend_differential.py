"""Differential test: the Lava and PyNN back-ends against the integer reference, on models drawn
from the whole space ``Model.validate()`` accepts (issue 12), not the space the adapters were
designed for.

The models come from :mod:`strategies` (saturating currents and wraps of u, clips of v, 1-step
models, width-1 layers, all-zero layers, recurrent layers, per-neuron thresholds and biases,
every decoding, int8 and ternary, fan-ins up to 300, weight exponents from -31 to 16, direct
inputs at +-input_max_abs). A quarter of them are drawn as they come; the others have only the
features a back-end lacks taken out (reset by subtraction, refractory periods, adaptive
thresholds, recurrence, too many distinct thresholds), so that most runs reach the simulator
while keeping everything else of the full space.

Each back-end must, for every drawn model and input:

* Lava: refuse up front with a named ``ModelError`` (``check_model``, before any worker starts),
  or equal the reference exactly: the spikes of every layer, final u and v, scores, prediction
  and counters.
* PyNN (NEST): refuse up front (``check_supported``, or ``PynnInexact`` where u wraps or v
  clips), or run and stay within the tolerance it computed before the run: NEST's rasters are
  the predicted ones, spike counts and scores differ from the reference by no more than
  predicted, a warning is given whenever the prediction is not exact, and a run the prediction
  calls exact equals the reference.

A cheap property over many more models checks the Lava mapping's arithmetic without Lava:
every Dense the adapter emits, evaluated with Lava's int32 Dense arithmetic, gives the
reference's synaptic input, and no graded sum can overflow.

Run time (2 cores, shared): under a minute with Lava and NEST, about 15 s without them.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from edgespike.backends import lava as lava_backend
from edgespike.backends import pynn
from edgespike.errors import ModelError
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.sim import reference
from strategies import inputs, models
from test_backend_lava import lava_dense_sum

SETTINGS = dict(deadline=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Simulator runs take seconds: report a failing example as drawn, without shrinking it.
NO_SHRINK = dict(SETTINGS, phases=[Phase.explicit, Phase.generate])


# --------------------------------------------------------------------------- strategies

def _without(model: Model, seed: int, *, recurrent: bool) -> Model:
    """``model`` with the features no bit-accurate back-end model has taken out, in place.

    Weights, exponents, decays, biases, sizes, inputs and decoding stay as drawn. Per-neuron
    thresholds are kept, folded onto at most three distinct values.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        n = layer.neurons
        n.reset, n.refractory, n.adapt_step, n.adapt_decay = "zero", 0, 0, 0
        n.du = max(n.du, 1)      # Lava: our du is its du + 1
        n.dv = min(n.dv, 4095)   # Lava: 12-bit dv
        if np.ndim(n.vth):
            levels = rng.choice(np.unique(n.vth), size=min(3, np.unique(n.vth).size),
                                replace=False)
            n.vth = levels[rng.integers(0, levels.size, layer.size)]
        if not recurrent:
            layer.recurrent = None
    return model.validate()


@st.composite
def cases(draw, *, tailored_for: str, max_input: int, max_width: int, max_timesteps: int,
          batch: int = 2) -> tuple[Model, np.ndarray]:
    """A (model, inputs) pair: from the full space, or with unsupported features taken out."""
    model = draw(models(max_layers=3, max_width=max_width, max_input=max_input,
                        max_timesteps=max_timesteps))
    if draw(st.sampled_from((True, True, True, False))):  # unsupported features taken out
        model = _without(model, draw(st.integers(0, 2**32 - 1)),
                         recurrent=tailored_for == "lava")
    return model, draw(inputs(model, batch=batch))


def _model(layers: list[Layer], **kw) -> Model:
    return Model(input_size=layers[0].weights.fan_in, layers=layers, **kw).validate()


def _issue12_case1() -> tuple[Model, np.ndarray]:
    w = np.full((260, 1), 127, np.int8)
    w[259, 0] = -128
    m = _model([Layer(Weights(w, exp=-14), Neurons(du=4096, dv=0, vth=65000))], timesteps=1,
               input_kind="values", input_max_abs=32767, decoding="membrane_last")
    x = np.zeros((2, 1, 260), np.int64)
    x[:, 0, :259] = 32767
    return m, x


def _recurrence_only_populations() -> tuple[Model, np.ndarray]:
    """Found by this test: a layer of three populations (three thresholds) with all-zero
    feed-forward weights, joined only by recurrent weights: none reached Lava's run."""
    rec = np.zeros((7, 7), np.int8)
    rec[0, [0, 2, 4]] = [80, -25, -78]
    rec[1, [0, 2, 3]] = [31, 102, -52]
    rec[6, [0, 2, 5, 6]] = [65, -1, -70, 73]
    m = _model([Layer(Weights(np.zeros((1, 7), np.int8), exp=16),
                      Neurons(du=1, vth=np.array([8, 8, 8, 8, 7, 10, 7]),
                              bias_mant=np.array([3539, -2584, -3155, -3012, 1876, 3852, 3501])),
                      recurrent=Weights(rec, exp=8)),
                Layer(Weights(np.zeros((7, 1), np.int8), exp=16),
                      Neurons(du=1, vth=2, bias_mant=3216))], timesteps=3)
    return m, np.zeros((2, 3, 1), np.int64)


def _saturating_direct() -> tuple[Model, np.ndarray]:
    """Signed direct input at +-input_max_abs against weights of both signs: |a_in| reaches
    nearly 2^18 (twice the validator's max(P, N) bound), u wraps, v clips."""
    w = np.where(np.arange(40)[:, None] % 2 == 0, 127, -128).astype(np.int8) * np.ones((1, 3),
                                                                                     np.int8)
    m = _model([Layer(Weights(w, exp=-10), Neurons(du=64, dv=1, vth=131071, bias_mant=4095,
                                                  bias_exp=7))],
               timesteps=6, input_kind="values", input_max_abs=32767, decoding="membrane_sum")
    x = np.where(np.arange(40) % 2 == 0, 32767, -32767) * np.ones((2, 6, 1), np.int64)
    x[1] = -x[1]
    return m, x


def _wrap_for_pynn() -> tuple[Model, np.ndarray]:
    m = _model([Layer(Weights(np.array([[127, 60], [127, 60]], np.int8), exp=9),
                      Neurons(du=1, dv=4096, vth=100000))], timesteps=20)
    return m, np.ones((2, 20, 2), np.int64)


# --------------------------------------------------------------------------- Lava

@pytest.fixture(scope="module")
def lava_env() -> None:
    if not lava_backend.available():
        pytest.skip(f"the Lava environment is absent ({lava_backend.lava_python()}); "
                    "create it with: bash scripts/setup_lava.sh")


def _assert_lava_exact(model: Model, x: np.ndarray) -> None:
    got = lava_backend.run_batch(model, x)
    want = reference.run_batch(model, x)
    assert len(got) == len(want)
    for b, (g, w) in enumerate(zip(got, want)):
        for li in range(len(model.layers)):
            np.testing.assert_array_equal(g.spikes[li], w.spikes[li], err_msg=f"{b}: layer {li}")
            np.testing.assert_array_equal(g.u[li], w.u[li], err_msg=f"{b}: u of layer {li}")
            np.testing.assert_array_equal(g.v[li], w.v[li], err_msg=f"{b}: v of layer {li}")
        np.testing.assert_array_equal(g.scores, w.scores, err_msg=f"{b}: scores")
        assert g.prediction == w.prediction and g.counters == w.counters, b


@settings(max_examples=8, **NO_SHRINK)
@given(case=cases(tailored_for="lava", max_input=300, max_width=16, max_timesteps=6))
@example(case=_issue12_case1())  # cases 2 and 3 run in test_backend_lava.py
@example(case=_recurrence_only_populations())
@example(case=_saturating_direct())
def test_lava_exact_or_refused(lava_env, case: tuple[Model, np.ndarray]) -> None:
    model, x = case
    try:
        lava_backend.check_model(model)
    except ModelError as exc:  # refused up front, by name, before any worker starts
        event(f"refused: {type(exc).__name__}: {str(exc).split(':')[1][:40]}")
        assert str(exc)
        with pytest.raises(type(exc)):
            lava_backend.plan(model, x)
        return
    event("ran on Lava")
    _assert_lava_exact(model, x)


@settings(max_examples=150, **SETTINGS)
@given(case=cases(tailored_for="lava", max_input=300, max_width=32, max_timesteps=1))
@example(case=_issue12_case1())
@example(case=_saturating_direct())
def test_lava_mapping_arithmetic(case: tuple[Model, np.ndarray]) -> None:
    """Without Lava: the adapter's Denses, in Lava's int32 Dense arithmetic, give a_in exactly.

    For every layer, inputs at the extremes (+-input_max_abs for direct input, all-ones and
    random spikes otherwise) go through every Dense the plan feeds into each population; the
    sums must equal ``shift(x @ W, exp)`` of the reference, and every graded int32 sum must fit.
    """
    model, _ = case
    try:
        lava_backend.check_model(model)
    except ModelError:
        return
    rng = np.random.default_rng(0)
    blocks = list(lava_backend.dense_blocks(model))
    for li, layer in enumerate(model.layers):
        for rec in (False, True):
            weights = layer.recurrent if rec else layer.weights
            if weights is None:
                continue
            values = li == 0 and model.input_kind == "values" and not rec
            bound = model.input_bound() if values else 1
            w = weights.integer_matrix()
            n = w.shape[0]
            if values:  # +-bound with the sign that adds up per neuron, all +bound, random
                xs = np.stack([np.where(w[:, k] >= 0, bound, -bound) for k in
                               range(min(w.shape[1], 4))] + [np.full(n, bound),
                               rng.integers(-bound, bound + 1, n)])
            else:
                xs = np.stack([np.ones(n), rng.random(n) < 0.5, np.zeros(n)])
            xs = xs.astype(np.int64)
            want = reference.shift(xs @ w, weights.exp)
            got = np.zeros_like(want)
            for blk in blocks:
                if blk.layer != li or blk.recurrent != rec:
                    continue
                if values:
                    assert lava_backend.dense_accumulator_bound(blk.spec, bound) < 1 << 31
                    acc = xs[:, blk.rows] @ blk.spec.weights.T.astype(np.int64)
                    assert np.abs(acc).max() < 1 << 31
                got[:, blk.cols] += lava_dense_sum(blk.spec, xs[:, blk.rows])
            np.testing.assert_array_equal(got, want, err_msg=f"layer {li}, recurrent={rec}")


# --------------------------------------------------------------------------- PyNN (NEST)

needs_nest = pytest.mark.skipif(
    not pynn.available(), reason="PyNN + NEST not installed (pip install pyNN nest-simulator)")


@needs_nest
@settings(max_examples=60, **NO_SHRINK)
@given(case=cases(tailored_for="pynn", max_input=48, max_width=16, max_timesteps=16))
@example(case=_wrap_for_pynn())
@example(case=_saturating_direct())
def test_pynn_within_its_stated_tolerance(case: tuple[Model, np.ndarray]) -> None:
    model, x = case
    try:
        pynn.check_supported(model)
    except ModelError as exc:
        event(f"refused: {str(exc).split(':')[1][:30]}")
        return  # refused up front by name (reset by subtraction, adaptive, recurrent)
    tol = pynn.tolerance(model, x)
    event("exact" if tol.exact else "spikes exact" if tol.spikes_exact
          else "refused: wrap/clip" if tol.u_wraps or tol.v_clips else "rounding flips spikes")
    if tol.u_wraps or tol.v_clips:
        with pytest.raises(pynn.PynnInexact, match="wraps|clips"):
            pynn.run_batch(model, x)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = pynn.run_batch(model, x)
    warned = [w for w in caught if issubclass(w.category, pynn.PynnToleranceWarning)]
    assert bool(warned) == (not tol.exact), tol.summary()
    ref = reference.run_batch(model, x)
    for b, (r, o) in enumerate(zip(ref, got)):
        if not tol.close_calls:  # NEST computes what was predicted
            for li in range(len(model.layers)):
                np.testing.assert_array_equal(o.spikes[li], tol.float_spikes[li][b])
        assert pynn.spike_count_tolerance(r, o) <= tol.max_count_diff, tol.summary()
        assert np.abs(r.scores - o.scores).max() <= tol.max_score_diff, tol.summary()
        if tol.spikes_exact:
            for li in range(len(model.layers)):
                np.testing.assert_array_equal(o.spikes[li], r.spikes[li])
            assert o.prediction == r.prediction and o.counters == r.counters


@settings(max_examples=150, **SETTINGS)
@given(case=cases(tailored_for="pynn", max_input=64, max_width=32, max_timesteps=24))
def test_pynn_prediction_is_consistent(case: tuple[Model, np.ndarray]) -> None:
    """Without NEST: the tolerance's integer pass is the reference, and its verdicts agree."""
    model, x = case
    try:
        tol = pynn.tolerance(model, x)
    except ModelError:
        return
    ref = reference.run_batch(model, x)
    flt = tol.float_spikes
    mismatches = sum(int((r.spikes[li] != flt[li][b]).sum())
                     for b, r in enumerate(ref) for li in range(len(model.layers)))
    assert mismatches == tol.spike_mismatches
    ref_scores = np.stack([r.scores for r in ref])
    assert np.abs(ref_scores - tol.float_scores).max() <= tol.max_score_diff
    if tol.spikes_exact and not model.decoding.startswith("membrane"):
        np.testing.assert_array_equal(ref_scores, tol.float_scores)
