"""The batched exact simulator (edgespike.sim.batch) against the numpy reference: bit for bit.

Random valid models (tests/strategies.py: int8 and ternary, recurrent layers, per-neuron
thresholds and biases, adaptive thresholds, refractory periods, both resets, every decoding,
1-step models, all-zero weight matrices, exponents from -31 to 16, static and changing direct
inputs) and random inputs must give the same spikes in every layer, the same final u, v and
adaptive thresholds, counters, scores and predictions, with the C neuron kernel and with the
numpy one, in one chunk or many, on one thread or two. Saturating models (no leak, inputs at
the bound) drive u through its 24-bit wrap and v into its clip. The float32 / float64 choice
of the matrix products is tested at its boundary.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgespike.errors import InputError, ModelError, ToolMissing
from edgespike.model.quantized import A_IN_LIMIT, Layer, Model, Neurons, Weights
from edgespike.sim import batch, reference

from strategies import extreme_inputs, inputs, models, saturating

KERNELS = ["numpy", pytest.param("c", marks=pytest.mark.skipif(
    not batch.kernel_available(), reason="host library not built (bash firmware/build.sh)"))]
SLOW_OK = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])


def assert_same(model: Model, want: list[reference.RunOutput], got: list[reference.RunOutput]
                ) -> None:
    """Every observable of every inference is identical."""
    assert len(got) == len(want)
    for i, (r, g) in enumerate(zip(want, got)):
        for li in range(len(model.layers)):
            where = f"input {i}, layer {li}"
            np.testing.assert_array_equal(g.spikes[li], r.spikes[li], err_msg=f"spikes, {where}")
            np.testing.assert_array_equal(g.u[li], r.u[li], err_msg=f"u, {where}")
            np.testing.assert_array_equal(g.v[li], r.v[li], err_msg=f"v, {where}")
            np.testing.assert_array_equal(g.th[li], r.th[li], err_msg=f"th, {where}")
            assert g.spikes[li].dtype == r.spikes[li].dtype and g.u[li].dtype == r.u[li].dtype
        assert g.counters == r.counters, f"counters, input {i}"
        np.testing.assert_array_equal(g.scores, r.scores, err_msg=f"scores, input {i}")
        assert g.scores.dtype == r.scores.dtype
        assert g.prediction == r.prediction


def run_both(model: Model, x: np.ndarray, kernel: str, **kw) -> None:
    want = reference.run_batch(model, x)
    sim = batch.BatchSim(model, kernel=kernel, **kw)
    assert_same(model, want, sim.run_batch(x))
    res = sim.run(x, record=False)
    np.testing.assert_array_equal(res.predictions, [r.prediction for r in want])


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=100, **SLOW_OK)
@given(data=st.data())
def test_random_models_match_reference(kernel, data):
    model = data.draw(models())
    x = data.draw(inputs(model, batch=3))
    if model.input_kind == "values":
        event("static input" if (x == x[:, :1]).all() else "changing input")
    run_both(model, x, kernel)


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=40, **SLOW_OK)
@given(data=st.data())
def test_small_models_many_steps_match_reference(kernel, data):
    """Long runs on small models: states drift far (wraps, clips, adaptive growth)."""
    model = data.draw(models(max_layers=3, max_width=8, max_input=8, max_timesteps=300))
    run_both(model, data.draw(inputs(model, batch=3)), kernel)


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=60, **SLOW_OK)
@given(data=st.data())
def test_saturating_models_match_reference(kernel, data):
    """No leak and inputs at the bound: u wraps at 24 bits, v clips, currents at the 2^17
    limit. The reference's own states show that the extremes were reached."""
    model = data.draw(saturating(data.draw(models(max_layers=3, max_width=64, max_input=64,
                                                  max_timesteps=40))))
    x = data.draw(extreme_inputs(model, batch=2))
    want = reference.run_batch(model, x)
    top = max(int(np.abs(r.u[li]).max()) for r in want for li in range(len(model.layers)))
    vmax = max(int(np.abs(r.v[li]).max()) for r in want for li in range(len(model.layers)))
    event(f"|u| reached 2^{top.bit_length() - 1}" if top else "u stayed 0")
    event("v clipped" if vmax == (1 << 23) - 1 else "v within range")
    assert_same(model, want, batch.BatchSim(model, kernel=kernel).run_batch(x))


@pytest.mark.parametrize("kernel", KERNELS)
def test_u_wraps_and_v_clips_exactly(kernel):
    """u accumulates past +2^23 (du = 0) and wraps; v integrates a negative current without
    leak (dv = 0) down to its clip at -(2^23 - 1)."""
    w = Weights(np.array([[127, -128]], np.int8), exp=-8)
    model = Model(input_size=1, timesteps=80, input_kind="values", input_max_abs=32767,
                  layers=[Layer(w, Neurons(du=0, dv=0, vth=(1 << 17) - 1))],
                  decoding="membrane_last").validate()
    x = np.full((1, 80, 1), 32767, dtype=np.int32)
    us, vs = [], []
    for t in range(1, 81):  # the state after each step, from the reference
        r = reference.run(dataclasses.replace(model, timesteps=t), x[0, :t])
        us.append(int(r.u[0][0]))
        vs.append(int(r.v[0][1]))
    assert any(a > 0 > b for a, b in zip(us, us[1:])), "u never wrapped"
    assert -((1 << 23) - 1) in vs, "v never clipped"
    assert_same(model, reference.run_batch(model, x),
                batch.BatchSim(model, kernel=kernel).run_batch(x))


@pytest.mark.parametrize("kernel", KERNELS)
def test_largest_fan_in(kernel):
    """4096 inputs (the C core's largest layer) at weight 127, every spike on: the sums reach
    4096 * 127 before the shift; float32 holds them exactly."""
    rng = np.random.default_rng(3)
    w = Weights(rng.choice(np.array([127, -128], np.int8), (4096, 5)), exp=-3)
    rec = Weights(np.full((5, 5), -128, np.int8), exp=0)
    model = Model(input_size=4096, timesteps=6, decoding="first_spike", layers=[
        Layer(w, Neurons(du=100, dv=3, vth=50), recurrent=rec)])
    while True:
        try:
            model.validate()
            break
        except ModelError:
            model.layers[0].weights.exp -= 1
    x = np.ones((2, 6, 4096), np.uint8)
    x[1, ::2] = 0
    run_both(model, x, kernel)


def _one_layer(fan_in: int, value: int, max_abs: int, exp: int) -> Model:
    return Model(input_size=fan_in, timesteps=3, input_kind="values", input_max_abs=max_abs,
                 decoding="membrane_last",
                 layers=[Layer(Weights(np.full((fan_in, 2), value, np.int8), exp=exp),
                               Neurons(du=4096, dv=0, vth=(1 << 17) - 1))]).validate()


@pytest.mark.parametrize("kernel", KERNELS)
def test_float32_up_to_2_24_then_float64(kernel):
    """A weight matrix whose partial sums can pass 2^24 is multiplied in float64; one that
    stays within 2^24 in float32. Both are exact at the bound; float32 beyond it would not
    be (the test could fail)."""
    # 128 * 127 * 1032 = 16,776,192 <= 2^24: float32; 129 channels: 16,907,256 > 2^24
    at = _one_layer(128, 127, 1032, -7)
    beyond = _one_layer(129, 127, 1032, -8)
    assert batch.BatchSim(at).layers[0].ff.mat.dtype == np.float32
    assert batch.BatchSim(beyond).layers[0].ff.mat.dtype == np.float64
    for model in (at, beyond):
        f = model.input_size
        x = np.full((2, 3, f), 1032, np.int32)
        x[1, :, 1::2] = 1031  # odd sums: the lowest bit matters
        x[1, 2, 0] = -1032
        run_both(model, x, kernel)
    # float32 cannot hold the odd sum 127 * 1031 * 129 > 2^24, whatever the order of additions
    x = np.full((1, 129), 1031, np.int64)
    exact = int((x @ np.full((129, 1), 127, np.int64))[0, 0])
    rounded = int((x.astype(np.float32) @ np.full((129, 1), 127, np.float32))[0, 0])
    assert exact > 1 << 24 and rounded != exact


@settings(max_examples=10, **SLOW_OK)
@given(data=st.data())
def test_threads_and_chunks_give_the_same_result(data):
    model = data.draw(models(max_layers=3, max_width=40, max_input=30, max_timesteps=9))
    x = data.draw(inputs(model, batch=13))
    want = reference.run_batch(model, x)
    for threads in (1, 2, 3):
        sim = batch.BatchSim(model, threads=threads)
        sim.chunk = 2  # seven chunks: some on each thread
        assert_same(model, want, sim.run_batch(x))


def test_static_input_detected_forced_and_refused():
    model = Model(input_size=3, timesteps=5, input_kind="values", input_max_abs=9,
                  decoding="membrane_sum",
                  layers=[Layer(Weights(np.array([[5, -3], [2, 9], [-7, 1]], np.int8)),
                                Neurons(du=1000, dv=200, vth=40), name="a"),
                          Layer(Weights(np.array([[3], [-4]], np.int8)), Neurons(vth=2))])
    model.validate()
    still = np.repeat(np.array([[[9, -9, 4]], [[0, 3, -1]]]), 5, axis=1)
    moving = still.copy()
    moving[0, 3, 1] = 2
    sim = batch.BatchSim(model)
    for x in (still, moving):
        want = reference.run_batch(model, x)
        for static in (None, False):
            assert_same(model, want, sim.run(x, static=static).outputs())
    assert_same(model, reference.run_batch(model, still), sim.run(still, static=True).outputs())
    view = np.broadcast_to(still[:, :1], still.shape)  # stride 0 over the steps
    assert view.strides[1] == 0
    assert_same(model, reference.run_batch(model, still), sim.run(view).outputs())
    bad = still[:, :1].copy()
    bad[1, 0, 2] = 10  # beyond input_max_abs 9
    with pytest.raises(InputError) as want:
        reference.run_batch(model, np.broadcast_to(bad, still.shape))
    with pytest.raises(InputError) as got:
        sim.run(np.broadcast_to(bad, still.shape))
    assert str(got.value) == str(want.value) and "10 at input 1, step 0, index 2" in str(want.value)
    with pytest.raises(InputError, match="static=True"):
        sim.run(moving, static=True)


@settings(max_examples=10, **SLOW_OK)
@given(data=st.data())
def test_empty_batch_one_input_and_record_false(data):
    model = data.draw(models(max_layers=2, max_width=10, max_input=10, max_timesteps=5))
    x = data.draw(inputs(model, batch=4))
    sim = batch.BatchSim(model)
    assert sim.run_batch(x[:0]) == reference.run_batch(model, x[:0]) == []
    assert len(sim.run(x[:0])) == 0
    assert_same(model, [reference.run(model, x[1])], [batch.run(model, x[1])])
    res = sim.run(x, record=False)
    assert res.spikes is None and res.u is None
    want = reference.run_batch(model, x)
    assert [[c for c in r.counters] for r in want] == [o.counters for o in res.outputs()]
    np.testing.assert_array_equal(res.scores, np.stack([r.scores for r in want]))
    with pytest.raises(InputError, match="run_batch"):
        batch.run(model, x)


def test_prepared_model_is_a_copy_and_the_cache_sees_changes():
    """A BatchSim runs what it was given, even if the model changes afterwards; the module
    functions prepare again for a model changed in place (and validate it again)."""
    model = Model(input_size=2, timesteps=3, input_kind="values", input_max_abs=50,
                  decoding="membrane_last",
                  layers=[Layer(Weights(np.array([[10, -5], [3, 7]], np.int8)),
                                Neurons(vth=1000, dv=100))]).validate()
    x = np.array([[[50, -20], [3, 3], [0, 7]]])
    sim = batch.BatchSim(model)
    before = reference.run_batch(model, x)
    assert_same(model, before, batch.run_batch(model, x))
    model.layers[0].weights.values[0, 0] = 11
    after = reference.run_batch(model, x)
    assert not np.array_equal(after[0].v[0], before[0].v[0])
    assert_same(model, after, batch.run_batch(model, x))
    assert_same(model, before, sim.run_batch(x))
    model.layers[0].weights.values[0, 0] = 127  # 2 * 127 * 50 << 0 is fine; exp 9 is not
    model.layers[0].weights.exp = 9
    with pytest.raises(ModelError):
        batch.run_batch(model, x)


def test_kernel_choice():
    model = Model(input_size=2, timesteps=3, layers=[Layer(Weights(np.ones((2, 2), np.int8)))])
    assert batch.BatchSim(model, kernel="numpy").kernel == "numpy"
    if batch.kernel_available():
        assert batch.BatchSim(model).kernel == "c"
    else:
        with pytest.raises(ToolMissing, match="firmware/build.sh"):
            batch.BatchSim(model, kernel="c")
    with pytest.raises(InputError):
        batch.BatchSim(model, kernel="gpu")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        batch.BatchSim(model, threads=0)


def test_a_in_limit_is_what_the_validator_says():
    """The exactness argument rests on the validator's bound: sums below 2^31 before the shift
    and |a_in| < 2^17 after it. A model one step beyond is refused."""
    m = _one_layer(128, 127, 1032, -7)
    m.layers[0].weights.exp = -6  # 16,776,192 >> 6 = 262,128 >= 2^17
    with pytest.raises(ModelError, match="2\\^17"):
        m.validate()
    assert A_IN_LIMIT == 1 << 17


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32",
                                   "int64", "uint64", "bool", "float32"])
@pytest.mark.parametrize("static", [False, True], ids=["changing", "static"])
def test_input_check_at_the_bounds_is_the_reference_check(dtype, static):
    """The one-pass range check of contiguous integer inputs accepts exactly what the
    reference's check accepts and, for anything else, raises the reference's own error."""
    m = Model(input_size=3, timesteps=4, input_kind="values", input_max_abs=100,
              decoding="membrane_sum",
              layers=[Layer(Weights(np.array([[5, -3], [2, 9], [-7, 1]], np.int8)),
                            Neurons(vth=40))]).validate()
    base = np.array([[[100, 0, 3]], [[7, 1, 0]]])
    if np.dtype(dtype).kind in "ub":
        base = np.abs(base) > 0 if dtype == "bool" else np.abs(base)
    x = np.repeat(base, 4, axis=1)
    if not static:
        x[1, 2, 1] = 0 if dtype == "bool" else 1 + (np.dtype(dtype).kind != "u")
    x = x.astype(dtype)
    assert_same(m, reference.run_batch(m, x), batch.run_batch(m, x))
    for bad in (101, -101, 255, 2**31 - 1):
        y = x.astype(object)
        y[1, 3, 2] = bad
        try:
            y = y.astype(dtype)
        except OverflowError:
            continue
        if int(y[1, 3, 2]) == int(x[1, 3, 2]) or -100 <= int(y[1, 3, 2]) <= 100:
            continue  # the dtype cannot hold it
        with pytest.raises(InputError) as want:
            reference.run_batch(m, y)
        with pytest.raises(InputError) as got:
            batch.run_batch(m, y)
        assert str(got.value) == str(want.value)
