"""The Lava (Loihi 2) back-end against the numpy integer reference.

The mapping tests run everywhere (they check the weight encoding against an emulation of Lava's
Dense arithmetic, and the refusals). The end-to-end tests need the Lava environment
(``bash scripts/setup_lava.sh``) and are skipped, saying so, when it is absent.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgespike.backends import lava as lava_backend
from edgespike.errors import ModelError, ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.sim import reference


# --------------------------------------------------------------------------- helpers

def lava_dense_sum(spec: lava_backend.DenseSpec, x: np.ndarray) -> np.ndarray:
    """What lava.proc.dense PyDenseModelBitAcc delivers for input ``x`` (batch x fan_in).

    Copied from lava-nc 0.10: clip_weights(num_bits=8), truncate_weights(num_weight_bits=8),
    weights.dot(s_in), then left shift (exp > 0) or arithmetic right shift.
    """
    w = spec.weights.astype(np.int64)
    mixed = spec.sign_mode == lava_backend.SIGN_MIXED
    inhib = spec.sign_mode == lava_backend.SIGN_INHIBITORY
    if inhib:
        w = -w
    w = np.clip(w, -256 * mixed, 255)
    w = (w >> int(mixed)) << int(mixed)
    if inhib:
        w = -w
    acc = x.astype(np.int64) @ w.T
    e = spec.weight_exp
    return acc << e if e > 0 else acc >> -e


def fit_exp(w: np.ndarray, bound: int, target: int) -> int:
    """A weight exponent that keeps the worst-case |a_in| near ``target`` (and legal)."""
    worst = int(max(np.clip(w, 0, None).sum(axis=0).max(), np.clip(-w, 0, None).sum(axis=0).max()))
    worst = max(worst * bound, 1)
    exp = 0
    while worst * 2.0 ** exp > target:
        exp -= 1
    return exp


def random_weights(rng: np.random.Generator, fan_in: int, fan_out: int, ternary: bool,
                   bound: int, density: float, max_mag: int = 127) -> Weights:
    mask = rng.random((fan_in, fan_out)) < density
    if ternary:
        codes = (rng.integers(-1, 2, (fan_in, fan_out)) * mask).astype(np.int8)
        per_neuron = rng.random() < 0.5
        shape = fan_out if per_neuron else None
        a_pos = rng.integers(1, max_mag + 1, shape)
        a_neg = rng.integers(1, max_mag + 1, shape)
        if not per_neuron:
            a_pos, a_neg = int(a_pos), int(a_neg)
        w = Weights(codes, encoding="ternary", a_pos=a_pos, a_neg=a_neg)
    else:
        w = Weights((rng.integers(-128, 128, (fan_in, fan_out)) * mask).astype(np.int8))
    target = int(rng.choice([1 << 6, 1 << 8, 1 << 10, 1 << 13]))
    w.exp = fit_exp(w.integer_matrix(), bound, target)
    return w


def random_model(seed: int, *, ternary: bool, values: bool = False, decoding: str = "spike_count",
                 per_neuron_vth: bool = False, big_ternary: bool = False) -> Model:
    """A random, valid, Lava-mappable model with 1-3 layers of width up to 64.

    ``per_neuron_vth`` gives the output layer 2-4 distinct thresholds (several LIF processes).
    """
    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(1, 4))
    n_in = int(rng.integers(4, 65))
    widths = [int(rng.integers(2, 65)) for _ in range(n_layers)]
    layers = []
    fan_in = n_in
    for li, size in enumerate(widths):
        bound = 7 if (values and li == 0) else 1
        w = random_weights(rng, fan_in, size, ternary, bound, float(rng.uniform(0.2, 0.9)),
                           max_mag=255 if big_ternary else 127)
        if big_ternary:
            w.exp = max(w.exp, 0)
        rec = None
        if rng.random() < 0.5:
            rec = random_weights(rng, size, size, ternary, 1, float(rng.uniform(0.1, 0.5)),
                                 max_mag=255 if big_ternary else 127)
            if big_ternary:
                rec.exp = max(rec.exp, 0)
        last = li == n_layers - 1
        if per_neuron_vth and last and rec is not None:
            rec.exp = max(rec.exp, 0)  # split populations need left shifts (see lava.py)
        typical = max(1, int(np.abs(w.integer_matrix()).sum(axis=0).mean() * 2.0 ** w.exp * 0.3))
        if per_neuron_vth and last:
            levels = rng.integers(0, 2 * typical + 1, int(rng.integers(2, 5)))
            vth = levels[rng.integers(0, levels.size, size)]
        else:
            vth = int(rng.integers(0, 2 * typical + 1))
        neurons = Neurons(
            du=int(rng.choice([1, int(rng.integers(1, 4097)), 4096])),
            dv=int(rng.choice([0, int(rng.integers(0, 4096)), 4095])),
            vth=vth,
            bias_mant=(rng.integers(-200, 200, size) if rng.random() < 0.5
                       else int(rng.integers(-100, 100))) * (rng.random() < 0.7),
            bias_exp=int(rng.integers(0, 8)),
        )
        layers.append(Layer(w, neurons, recurrent=rec))
        fan_in = size
    model = Model(input_size=n_in, timesteps=int(rng.integers(5, 25)), layers=layers,
                  input_kind="values" if values else "spikes", input_max_abs=7,
                  decoding=decoding)
    try:
        return model.validate()
    except ModelError:  # a rare draw over the a_in bound: tighten and retry
        return random_model(seed + 10_000, ternary=ternary, values=values, decoding=decoding,
                            per_neuron_vth=per_neuron_vth, big_ternary=big_ternary)


def random_inputs(model: Model, batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (batch, model.timesteps, model.input_size)
    if model.input_kind == "values":
        return rng.integers(-model.input_max_abs, model.input_max_abs + 1, shape)
    return (rng.random(shape) < rng.uniform(0.1, 0.6)).astype(np.uint8)


# --------------------------------------------------------------------------- mapping (no Lava)

@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ternary=st.booleans(), exp=st.integers(-12, 3),
       mag=st.sampled_from([1, 2, 64, 127, 128, 200, 255]), graded=st.booleans())
def test_weight_encoding_is_exact(seed: int, ternary: bool, exp: int, mag: int,
                                  graded: bool) -> None:
    """Every Dense the adapter emits, run with Lava's arithmetic, gives shift(x @ W, exp)."""
    rng = np.random.default_rng(seed)
    fan_in, fan_out = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    sign = rng.integers(0, 3)  # 0 mixed, 1 positive only, 2 negative only
    if ternary:
        codes = rng.integers(-1, 2, (fan_in, fan_out))
        w = np.where(codes > 0, mag, np.where(codes < 0, -int(rng.integers(1, mag + 1)), 0))
    else:
        w = rng.integers(-128, 128, (fan_in, fan_out)) << int(rng.integers(0, 3)) >> 2
    if sign == 1:
        w = np.abs(w)
    elif sign == 2:
        w = -np.abs(w)
    x = (rng.integers(-7, 8, (5, fan_in)) if graded else rng.integers(0, 2, (5, fan_in)))
    try:
        specs = lava_backend._encode_weights(w, exp, "test")
    except ModelError:
        # only mixed-sign matrices outside [-128, 127] with a negative exponent are refused
        assert w.min() < 0 < w.max() and exp < 0 and (w.max() > 127 or w.min() < -128)
        return
    got = sum((lava_dense_sum(s, x) for s in specs), np.zeros((5, fan_out), np.int64))
    assert np.array_equal(got, reference.shift(x @ w, exp))
    for s in specs:
        assert s.weights.shape == (fan_out, fan_in)


def _one_layer(**neurons) -> Model:
    return Model(input_size=3, timesteps=4,
                 layers=[Layer(Weights(np.ones((3, 2), np.int8)), Neurons(**neurons))])


@pytest.mark.parametrize("neurons, words", [
    (dict(reset="subtract"), "reset-by-subtraction"),
    (dict(refractory=2), "refractory"),
    (dict(adapt_step=3, adapt_decay=100), "adaptive"),
    (dict(du=0), "du=0"),
    (dict(dv=4096), "dv=4096"),
    (dict(vth=np.arange(2) + 100 * 0), None),
])
def test_unsupported_models_are_refused(neurons: dict, words) -> None:
    model = _one_layer(**neurons)
    if words is None:  # two distinct thresholds: mapped onto two LIF processes, accepted
        lava_backend.check_model(model)
        return
    with pytest.raises(ModelError, match=words):
        lava_backend.check_model(model)


def test_too_many_thresholds_and_unfit_weights_are_refused() -> None:
    n = lava_backend.MAX_GROUPS_PER_LAYER + 1
    model = Model(input_size=3, timesteps=4,
                  layers=[Layer(Weights(np.ones((3, n), np.int8)), Neurons(vth=np.arange(n)))])
    with pytest.raises(ModelError, match="distinct thresholds"):
        lava_backend.check_model(model)
    two = Model(input_size=3, timesteps=4, layers=[
        Layer(Weights(np.ones((3, 2), np.int8)), Neurons(vth=np.array([5, 6]))),
        Layer(Weights(np.ones((2, 2), np.int8), exp=-1), Neurons())])
    with pytest.raises(ModelError, match="exponent -1 < 0"):
        lava_backend.check_model(two)
    two.layers[1].weights.exp = 0
    lava_backend.check_model(two)
    tern = Weights(np.array([[1, -1], [-1, 0]], np.int8), encoding="ternary", a_pos=255,
                   a_neg=3, exp=-1)
    model = Model(input_size=2, timesteps=4, layers=[Layer(tern, Neurons())])
    with pytest.raises(ModelError, match="neuron 0: .*a_pos <= 127"):
        lava_backend.check_model(model)
    # neuron 1's weights are one-signed (-3, 0): only neuron 0 mixes 255 and -3
    tern.values[1, 0] = 0
    lava_backend.check_model(model)


def test_missing_environment_is_reported(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EDGESPIKE_LAVA_PYTHON", str(tmp_path / "nope" / "python"))
    assert lava_backend.available() is False
    model = random_model(1, ternary=False)
    with pytest.raises(ToolMissing, match="setup_lava.sh"):
        lava_backend.run_batch(model, random_inputs(model, 1, 0))


def test_plan_alignment() -> None:
    """Layer l runs l + 1 Lava steps late; each inference takes timesteps + layers steps."""
    model = random_model(3, ternary=False, per_neuron_vth=True)
    p = lava_backend.plan(model, random_inputs(model, 2, 0))
    assert p.plan["period"] == model.timesteps + len(model.layers)
    for li, entries in enumerate(p.groups):
        assert sorted(np.concatenate([idx for _, idx in entries]).tolist()) == \
            list(range(model.layers[li].size))
        for pi, _ in entries:
            assert p.plan["pops"][pi]["lag"] == li + 1
            assert p.plan["pops"][pi]["du"] == model.layers[li].neurons.du - 1


# --------------------------------------------------------------------------- end to end (Lava)

@pytest.fixture(scope="module")
def lava_env() -> None:
    if not lava_backend.available():
        pytest.skip(f"the Lava environment is absent ({lava_backend.lava_python()}); "
                    "create it with: bash scripts/setup_lava.sh")


CASES = [
    # seed, ternary, values, decoding, per-neuron vth, big ternary magnitudes
    (11, False, False, "spike_count", False, False),
    (12, True, False, "first_spike", False, False),
    (13, False, False, "membrane_sum", True, False),
    (14, True, False, "membrane_last", True, False),
    (15, False, True, "spike_count", False, False),
    (16, True, False, "spike_count", False, True),
    (17, True, True, "membrane_sum", True, False),
]


@pytest.mark.parametrize("seed, ternary, values, decoding, per_vth, big", CASES)
def test_lava_matches_reference(lava_env, seed, ternary, values, decoding, per_vth, big) -> None:
    model = random_model(seed, ternary=ternary, values=values, decoding=decoding,
                         per_neuron_vth=per_vth, big_ternary=big)
    x = random_inputs(model, 3, seed)
    got = lava_backend.run_batch_detailed(model, x)
    want = reference.run_batch(model, x)
    assert got.lava_steps == 3 * (model.timesteps + len(model.layers))
    total_spikes = 0
    for g, w in zip(got.outputs, want):
        for li in range(len(model.layers)):
            np.testing.assert_array_equal(g.spikes[li], w.spikes[li], err_msg=f"layer {li}")
            np.testing.assert_array_equal(g.u[li], w.u[li], err_msg=f"u of layer {li}")
            np.testing.assert_array_equal(g.v[li], w.v[li], err_msg=f"v of layer {li}")
            total_spikes += int(w.spikes[li].sum())
        np.testing.assert_array_equal(g.scores, w.scores)
        assert g.prediction == w.prediction
        assert g.counters == w.counters
    assert total_spikes > 0, "a silent network would make this comparison vacuous"


def test_lava_refuses_bad_input(lava_env) -> None:
    from edgespike.errors import InputError
    model = random_model(11, ternary=False)
    with pytest.raises(InputError):
        lava_backend.run_batch(model, np.full((1, model.timesteps, model.input_size), 2))


def test_lava_population_without_input(lava_env) -> None:
    """A LIF whose weights are all zero (only its bias drives it) still runs, aligned."""
    rng = np.random.default_rng(1)
    w2 = np.zeros((6, 4), np.int8)
    w2[:, 2] = 50  # neurons 1 and 3 (threshold 2) get no synapse at all
    model = Model(input_size=5, timesteps=10, layers=[
        Layer(Weights(rng.integers(-128, 128, (5, 6)).astype(np.int8), exp=-2),
              Neurons(du=100, dv=10, vth=np.array([5, 5, 9, 9, 9, 30]), bias_mant=3)),
        Layer(Weights(w2, exp=0), Neurons(du=4096, vth=np.array([1, 2, 1, 2]),
                                          bias_mant=np.array([0, 70, 0, 0]), bias_exp=1)),
    ]).validate()
    x = (rng.random((2, 10, 5)) < 0.5).astype(np.uint8)
    got, want = lava_backend.run_batch(model, x), reference.run_batch(model, x)
    for g, w in zip(got, want):
        for li in range(2):
            np.testing.assert_array_equal(g.spikes[li], w.spikes[li])
            np.testing.assert_array_equal(g.v[li], w.v[li])
        assert w.spikes[1][:, 1].sum() > 0  # the bias-only neuron fires


# --------------------------------------------------------------------------- issue 12 regressions

def _issue12_case1(ncols: int = 1) -> Model:
    """260 direct inputs, 259 weights of 127 and one of -128 into a neuron, exponent -14."""
    w = np.full((260, ncols), 127, np.int8)
    w[259, 0] = -128
    return Model(input_size=260, timesteps=1, input_kind="values", input_max_abs=32767,
                 decoding="membrane_last",
                 layers=[Layer(Weights(w, exp=-14), Neurons(du=4096, dv=0, vth=65000))]).validate()


def test_issue12_case1_int32_overflow_is_refused_up_front() -> None:
    """Lava's graded Dense sums 2w * x in int32: 2 * (259*127 + 128) * 32767 > 2^31."""
    model = _issue12_case1()
    x = np.zeros((1, 1, 260), np.int64)
    x[0, 0, :259] = 32767
    assert reference.run(model, x[0]).u[0][0] == 4_210_112  # what Lava gave as -4,178,496
    with pytest.raises(lava_backend.LavaInt32Overflow, match=r"input_max_abs to at most \d+"):
        lava_backend.check_model(model)
    # refused before any worker starts: works without the Lava environment too
    with pytest.raises(lava_backend.LavaInt32Overflow):
        lava_backend.run_batch(model, x)
    # the bound is exact: at the largest input_max_abs it names, the model is accepted
    limit = int(str(pytest.raises(lava_backend.LavaInt32Overflow, lava_backend.check_model,
                                  model).value).split("at most ")[1].split(",")[0])
    model.input_max_abs = limit
    lava_backend.check_model(model)
    model.input_max_abs = limit + 1
    with pytest.raises(lava_backend.LavaInt32Overflow):
        lava_backend.check_model(model)


def test_graded_accumulator_bound_is_exact() -> None:
    """sum_j |w'_kj| * bound is reached by x_j = +-bound and is what int32 must hold."""
    rng = np.random.default_rng(4)
    for _ in range(50):
        w = rng.integers(-128, 128, (int(rng.integers(1, 30)), int(rng.integers(1, 5))))
        bound = int(rng.integers(1, 32768))
        for spec in lava_backend._encode_weights(w, -3, "t"):
            worst = lava_backend.dense_accumulator_bound(spec, bound)
            k = int(np.abs(spec.weights.astype(np.int64)).sum(axis=1).argmax())
            x = np.sign(spec.weights[k]).astype(np.int64) * bound
            assert abs(int(spec.weights[k].astype(np.int64) @ x)) == worst


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bound=st.sampled_from([1, 7, 1000, 32767]),
       exp=st.integers(-31, 2))
def test_encoding_never_overflows_int32(seed: int, bound: int, exp: int) -> None:
    """Whatever the adapter accepts for graded input keeps every int32 sum in range, exactly."""
    rng = np.random.default_rng(seed)
    fan_in, fan_out = int(rng.integers(1, 400)), int(rng.integers(1, 6))
    w = rng.integers(-128, 128, (fan_in, fan_out))
    one_signed = rng.random(fan_out) < 0.4  # such neurons need no doubling
    w[:, one_signed] = np.abs(w[:, one_signed])
    try:
        specs = lava_backend._encode_weights(w, exp, "t", bound)
    except lava_backend.LavaInt32Overflow:
        # refused only if some neuron's column cannot avoid the overflow
        assert 2 * np.abs(w).sum(axis=0).max() * bound >= 1 << 31
        return
    x = np.where(rng.random((4, fan_in)) < 0.5, -bound, bound)
    got = np.zeros((4, fan_out), np.int64)
    for s in specs:
        assert lava_backend.dense_accumulator_bound(s, bound) < 1 << 31
        got += lava_dense_sum(s, x)
    assert np.array_equal(got, reference.shift(x @ w, exp))


def test_issue12_case1_one_signed_neuron_is_exact(lava_env) -> None:
    """A neuron whose own weights are one-signed needs no doubling: its sum stays in int32."""
    w = np.full((260, 2), 127, np.int8)
    w[259, 1] = -128
    w[:130, 1] = 3
    model = Model(input_size=260, timesteps=2, input_kind="values", input_max_abs=32767,
                  decoding="membrane_last",
                  layers=[Layer(Weights(w, exp=-14), Neurons(du=4096, dv=0, vth=65000))]).validate()
    x = np.zeros((2, 2, 260), np.int64)
    x[:, :, :259] = 32767
    x[1, 1] = -32767
    got, want = lava_backend.run_batch(model, x), reference.run_batch(model, x)
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g.u[0], r.u[0])
        np.testing.assert_array_equal(g.spikes[0], r.spikes[0])
        np.testing.assert_array_equal(g.scores, r.scores)
    assert want[0].spikes[0][:, 0].sum() == 2  # 259*127*32767 >> 14 = 65784 > vth


def _assert_same(model: Model, got, want) -> None:
    for b, (g, w) in enumerate(zip(got, want)):
        for li in range(len(model.layers)):
            np.testing.assert_array_equal(g.spikes[li], w.spikes[li], err_msg=f"{b}: layer {li}")
            np.testing.assert_array_equal(g.u[li], w.u[li], err_msg=f"{b}: u of layer {li}")
            np.testing.assert_array_equal(g.v[li], w.v[li], err_msg=f"{b}: v of layer {li}")
        np.testing.assert_array_equal(g.scores, w.scores, err_msg=f"{b}: scores")
        assert g.counters == w.counters, b


def test_issue12_case2_fewer_steps_than_layers(lava_env) -> None:
    """1 time step, three width-1 layers, a bias only in the last, a batch of 2."""
    model = Model(input_size=1, timesteps=1, decoding="membrane_last", layers=[
        Layer(Weights(np.ones((1, 1), np.int8)), Neurons(vth=0)),
        Layer(Weights(np.ones((1, 1), np.int8)), Neurons(vth=0)),
        Layer(Weights(np.ones((1, 1), np.int8)), Neurons(vth=100, bias_mant=5))]).validate()
    x = np.ones((2, 1, 1), np.int64)
    want = reference.run_batch(model, x)
    assert [int(w.scores[0]) for w in want] == [69, 69]  # Lava gave 74, then 10
    assert all(int(w.spikes[1].sum()) == 1 for w in want)
    _assert_same(model, lava_backend.run_batch(model, x), want)


def test_issue12_case3_all_zero_feed_forward_with_recurrence(lava_env) -> None:
    """A layer fed only by its own recurrent weights and its bias (was: 'No Runtime')."""
    model = Model(input_size=2, timesteps=4, layers=[
        Layer(Weights(np.ones((2, 2), np.int8)), Neurons(vth=0)),
        Layer(Weights(np.zeros((2, 2), np.int8)), Neurons(vth=3, bias_mant=100),
              recurrent=Weights(np.full((2, 2), 50, np.int8))),
        Layer(Weights(np.ones((2, 1), np.int8)), Neurons(vth=0))]).validate()
    x = np.ones((2, 4, 2), np.int64)
    want = reference.run_batch(model, x)
    assert want[0].spikes[1].sum() > 0 and want[0].counters[1].synops > 0  # recurrence at work
    _assert_same(model, lava_backend.run_batch(model, x), want)
