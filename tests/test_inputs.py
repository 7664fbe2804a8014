"""Issue 12, cases 5 and 10: nothing runs a model that fails validation, and no input value is
wrapped, truncated or rounded on its way to a model.

Case 5: every entry point that runs a model (reference, C core, QEMU runner, and everything
behind ``check_input``) refuses an invalid model with :class:`ModelError` before running, also
when the model was valid and then changed in place.

Case 10: every input path (``check_input``, the C core's entry points, the QEMU runner,
``Device.run``, the event helpers, the stream sources and session, ``edgespike run``) either
takes a value exactly (integers of any dtype; floats only when finite and integral) or
refuses it with :class:`InputError` saying what to change. The property tests compare each
path against a plain-Python rule over dtypes and extreme values.
"""
from __future__ import annotations

import math
import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgespike import paths
from edgespike.cli import main
from edgespike.device import Device
from edgespike.device.fake import FakeDevice
from edgespike.errors import InputError, ModelError, ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights, blob, save
from edgespike.protocol import crc32
from edgespike.sim import batch, checks, core, qemu, reference
from edgespike.stream import ArraySource, EventArraySource, IterableSource
from edgespike.stream.reference import delta_encode
from edgespike.stream.reference import stream as reference_stream
from edgespike.stream.sources import check_row

from qemu_marks import needs_qemu
from strategies import inputs, models

I64_MIN, I64_MAX, U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

#: Values at and beyond every boundary an input can cross.
EXTREMES: list[Any] = [
    0, 1, -1, 2, 3, 100, 101, -100, -101, 32767, 32768, -32767, -32768, 2**31 - 1, 2**31,
    -(2**31), -(2**31) - 1, 2**32 - 1, 2**32, 2**53 + 1, I64_MAX, 2**63, I64_MIN, I64_MIN - 1,
    U64_MAX, 2**64, -(2**100), True, False, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 100.0,
    101.0, 2.0**63, -(2.0**63), 1e300, math.nan, math.inf, -math.inf,
]
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "object", "list"]


def values_model(max_abs: int = 100, exp: int = 0) -> Model:
    """2 inputs, 3 steps, direct encoding: -1 and 0 give different scores."""
    return Model(input_size=2, timesteps=3, input_kind="values", input_max_abs=max_abs,
                 decoding="membrane_last",
                 layers=[Layer(Weights(np.array([[10, -5], [3, 7]], np.int8), exp=exp),
                               Neurons(vth=1000, dv=100))]).validate()


def spike_model() -> Model:
    return Model(input_size=3, timesteps=4, decoding="membrane_sum",
                 layers=[Layer(Weights(np.array([[40, -5], [3, 70], [20, 20]], np.int8)),
                               Neurons(vth=30, dv=200))]).validate()


def assert_same(a: reference.RunOutput, b: reference.RunOutput) -> None:
    assert a.prediction == b.prediction
    np.testing.assert_array_equal(a.scores, b.scores)
    for sa, sb in zip(a.spikes, b.spikes):
        np.testing.assert_array_equal(sa, sb)
    for la, lb in zip(a.v, b.v):
        np.testing.assert_array_equal(la, lb)


def exact_value(e: Any) -> Optional[int]:
    """The plain-Python rule: the exact integer ``e`` is, or None (not an integer)."""
    if isinstance(e, (bool, np.bool_)):
        return int(e)
    if isinstance(e, (int, np.integer)):
        return int(e)
    if isinstance(e, (float, np.floating)):
        f = float(e)
        return int(f) if math.isfinite(f) and f.is_integer() else None
    return None


def expected(values: Any, lo: int, hi: int) -> Optional[list[int]]:
    """Flat exact ints of ``values`` (an array or nested list) if all are in lo..hi, else None."""
    flat = np.asarray(values, dtype=object).ravel().tolist() if not isinstance(values, np.ndarray) \
        else values.ravel().tolist()
    out = []
    for e in flat:
        v = exact_value(e)
        if v is None or not lo <= v <= hi:
            return None
        out.append(v)
    return out


def make_array(values: list[Any], dtype: str, shape: tuple[int, ...]) -> Any:
    """``values`` as the user might pass them: an array of ``dtype`` (object if they do not
    fit it: numpy refuses out-of-range Python ints), or a nested Python list."""
    if dtype == "list":
        return np.array(values, dtype=object).reshape(shape).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if dtype in ("bool",) or dtype.startswith(("int", "uint")):
                if any(exact_value(v) is None for v in values):
                    raise OverflowError  # NaN or 0.5 into an int dtype: keep them as they are
            return np.array(values, dtype=dtype).reshape(shape)
        except (OverflowError, ValueError, TypeError):
            return np.array(values, dtype=object).reshape(shape)


@st.composite
def dirty_values(draw, n: int) -> list[Any]:
    """``n`` values: 0/1 in various types (valid everywhere), up to ``n`` of them replaced by
    extremes, arbitrary integers or arbitrary floats."""
    clean = st.sampled_from([0, 1, True, False, 0.0, 1.0, np.int8(1), np.uint64(0)])
    dirty = st.one_of(st.sampled_from(EXTREMES), st.integers(-(2**70), 2**70),
                      st.integers(-200, 200), st.floats(allow_nan=True, allow_infinity=True))
    values = draw(st.lists(clean, min_size=n, max_size=n))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, n]))):
        values[draw(st.integers(0, n - 1))] = draw(dirty)
    return values


# ---- case 5: invalid models never run -------------------------------------------------------

def _bad_weight_range() -> Model:
    m = values_model()
    m.layers[0].weights.values = np.array([[200, 0], [0, 0]], np.int16)
    return m


def _bad_decay() -> Model:
    m = values_model()
    m.layers[0].neurons.du = 5000
    return m


def _bad_bound() -> Model:
    # worst case 2 * 127 * 100 << 3 = 203,200 >= 2^17: u would wrap more than once
    m = values_model()
    m.layers[0].weights.values = np.full((2, 2), 127, np.int8)
    m.layers[0].weights.exp = 3
    return m


def _bad_decoding() -> Model:
    m = values_model()
    m.decoding = "median"  # type: ignore[assignment]
    return m


def _bad_fan_in() -> Model:
    m = values_model()
    m.layers.append(Layer(Weights(np.ones((3, 2), np.int8))))
    return m


def _bad_max_abs() -> Model:
    m = values_model()
    m.input_max_abs = 0
    return m


INVALID = {
    "int8 weights out of range": _bad_weight_range, "du": _bad_decay, "2^17": _bad_bound,
    "unknown decoding": _bad_decoding, "fan_in": _bad_fan_in, "input_max_abs": _bad_max_abs,
}


def _entry_points():
    """Every way to run a model: (name, call(model, one input))."""
    def batch_of(x):
        return x[None]
    return [
        ("reference.run", lambda m, x: reference.run(m, x)),
        ("reference.run_batch", lambda m, x: reference.run_batch(m, batch_of(x))),
        ("reference.predict", lambda m, x: reference.predict(m, batch_of(x))),
        ("reference.check_input", lambda m, x: reference.check_input(m, batch_of(x))),
        ("core.run", lambda m, x: core.run(m, x)),
        ("core.run_batch", lambda m, x: core.run_batch(m, batch_of(x))),
        ("core.predict", lambda m, x: core.predict(m, batch_of(x))),
        ("core.CoreModel", lambda m, x: core.CoreModel(m).run(x)),
        ("batch.run", lambda m, x: batch.run(m, x)),
        ("batch.run_batch", lambda m, x: batch.run_batch(m, batch_of(x))),
        ("batch.predict", lambda m, x: batch.predict(m, batch_of(x))),
        ("batch.BatchSim", lambda m, x: batch.BatchSim(m).run(x)),
        ("batch.BatchSim numpy", lambda m, x: batch.BatchSim(m, kernel="numpy").run(x)),
        ("qemu.run_batch", lambda m, x: qemu.run_batch(m, batch_of(x))),
        ("qemu.run", lambda m, x: qemu.run(m, x)),
        ("qemu.predict", lambda m, x: qemu.predict(m, batch_of(x))),
    ]


@pytest.fixture
def no_qemu(monkeypatch):
    """Fail the test if anything starts QEMU (refusals must come before)."""
    def boom(*args, **kwargs):
        raise AssertionError("QEMU was started for a model or input that must be refused")
    monkeypatch.setattr(qemu.subprocess, "run", boom)


@pytest.mark.parametrize("why", sorted(INVALID))
def test_invalid_model_is_refused_by_every_entry_point(why, no_qemu):
    """Issue 12 case 5: reference.run_batch ran a model that fails validation, without an error."""
    model = INVALID[why]()
    x = np.zeros((3, 2), np.int32)
    with pytest.raises(ModelError, match=re.escape(why)):
        model.validate()
    for name, call in _entry_points():
        with pytest.raises(ModelError, match=re.escape(why)):
            call(model, x)
            pytest.fail(f"{name} ran a model that fails validation ({why})")


def test_model_is_checked_before_its_input(no_qemu):
    """A bad model with a bad input: the model is named, not the input."""
    x = np.full((3, 2), 10**6, np.int64)
    for name, call in _entry_points():
        with pytest.raises(ModelError):
            call(_bad_decay(), x)


def _mutations(m: Model):
    """(name, break the model in place, undo it)."""
    w = m.layers[0].weights
    n = m.layers[0].neurons
    saved_values = w.values.copy()
    return [
        ("weights written in place", lambda: w.values.__setitem__(slice(None), 127),
         lambda: w.values.__setitem__(slice(None), saved_values)),
        ("weight exponent", lambda: setattr(w, "exp", 9), lambda: setattr(w, "exp", 2)),
        ("decay field", lambda: setattr(n, "du", 4097), lambda: setattr(n, "du", 4096)),
        ("per-neuron vth written in place", lambda: n.vth.__setitem__(1, -1),
         lambda: n.vth.__setitem__(1, 1000)),
        ("a layer appended", lambda: m.layers.append(Layer(Weights(np.ones((5, 1), np.int8)))),
         lambda: m.layers.pop()),
        ("timesteps", lambda: setattr(m, "timesteps", 0), lambda: setattr(m, "timesteps", 3)),
    ]


def test_model_mutated_after_validation_is_refused(no_qemu):
    """A model that validated and ran, then changed in place, is validated again: it cannot
    slip through a cache of earlier validations. Undone, it runs as before."""
    # valid as built (worst case 2,600 << 2); weights of 127 would reach 2 * 127 * 200 << 2
    m = Model(input_size=2, timesteps=3, input_kind="values", input_max_abs=200,
              decoding="membrane_last",
              layers=[Layer(Weights(np.array([[10, -5], [3, 7]], np.int8), exp=2),
                            Neurons(vth=np.array([1000, 1000]), dv=100))]).validate()
    x = np.array([[200, -100], [50, 3], [-7, 0]], np.int16)
    before = reference.run(m, x)
    for name, break_it, undo in _mutations(m):
        break_it()
        for entry, call in _entry_points():
            with pytest.raises(ModelError):
                call(m, x)
                pytest.fail(f"{entry} ran a model changed after validation ({name})")
        with pytest.raises(ModelError):
            reference.run_batch(m, x[None])
        undo()
        assert_same(reference.run(m, x), before)
        assert_same(core.run(m, x), before)
        assert_same(batch.run(m, x), before)


def test_validation_runs_once_per_content(monkeypatch):
    """The cache: an unchanged model is validated once however often it runs; a change in
    place validates again; content seen valid before is not validated again."""
    calls = []
    real = Model.validate

    def counting(self):
        calls.append(1)
        return real(self)

    m = Model(input_size=2, timesteps=3, layers=[
        Layer(Weights(np.array([[11, -5], [3, 7]], np.int8)), Neurons(vth=9))])
    monkeypatch.setattr(Model, "validate", counting)
    checks._valid.clear()
    x = np.zeros((3, 2), np.uint8)
    for _ in range(5):
        reference.run(m, x)
    assert len(calls) == 1
    m.layers[0].weights.values[0, 0] = 12
    reference.run(m, x)
    assert len(calls) == 2
    m.layers[0].weights.values[0, 0] = 11
    reference.run(m, x)
    assert len(calls) == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_fingerprint_sees_every_weight_change(data):
    """Any single weight, threshold or scalar changed in place changes the fingerprint, so no
    mutated model can be mistaken for one validated before."""
    model = data.draw(models(max_layers=3, max_width=32, max_input=16, max_timesteps=8))
    before = checks.fingerprint(model)
    assert before is not None and checks.fingerprint(model) == before
    li = data.draw(st.integers(0, len(model.layers) - 1))
    layer = model.layers[li]
    what = data.draw(st.sampled_from(("weight", "vth", "exp", "du", "timesteps", "kind")))
    if what == "weight":
        v = layer.weights.values
        i, j = data.draw(st.integers(0, v.shape[0] - 1)), data.draw(st.integers(0, v.shape[1] - 1))
        old = int(v[i, j])
        v[i, j] = old + 1 if old < 1 else old - 1
    elif what == "vth":
        layer.neurons.vth = np.asarray(layer.neurons.vth).copy()
        if layer.neurons.vth.ndim == 0:
            layer.neurons.vth = layer.neurons.vth + 1
        else:
            layer.neurons.vth[0] += 1
    elif what == "exp":
        layer.weights.exp += 1
    elif what == "du":
        layer.neurons.du = layer.neurons.du - 1 if layer.neurons.du else 1
    elif what == "timesteps":
        model.timesteps += 1
    else:
        model.input_kind = "values" if model.input_kind == "spikes" else "spikes"
    assert checks.fingerprint(model) != before


# ---- case 10: the exact examples of the issue -------------------------------------------------

def test_uint64_max_and_int64_min_are_refused_not_wrapped(no_qemu):
    """Issue 12 case 10: uint64 2^64-1 ran as -1 and -2^63 ran as 0 in the reference and the C
    core. Now both are refused with InputError saying the allowed range."""
    m = values_model()
    x_u = np.zeros((3, 2), np.uint64)
    x_u[1, 0] = U64_MAX
    x_i = np.zeros((3, 2), np.int64)
    x_i[2, 1] = I64_MIN
    # what they used to run as really is a different answer
    as_minus_one, as_zero = x_u.astype(np.int64), np.zeros((3, 2), np.int64)
    assert as_minus_one[1, 0] == -1
    assert not np.array_equal(reference.run(m, as_minus_one).scores,
                              reference.run(m, as_zero).scores)
    for x, text in ((x_u, "18446744073709551615 at input 0, step 1, index 0"),
                    (x_i, "-9223372036854775808 at input 0, step 2, index 1")):
        for name, call in _entry_points():
            with pytest.raises(InputError, match=text) as info:
                call(m, x)
            assert "input_max_abs" in str(info.value), name
        cm = core.CoreModel(m)
        with pytest.raises(InputError, match="int32"):
            cm.run_values(x.ravel())
        with pytest.raises(InputError):
            cm.run_batch(x[None], record=False)


def test_python_big_ints_are_refused_not_wrapped():
    m = values_model()
    for big in (2**64, -(2**64), 2**63, -(2**100), U64_MAX):
        x = [[0, 0], [big, 0], [0, 0]]
        for call in (reference.run, core.run, batch.run):
            with pytest.raises(InputError, match=str(big).lstrip("-")[:12]):
                call(m, x)
    # numpy turns [-1, 2**63] into float64 (2**63 rounds); the message gives the exact int
    with pytest.raises(InputError, match="9223372036854775808"):
        reference.run(m, [[-1, 2**63], [0, 0], [0, 0]])


def test_non_integer_values_are_refused_and_integral_floats_taken_exactly():
    m = values_model()
    ok = np.array([[3, -1], [100, -100], [0, 7]])
    for bad, shown in ((0.5, "0.5"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"),
                       (1e300, "1e"), (2.0**63, "9223372036854775808")):
        x = ok.astype(np.float64)
        x[1, 1] = bad
        for call in (reference.run, core.run, batch.run,
                     lambda mm, xx: core.CoreModel(mm).run_values(xx)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # refused, not a numpy warning and a wrong run
                with pytest.raises(InputError, match=shown):
                    call(m, x)
    for dtype in (np.float16, np.float32, np.float64, np.bool_, np.int8, np.uint64, object):
        x = (ok > 0) if dtype is np.bool_ else np.abs(ok).astype(dtype) if dtype is np.uint64 \
            else ok.astype(dtype)
        want = reference.run(m, np.asarray(x).astype(np.int64))
        assert_same(reference.run(m, x), want)
        assert_same(core.run(m, x), want)
        assert_same(batch.run(m, x), want)
    for bad in (np.zeros((3, 2), np.complex128), np.full((3, 2), "1"), [[1, None]] * 3,
                [[1, 2], [3]]):
        for call in (reference.run, core.run, batch.run):
            with pytest.raises(InputError):
                call(m, bad)


def test_spike_inputs_are_exactly_zero_or_one():
    m = spike_model()
    for bad in (2, -1, 0.5, math.nan, U64_MAX, I64_MIN):
        x = np.zeros((4, 3), dtype=object)
        x[2, 1] = bad
        for call in (reference.run, core.run, batch.run):
            with pytest.raises(InputError, match="0 or 1|integers"):
                call(m, x)
    x = np.zeros((4, 3), np.float32)
    x[1, 2] = 1.0
    assert_same(core.run(m, x), reference.run(m, x.astype(np.uint8)))
    assert_same(batch.run(m, x), reference.run(m, x.astype(np.uint8)))


def test_shapes_are_refused():
    m = values_model()
    for bad in (np.zeros((3,)), np.zeros((2, 3, 2)), np.zeros((1, 1, 3, 2)), np.zeros((3, 3))):
        for call in (reference.run, core.run, batch.run):
            with pytest.raises(InputError, match="shape"):
                call(m, bad)
    with pytest.raises(InputError, match="shape"):
        reference.run_batch(m, np.zeros((1, 1, 3, 2)))


def test_qemu_refuses_before_starting(no_qemu):
    m = values_model()
    for x in (np.full((1, 3, 2), U64_MAX, np.uint64), np.full((1, 3, 2), 0.5)):
        with pytest.raises(InputError):
            qemu.run_batch(m, x)


@pytest.mark.parametrize("_", [pytest.param(0, marks=needs_qemu(paths.runner_image))],
                         ids=["qemu"])
def test_qemu_takes_integral_floats_exactly(_):
    m = values_model()
    x = np.array([[[3.0, -1.0], [100.0, -100.0], [0.0, 7.0]]])
    want = reference.run_batch(m, x.astype(np.int64))
    for q, r in zip(qemu.run_batch(m, x), want):
        assert_same(q, r)


# ---- events -----------------------------------------------------------------------------------

def test_float_events_are_refused_not_truncated():
    """Issue 12 case 10: 1-D event arrays given as floats were truncated, NaN became 0."""
    cm = core.CoreModel(spike_model())
    for ev in (np.array([1.0]), np.array([65537.9]), np.array([np.nan]), np.array([0.5, 1.0]),
               [1.0, 2.0]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(InputError, match="integer"):
                reference.spikes_from_events(ev, 4, 3)
            with pytest.raises(InputError, match="integer"):
                cm.run_events(ev)
    for ev, text in (([-1], "0..2\\^32-1"), ([2**32], "0..2\\^32-1"), ([U64_MAX], "0..2"),
                     ([(4 << 16) | 0], "event out of range"), ([(0 << 16) | 3], "out of range"),
                     (np.array([[0, 1]]), "1-D")):
        with pytest.raises(InputError, match=text):
            reference.spikes_from_events(ev, 4, 3)
    for ev in ([-1], [2**32], np.array([[0, 1]])):
        with pytest.raises(InputError):
            cm.run_events(ev)
    # exact integer codes of any integer dtype, and empty lists, are taken
    ev = [(0 << 16) | 2, (3 << 16) | 1]
    want = np.zeros((4, 3), np.uint8)
    want[0, 2] = want[3, 1] = 1
    for arr in (np.array(ev, np.uint32), np.array(ev, np.int64), np.array(ev, np.uint64),
                np.array(ev, dtype=object), ev):
        np.testing.assert_array_equal(reference.spikes_from_events(arr, 4, 3), want)
        assert_same(cm.run_events(arr), reference.run(spike_model(), want))
    assert reference.spikes_from_events([], 4, 3).sum() == 0


def test_events_from_spikes_takes_only_zero_one_rasters():
    for bad in (2, -1, 0.5, math.nan):
        r = np.zeros((3, 4), dtype=np.float64)
        r[1, 1] = bad
        with pytest.raises(InputError):
            reference.events_from_spikes(r)
    # wider than the 16-bit index field: index 65536 would become step + 1
    with pytest.raises(InputError, match="65536"):
        reference.events_from_spikes(np.zeros((2, 65537), np.uint8))
    with pytest.raises(InputError, match="timesteps, n"):
        reference.events_from_spikes(np.zeros((2, 2, 2), np.uint8))
    r = np.array([[0, 1, 0], [1, 0, 1]], dtype=np.float32)
    assert reference.events_from_spikes(r).tolist() == [1, (1 << 16) | 0, (1 << 16) | 2]
    assert reference.events_from_spikes(r.astype(bool)).tolist() == [1, 65536, 65538]


@settings(max_examples=150, deadline=None)
@given(codes=st.lists(st.one_of(st.integers(0, (3 << 16) | 4), st.integers(0, 3).map(
                          lambda t: (t << 16) | 1), st.sampled_from(EXTREMES)), max_size=6),
       dtype=st.sampled_from(["uint32", "int64", "uint64", "float64", "object", "list"]))
def test_events_exact_or_refused(codes, dtype):
    """spikes_from_events over dtypes and extremes: the raster of exactly the given codes, or
    InputError; never a warning, never a truncated code."""
    ev = make_array(codes, dtype, (len(codes),))
    floats = isinstance(ev, np.ndarray) and ev.dtype.kind == "f" and len(codes) > 0
    want = expected(ev, 0, 2**32 - 1)
    if want is not None and any(isinstance(e, float) for e in np.asarray(ev, dtype=object).ravel()):
        want = None  # float codes are refused even when integral
    if floats:
        want = None
    if want is not None and any(v >> 16 >= 4 or v & 0xFFFF >= 3 for v in want):
        want = None
    event("refused" if want is None else "taken")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if want is None:
            with pytest.raises(InputError):
                reference.spikes_from_events(ev, 4, 3)
            return
        got = reference.spikes_from_events(ev, 4, 3)
    raster = np.zeros((4, 3), np.uint8)
    for v in want:
        raster[v >> 16, v & 0xFFFF] = 1
    np.testing.assert_array_equal(got, raster)


# ---- property: every path, every dtype, every extreme ----------------------------------------

@settings(max_examples=400, deadline=None)
@given(values=dirty_values(6), dtype=st.sampled_from(DTYPES),
       bounds=st.sampled_from([(0, 1), (-100, 100), (-(2**31), 2**31 - 1), (I64_MIN, I64_MAX),
                               (0, 2**32 - 1)]))
def test_exact_integers_follow_the_python_rule(values, dtype, bounds):
    lo, hi = bounds
    x = make_array(values, dtype, (2, 3))
    want = expected(x, lo, hi)
    event("refused" if want is None else "taken")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if want is None:
            with pytest.raises(InputError):
                checks.exact_integers(x, lo=lo, hi=hi)
            return
        got = checks.exact_integers(x, lo=lo, hi=hi)
    assert got.shape == (2, 3)
    assert [int(v) for v in got.ravel().tolist()] == want


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_reference_core_and_batch_take_exactly_or_refuse(data):
    """A random valid model and a valid input with a few values replaced by extremes, in a
    random dtype: the reference, the C core and the batched simulator all refuse it
    (InputError) exactly when the plain-Python rule says it is not a valid input, and otherwise
    all give the result of the exact integers."""
    model = data.draw(models(max_layers=2, max_width=12, max_input=6, max_timesteps=5))
    x = data.draw(inputs(model, batch=2))
    vals = x.astype(object)
    for _ in range(data.draw(st.integers(0, 2))):
        idx = tuple(data.draw(st.integers(0, s - 1)) for s in vals.shape)
        vals[idx] = data.draw(st.one_of(st.sampled_from(EXTREMES),
                                        st.sampled_from([model.input_max_abs,
                                                         -model.input_max_abs,
                                                         model.input_max_abs + 1,
                                                         float(model.input_max_abs)])))
    dtype = data.draw(st.sampled_from(DTYPES))
    xx = make_array(vals.ravel().tolist(), dtype, vals.shape)
    bound = model.input_bound()
    want = expected(xx, 0 if model.input_kind == "spikes" else -bound, bound)
    event("refused" if want is None else "taken")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if want is None:
            with pytest.raises(InputError):
                reference.run_batch(model, xx)
            with pytest.raises(InputError):
                core.run_batch(model, xx)
            with pytest.raises(InputError):
                batch.run_batch(model, xx)
            return
        exact = np.array(want, dtype=np.int64).reshape(x.shape)
        ref = reference.run_batch(model, exact)
        for got in (reference.run_batch(model, xx), core.run_batch(model, xx),
                    batch.run_batch(model, xx)):
            for a, b in zip(got, ref):
                assert_same(a, b)


# ---- Device.run through the fake device -------------------------------------------------------

def test_device_run_refuses_bad_inputs_before_sending():
    """Issue 12 case 10: Device.run raised a bare ValueError for -2^63 (protobuf). check_input,
    which Device.encode_input calls, now raises InputError first; nothing reaches the device,
    and the device keeps answering."""
    m = values_model()
    with FakeDevice() as fake, Device.open(fake.url) as dev:
        dev.deploy(m)
        good = np.array([[3, -1], [100, -100], [0, 7]], np.int32)
        assert_same(dev.run(good), reference.run(m, good))
        runs_before = fake.config.log.count("run")
        for bad in (I64_MIN, U64_MAX, 2**64, 101, math.nan, 0.5):
            x = good.astype(object)
            x[1, 0] = bad
            with pytest.raises(InputError):
                dev.encode_input(x, m)
            with pytest.raises(InputError):
                dev.run(x)
        x = np.zeros((3, 2), np.int64)
        x[0, 0] = I64_MIN
        with pytest.raises(InputError, match="-9223372036854775808"):
            dev.run(x)
        assert fake.config.log.count("run") == runs_before
        assert_same(dev.run(good.astype(np.float64)), reference.run(m, good))


def test_device_run_spike_rasters_exact():
    m = spike_model()
    with FakeDevice() as fake, Device.open(fake.url) as dev:
        dev.deploy(m)
        for bad in (2, -1, 0.5, math.nan, U64_MAX):
            x = np.zeros((4, 3), dtype=object)
            x[0, 0] = bad
            with pytest.raises(InputError):
                dev.run(x)


def test_device_run_refuses_float_events():
    m = spike_model()
    with FakeDevice() as fake, Device.open(fake.url) as dev:
        dev.deploy(m)
        with pytest.raises(InputError):
            dev.run(np.array([1.7, 65536.2]))


# ---- streams ----------------------------------------------------------------------------------

def test_stream_sources_are_exact():
    for bad in (np.array([[1.0, math.inf]]), np.array([[math.nan, 0]]), np.array([[0.5, 1]]),
                np.array([[U64_MAX, 0]], np.uint64), [[2**64, 0]]):
        with pytest.raises(InputError):
            ArraySource(bad)
    a = ArraySource(np.array([[1.0, -2.0], [3.0, 4.0]]))
    assert [r.tolist() for r in a] == [[1, -2], [3, 4]]
    for bad in (np.array([[0.0, 1.5]]), np.array([[np.nan, 1]]), np.array([0, 1, 2, 0]),
                np.array([[0, 1]], np.uint64) + np.uint64(U64_MAX - 1)):
        with pytest.raises(InputError):
            EventArraySource(bad, width=4)
    with pytest.raises(InputError, match="beyond"):
        EventArraySource(np.array([[5, 1]]), width=4, steps=3)
    for rows in ([[1.5, 0]], [[math.nan, 0]], [[U64_MAX, 0]]):
        with pytest.raises(InputError):
            list(IterableSource(rows))
    assert [r.tolist() for r in IterableSource([[1.0, 2], [3, 4]])] == [[1, 2], [3, 4]]
    for row, kind in (([2, 0], "spikes"), ([-1, 0], "spikes"), ([101, 0], "values"),
                      ([2**31, 0], "raw"), ([0.5, 0], "raw"), ([0, 0, 0], "raw")):
        with pytest.raises(InputError):
            check_row(row, 7, 2, kind, 100)
    assert check_row([1.0, -100], 0, 2, "values", 100).tolist() == [1, -100]


def test_stream_reference_is_exact():
    with pytest.raises(InputError):
        delta_encode(np.array([[0.5, 1.0], [1.0, 2.0]]), [1, 1])
    with pytest.raises(InputError):
        delta_encode(np.array([[U64_MAX, 1]], np.uint64), [1, 1])
    with pytest.raises(InputError):
        delta_encode(np.zeros((2, 2)), [1.5, 1])
    m = spike_model()
    with pytest.raises(InputError):
        reference_stream(m, np.full((8, 3), 2))
    with pytest.raises(InputError):
        reference_stream(values_model(), np.full((6, 2), U64_MAX, np.uint64))


def _hostdev_missing() -> bool:
    try:
        paths.hostdev_executable()
    except ToolMissing:
        return True
    return False


@pytest.mark.skipif(_hostdev_missing(), reason="build/host/edgespike-hostdev not built")
def test_device_stream_refuses_bad_rows_and_keeps_running():
    from edgespike.device import HostDevice

    m = spike_model()
    good = (np.random.default_rng(3).random((8, 3)) < 0.4).astype(np.uint8)
    with HostDevice() as board, Device.open(board.url, timeout=5.0) as dev:
        dev.deploy(m)
        bad = good.astype(np.int64)
        bad[5, 1] = 2  # not a spike: once sent as an event, silently
        with pytest.raises(InputError, match="0 or 1"):
            list(dev.stream(ArraySource(bad)))  # refused before the stream starts

        def live():
            yield from good[:4]
            yield [0.0, 1.0, math.nan]
        with pytest.raises(InputError, match="stream step 4"):
            list(dev.stream(IterableSource(live(), live=True), batch_steps=1))
        # the stream was stopped: the device answers runs and streams as before
        assert_same(dev.run(good[:4]), reference.run(m, good[:4]))
        got = [d.prediction for d in dev.stream(ArraySource(good))]
        assert got == [d.prediction for d in reference_stream(m, good)]


# ---- edgespike run ----------------------------------------------------------------------------

def _one_line_error(capsys, argv: list[str], kind: str, text: str) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"edgespike run: {kind}: "), err
    assert text in err, err


def test_cli_run_bad_inputs_and_models(tmp_path, capsys):
    m = values_model()
    mpath = save(m, tmp_path / "m.bin")
    cases = {
        "u64.npy": (np.full((3, 2), U64_MAX, np.uint64), "18446744073709551615"),
        "i64.npy": (np.full((3, 2), I64_MIN, np.int64), "-9223372036854775808"),
        "nan.npy": (np.array([[np.nan, 0], [0, 0], [0, 0]]), "nan"),
        "half.npy": (np.array([[0.5, 0], [0, 0], [0, 0]]), "0.5"),
        "over.npy": (np.full((3, 2), 101, np.int16), "input_max_abs 100"),
    }
    for name, (x, text) in cases.items():
        np.save(tmp_path / name, x)
        _one_line_error(capsys, ["run", str(mpath), str(tmp_path / name)], "InputError", text)
        _one_line_error(capsys, ["run", str(mpath), str(tmp_path / name), "--backend", "core"],
                        "InputError", text)
    np.savez(tmp_path / "lab.npz", inputs=np.zeros((2, 3, 2), np.int8), labels=np.array([0, 2]))
    _one_line_error(capsys, ["run", str(mpath), str(tmp_path / "lab.npz")], "InputError",
                    "2 outputs")
    np.savez(tmp_path / "labf.npz", inputs=np.zeros((2, 3, 2), np.int8),
             labels=np.array([0, 0.5]))
    _one_line_error(capsys, ["run", str(mpath), str(tmp_path / "labf.npz")], "InputError", "0.5")
    ok = np.array([[3.0, -1.0], [100.0, -100.0], [0.0, 7.0]])
    np.save(tmp_path / "ok.npy", ok)
    assert main(["run", str(mpath), str(tmp_path / "ok.npy"), "--json"]) == 0
    assert f'"prediction": {reference.run(m, ok.astype(int)).prediction}' in capsys.readouterr().out

    good = str(tmp_path / "ok.npy")
    _one_line_error(capsys, ["run", str(tmp_path / "missing.bin"), good], "BlobError", "not found")
    _one_line_error(capsys, ["run", str(tmp_path), good], "BlobError", "not found")
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 40)
    _one_line_error(capsys, ["run", str(tmp_path / "junk.bin"), good], "BlobError", "junk.bin")
    # a correctly hashed blob with an unknown enum value (issue 12 case 11's blob), and one
    # whose model fails validation: one line each, no traceback
    msg = blob.to_message(m)
    msg.input_kind = 9
    body = msg.SerializeToString(deterministic=True)
    (tmp_path / "enum.bin").write_bytes(body + blob.HASH_TAG + struct.pack("<I", crc32(body)))
    _one_line_error(capsys, ["run", str(tmp_path / "enum.bin"), good], "BlobError", "enum.bin")
    msg = blob.to_message(m)
    msg.layers[0].neurons.du = 5000
    body = msg.SerializeToString(deterministic=True)
    (tmp_path / "du.bin").write_bytes(body + blob.HASH_TAG + struct.pack("<I", crc32(body)))
    _one_line_error(capsys, ["run", str(tmp_path / "du.bin"), good], "BlobError", "du")


def test_cli_run_has_no_traceback_in_a_subprocess(tmp_path):
    """The same through the installed entry point: exit 1, one line on stderr."""
    mpath = save(values_model(), tmp_path / "m.bin")
    np.save(tmp_path / "x.npy", np.full((3, 2), U64_MAX, np.uint64))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "host_sdk"))
    proc = subprocess.run([sys.executable, "-m", "edgespike.cli", "run", str(mpath),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "InputError" in proc.stderr
    assert "Traceback" not in proc.stderr
