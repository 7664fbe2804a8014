"""The C core (through ctypes) against the numpy reference: identical, bit for bit.

Random valid models (tests/strategies.py) and random inputs must give the same spikes in every
layer, the same final u, v and adaptive thresholds, counters, scores and prediction. Hostile
blobs and bad inputs must be rejected with the C core's own text as named exceptions.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgespike import paths
from edgespike.errors import BlobError, InputError, ModelError, ToolMissing
from edgespike.model import blob
from edgespike.model.quantized import Layer, Model, Neurons, Weights
from edgespike.protocol import crc32
from edgespike.sim import reference

from strategies import inputs, models

try:
    from edgespike.sim import core
    core.library()
    _MISSING = ""
except ToolMissing as exc:  # the build has not run
    _MISSING = str(exc)

pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"C host library not built: {_MISSING}")


def assert_same(model: Model, ref_out: reference.RunOutput, c_out: reference.RunOutput) -> None:
    """Every observable of one inference is identical."""
    for li in range(len(model.layers)):
        np.testing.assert_array_equal(c_out.spikes[li], ref_out.spikes[li], err_msg=f"spikes, layer {li}")
        np.testing.assert_array_equal(c_out.u[li], ref_out.u[li], err_msg=f"u, layer {li}")
        np.testing.assert_array_equal(c_out.v[li], ref_out.v[li], err_msg=f"v, layer {li}")
        np.testing.assert_array_equal(c_out.th[li], ref_out.th[li], err_msg=f"th, layer {li}")
    assert c_out.counters == ref_out.counters
    np.testing.assert_array_equal(c_out.scores, ref_out.scores)
    assert c_out.prediction == ref_out.prediction


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_random_models_match_reference(data):
    model = data.draw(models())
    x = data.draw(inputs(model, batch=2))
    ref_outs = reference.run_batch(model, x)
    c_outs = core.run_batch(model, x)
    assert len(c_outs) == len(ref_outs)
    for r, c in zip(ref_outs, c_outs):
        assert_same(model, r, c)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_small_models_many_steps_match_reference(data):
    """Long runs on small models: states drift far (wraps, clips, adaptive growth)."""
    model = data.draw(models(max_layers=3, max_width=8, max_input=8, max_timesteps=300))
    x = data.draw(inputs(model, batch=3))
    for r, c in zip(reference.run_batch(model, x), core.run_batch(model, x)):
        assert_same(model, r, c)


def _dense(fan_in: int, fan_out: int, value: int, exp: int = 0, **neurons) -> Layer:
    return Layer(weights=Weights(np.full((fan_in, fan_out), value, dtype=np.int8), exp=exp),
                 neurons=Neurons(**neurons))


def test_current_wraps_at_24_bits_like_reference():
    """u accumulates past +2^23 (du = 0: no decay) and wraps; v clips; both as the reference."""
    model = Model(input_size=1, timesteps=40, input_kind="values", input_max_abs=32767,
                  layers=[_dense(1, 2, 127, exp=-16, du=0, dv=0, vth=VTH)], decoding="membrane_last")
    model.layers[0].weights.values[0, 1] = -128
    x = np.full((40, 1), 32767, dtype=np.int32)
    r, c = reference.run(model, x), core.run(model, x)
    assert_same(model, r, c)
    assert (r.u[0] < 0).any() or (np.abs(r.u[0]) > 1 << 22).any()


VTH = (1 << 17) - 1


def test_predict_and_ties_go_to_lowest_index():
    model = Model(input_size=2, timesteps=3, layers=[_dense(2, 4, 100, vth=10)])
    x = np.zeros((2, 3, 2), dtype=np.uint8)
    x[1, :, 0] = 1
    np.testing.assert_array_equal(core.predict(model, x), reference.predict(model, x))
    assert list(core.predict(model, x)) == [0, 0]  # all scores tie in both inputs


def _variants() -> list[Model]:
    """Models covering every optional block of the arena."""
    out = []
    rng = np.random.default_rng(7)
    for adaptive in (0, 9):
        for refractory in (0, 3):
            for recurrent in (False, True):
                for size in (1, 3, 5, 64):
                    for fan_in in (1, 2, 7):
                        w = Weights(rng.integers(-3, 4, (fan_in, size)).astype(np.int8))
                        rec = Weights(rng.integers(-3, 4, (size, size)).astype(np.int8)) if recurrent else None
                        second = Layer(weights=Weights(rng.integers(-3, 4, (size, 3)).astype(np.int8)))
                        out.append(Model(input_size=fan_in, timesteps=4, layers=[
                            Layer(weights=w, recurrent=rec,
                                  neurons=Neurons(adapt_step=adaptive, adapt_decay=100,
                                                  refractory=refractory)),
                            second]))
    return out


def test_arena_bytes_equal_model_state_bytes():
    for model in _variants():
        assert core.arena_bytes(model) == model.state_bytes(), model


def test_arena_bytes_for_hypothesis_models():
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(models())
    def check(model):
        assert core.arena_bytes(model) == model.state_bytes()

    check()


# ---- rejection: hostile blobs ----------------------------------------------------------------

def _small_model(encoding: str = "int8") -> Model:
    if encoding == "int8":
        w = Weights(np.array([[1, -2, 3], [0, 5, -6]], dtype=np.int8))
    else:
        w = Weights(np.array([[1, -1, 0], [0, 1, -1]], dtype=np.int8), encoding="ternary",
                    a_pos=3, a_neg=2)
    return Model(input_size=2, timesteps=4, layers=[Layer(weights=w, neurons=Neurons(vth=1))])


def _seal(body: bytes) -> bytes:
    """Append a correct content hash, as blob.to_bytes does."""
    return body + blob.HASH_TAG + struct.pack("<I", crc32(body))


def _edited(model: Model, edit) -> bytes:
    msg = blob.to_message(model)
    edit(msg)
    return _seal(msg.SerializeToString(deterministic=True))


def _c_error(b: bytes) -> ModelError:
    with pytest.raises(ModelError) as info:
        core.CoreModel(b)
    return info.value


def test_rejects_truncated_and_corrupted_blobs():
    good = blob.to_bytes(_small_model())
    core.CoreModel(good)  # accepted
    for cut in range(len(good)):
        err = _c_error(good[:cut])
        assert isinstance(err, BlobError) and "C core:" in str(err)
    bad = bytearray(good)
    bad[3] ^= 0x40
    assert "content hash mismatch" in str(_c_error(bytes(bad)))
    assert "content hash missing" in str(_c_error(good[:-6]))


@pytest.mark.parametrize("edit, text", [
    (lambda m: setattr(m, "format_version", 2), "format version 2"),
    (lambda m: setattr(m, "timesteps", 0), "timesteps=0"),
    (lambda m: setattr(m, "input_size", 3), "layer 0: fan_in 2 != previous size 3"),
    (lambda m: setattr(m.layers[0].weights, "data", b"\x01\x02"), "int8 data is 2 bytes, not 6"),
    (lambda m: setattr(m.layers[0].weights, "exp", 17), "weight exp 17 outside -31..16"),
    (lambda m: setattr(m.layers[0].weights, "exp", 16), "worst-case input"),
    (lambda m: setattr(m.layers[0].neurons, "du", 4097), "du=4097 outside 0..4096"),
    (lambda m: setattr(m.layers[0].neurons, "vth", 131072), "vth=131072 outside"),
    (lambda m: setattr(m.layers[0].neurons, "bias_mant", -4097), "bias_mant=-4097"),
    (lambda m: setattr(m.layers[0].neurons, "bias_exp", 8), "bias_exp=8"),
    (lambda m: setattr(m.layers[0].neurons, "refractory", 256), "refractory=256"),
    (lambda m: setattr(m.layers[0].neurons, "vth_per_neuron", b"\x00" * 8), "vth_per_neuron is 8 bytes, not 12"),
    (lambda m: setattr(m.layers[0].neurons, "vth_per_neuron", struct.pack("<3I", 1, 1 << 17, 1)), "vth of neuron 1"),
    (lambda m: setattr(m.layers[0].neurons, "bias_per_neuron", struct.pack("<3h", 0, 0, 5000)), "bias of neuron 2"),
    (lambda m: setattr(m.layers[0], "size", 4), "size 4 != weights fan_out 3"),
    (lambda m: setattr(m.layers[0], "kind", 1), "layer 0 recurrent: empty weight matrix"),
    (lambda m: m.ClearField("layers"), "at least one layer"),
    (lambda m: [m.layers.add().CopyFrom(m.layers[0]) for _ in range(8)], "more than 8 layers"),
    (lambda m: setattr(m, "input_kind", 1) or setattr(m, "input_max_abs", 0), "input_max_abs=0"),
])
def test_rejects_invalid_fields_with_c_text(edit, text):
    err = _c_error(_edited(_small_model(), edit))
    assert text in str(err), str(err)


def test_rejects_bad_ternary_codes_and_magnitudes():
    model = _small_model("ternary")
    core.CoreModel(model)

    def bad_code(m):
        data = bytearray(m.layers[0].weights.data)
        data[1] |= 0b11 << 2  # row 1, column 1
        m.layers[0].weights.data = bytes(data)

    assert "ternary code 0b11 at row 1, column 1" in str(_c_error(_edited(model, bad_code)))
    assert "a_pos=0" in str(_c_error(_edited(model, lambda m: setattr(m.layers[0].weights, "a_pos", 0))))
    assert "a_neg_per_neuron has 2 values for 3" in str(_c_error(_edited(
        model, lambda m: setattr(m.layers[0].weights, "a_neg_per_neuron", b"\x01\x01"))))

    def pad_code(m):  # codes past fan_out are padding, ignored (as the SDK does)
        data = bytearray(m.layers[0].weights.data)
        data[0] |= 0b11 << 6
        m.layers[0].weights.data = bytes(data)

    core.CoreModel(_edited(model, pad_code))


@settings(max_examples=150, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
       seed=st.integers(0, 2**16))
def test_flipped_bytes_with_fixed_hash_never_misbehave(flips, seed):
    """Byte flips with a re-sealed hash: the C core rejects with a named error, or accepts a
    blob the SDK also accepts, and then runs it exactly as the reference does."""
    model = _small_model("ternary" if seed % 2 else "int8")
    body = bytearray(blob.to_bytes(model)[:-6])
    for pos, mask in flips:
        body[pos % len(body)] ^= mask
    b = _seal(bytes(body))
    try:
        cm = core.CoreModel(b)
    except ModelError as exc:
        assert str(exc).startswith("C core:")
        return
    try:
        parsed = blob.from_bytes(b)  # the SDK accepts what the device accepts...
    except BlobError as exc:
        # ...except texts the device skips (name, labels): protobuf checks their UTF-8
        assert "UTF-8" in str(exc), str(exc)
        return
    x = (np.random.default_rng(seed).random((2, parsed.timesteps, parsed.input_size)) < 0.5)
    x = x.astype(np.uint8) if parsed.input_kind == "spikes" else x.astype(np.int32)
    for r, c in zip(reference.run_batch(parsed, x), cm.run_batch(x)):
        assert_same(parsed, r, c)


# ---- rejection: bad inputs -------------------------------------------------------------------

def test_rejects_bad_events_with_c_text():
    cm = core.CoreModel(_small_model())
    ok = cm.run_events(np.array([(0 << 16) | 1, (2 << 16) | 0], dtype=np.uint32))
    r = reference.run(_small_model(), reference.spikes_from_events([(0 << 16) | 1, (2 << 16) | 0], 4, 2))
    assert_same(_small_model(), r, ok)
    cases = [
        ([(4 << 16) | 0], "event 0: step 4 >= timesteps 4"),
        ([(0 << 16) | 2], "event 0: index 2 >= input_size 2"),
        ([(1 << 16) | 0, (0 << 16) | 1], "event 1: not after event 0"),
        ([(1 << 16) | 1, (1 << 16) | 1], "event 1: not after event 0"),
    ]
    for events, text in cases:
        with pytest.raises(InputError, match=text):
            cm.run_events(np.array(events, dtype=np.uint32))


def test_rejects_bad_values_with_c_text():
    model = Model(input_size=2, timesteps=3, input_kind="values", input_max_abs=100,
                  layers=[_dense(2, 2, 1)])
    cm = core.CoreModel(model)
    x = np.zeros((3, 2), dtype=np.int32)
    x[2, 1] = -101
    with pytest.raises(InputError, match=r"value 5 \(step 2, index 1\) is -101, beyond input_max_abs 100"):
        cm.run(x)
    with pytest.raises(InputError, match="5 input values; the model takes timesteps x input_size = 6"):
        cm.run_values(np.zeros(5, dtype=np.int32))
    with pytest.raises(InputError, match="input shape"):
        cm.run(np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(InputError, match="spike input must be 0 or 1"):
        core.run(_small_model(), np.full((4, 2), 2, dtype=np.uint8))
    with pytest.raises(InputError, match="input 1: value"):
        cm.run_batch(np.stack([np.zeros((3, 2), dtype=np.int32), x]))


def test_missing_library_is_tool_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESPIKE_BUILD", str(tmp_path))
    with pytest.raises(ToolMissing, match="bash firmware/build.sh"):
        core.run(_small_model(), np.zeros((4, 2), dtype=np.uint8))
    assert paths.build_dir() == tmp_path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_parsed_once_and_threads_match_reference(data):
    """The host entry points (the blob parsed once, batches split over threads, each with its
    own arena) give what es_run_batch gives: the reference's results, input for input."""
    model = data.draw(models(max_layers=3, max_width=64, max_input=64, max_timesteps=12))
    x = data.draw(inputs(model, batch=data.draw(st.integers(1, 9))))
    want = reference.run_batch(model, x)
    threads = data.draw(st.integers(1, 3))
    cm = core.CoreModel(model, threads=threads)
    assert cm._parsed is not None  # the library built here has them
    for r, c in zip(want, cm.run_batch(x)):
        assert_same(model, r, c)
    np.testing.assert_array_equal(cm.predict(x), [r.prediction for r in want])
    cm._parsed = None  # the per-call parse of es_run_batch
    for r, c in zip(want, cm.run_batch(x)):
        assert_same(model, r, c)


def test_threads_report_the_input_that_failed():
    """A value beyond input_max_abs (checked by the C core) in input 6 of 8, split over three
    threads: the error names input 6, and the other threads' results are not returned."""
    model = Model(input_size=2, timesteps=3, input_kind="values", input_max_abs=100,
                  layers=[_dense(2, 2, 3)])
    x = np.zeros((8, 3, 2), dtype=np.int32)
    x[6, 1, 0] = 101
    for threads in (1, 3):
        with pytest.raises(InputError, match="input 6: value 2 \\(step 1, index 0\\) is 101"):
            core.CoreModel(model, threads=threads).run_batch(x)
    x[6, 1, 0] = 100
    want = reference.run_batch(model, x)
    for r, c in zip(want, core.run_batch(model, x, threads=3)):
        assert_same(model, r, c)


def test_module_functions_reuse_a_core_model_while_the_model_is_unchanged():
    model = _small_model()
    assert core.core_model(model) is core.core_model(model)
    before = core.core_model(model)
    model.layers[0].weights.values[0, 0] = 2
    assert core.core_model(model) is not before
    x = np.ones((4, 2), dtype=np.uint8)
    assert_same(model, reference.run(model, x), core.run(model, x))
