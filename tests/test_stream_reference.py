"""The numpy reference of streaming (edgespike.stream.reference) and the stream sources."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from edgespike.encode import delta as float_delta
from edgespike.errors import InputError
from edgespike.model import from_bytes, to_bytes
from edgespike.model.quantized import Layer, Model, Neurons, Weights
from edgespike.sim import reference
from edgespike.stream import (
    ArraySource, EventArraySource, IterableSource, ReplaySource, delta_encode, parse_speed,
    reference_stream, resolve_window,
)
from edgespike.stream.sources import SerialSensorSource, parse_line


def spike_model(decoding: str = "spike_count", timesteps: int = 6) -> Model:
    rng = np.random.default_rng(0)
    return Model(name="s", input_size=8, timesteps=timesteps, decoding=decoding,
                 layers=[Layer(weights=Weights(rng.integers(-30, 60, (8, 10)).astype(np.int8)),
                               neurons=Neurons(vth=20, dv=300)),
                         Layer(weights=Weights(rng.integers(-30, 60, (10, 3)).astype(np.int8)),
                               neurons=Neurons(vth=20, dv=300))])


def test_per_window_equals_the_batch_run():
    m = spike_model()
    x = (np.random.default_rng(1).random((5, 6, 8)) < 0.4).astype(np.int64)
    got = reference_stream(m, x.reshape(-1, 8))
    ref = reference.run_batch(m, x)
    assert [(d.end_step, d.prediction, d.scores.tolist()) for d in got] == \
           [(6 * k + 5, r.prediction, r.scores.tolist()) for k, r in enumerate(ref)]


def test_trailing_partial_window_gives_no_decision():
    m = spike_model()
    x = np.zeros((15, 8), dtype=np.int64)
    assert [d.end_step for d in reference_stream(m, x)] == [5, 11]


def test_sliding_spike_count_is_the_windowed_raster_of_one_continuous_run():
    m = spike_model()
    x = (np.random.default_rng(2).random((40, 8)) < 0.4).astype(np.int64)
    got = reference_stream(m, x, window=10, hop=3)
    raster = reference.run(dataclasses.replace(m, timesteps=40), x).spikes[-1]
    assert [d.end_step for d in got] == list(range(9, 40, 3))
    for d in got:
        assert d.scores.tolist() == raster[d.end_step - 9: d.end_step + 1].sum(axis=0).tolist()


def test_sliding_membrane_last_and_unsupported_decodings():
    m = spike_model("membrane_last")
    x = (np.random.default_rng(3).random((20, 8)) < 0.4).astype(np.int64)
    got = reference_stream(m, x, window=6, hop=2)
    r = reference.run(dataclasses.replace(m, timesteps=20), x)
    assert got[-1].end_step == 19 and got[-1].scores.tolist() == r.v[-1].tolist()
    with pytest.raises(InputError):
        reference_stream(spike_model("membrane_sum"), x, window=6, hop=2)


def test_resolve_window_rules():
    m = spike_model()
    assert resolve_window(m) == (6, 6)
    assert resolve_window(dataclasses.replace(m, stream_window=10, stream_hop=5)) == (10, 5)
    assert resolve_window(dataclasses.replace(m, stream_window=10), hop=2) == (10, 2)
    with pytest.raises(InputError):
        resolve_window(m, 4, 5)


def test_stream_fields_round_trip_and_are_absent_by_default():
    m = spike_model()
    plain = to_bytes(m)
    assert from_bytes(plain).stream_window == 0
    m2 = dataclasses.replace(m, stream_window=12, stream_hop=4)
    b2 = to_bytes(m2)
    assert len(b2) == len(plain) + 4  # two one-byte tags + two one-byte varints
    back = from_bytes(b2)
    assert (back.stream_window, back.stream_hop) == (12, 4)
    assert b2[-6:-4] == plain[-6:-4]  # the content hash stays last


def test_integer_delta_encoder_follows_the_float_rule():
    rng = np.random.default_rng(4)
    s = np.cumsum(rng.integers(-9, 10, size=(50, 3)), axis=0)
    th = [4, 7, 2]
    got = delta_encode(s, th)
    want = float_delta(s[None].astype(np.float32), np.array(th, dtype=np.float32))[0]
    assert np.array_equal(got, want.astype(np.uint8))
    # at most one of UP / DOWN per channel and step
    assert not (got[:, :3] & got[:, 3:]).any()
    # per-window: the reference restarts at every window's first sample
    per = delta_encode(s, th, reset_every=10)
    assert np.array_equal(per[:10], got[:10]) and not per[10].any()
    with pytest.raises(InputError):
        delta_encode(s, [0, 1, 1])


def test_raw_stream_reference_is_the_model_on_encoded_windows():
    m = spike_model()
    s = np.cumsum(np.random.default_rng(5).integers(-5, 6, size=(24, 4)), axis=0)
    th = [2, 3, 2, 4]
    got = reference_stream(m, s, raw_thresholds=th)
    for k, d in enumerate(got):
        enc = delta_encode(s[6 * k: 6 * k + 6], th)
        assert d.scores.tolist() == reference.run(m, enc).scores.tolist()


def test_parse_speed():
    assert parse_speed("10x") == 10.0 and parse_speed("0.5x") == 0.5 and parse_speed(3) == 3.0
    assert math.isinf(parse_speed("max")) and math.isinf(parse_speed(0))
    with pytest.raises(InputError):
        parse_speed("fast please")


def test_sources():
    x = np.arange(24).reshape(2, 3, 4)
    a = ArraySource(x)
    assert len(a) == 6 and a.step_s is None and [r.tolist() for r in a][3] == [12, 13, 14, 15]
    r = ReplaySource(x, dt_s=0.1, speed="10x")
    assert r.step_s == pytest.approx(0.01)
    assert ReplaySource(x, dt_s=0.1, speed="max").step_s is None
    with pytest.raises(InputError):
        ArraySource(np.array([[0.5, 1.0]]))
    ev = EventArraySource(np.array([[0, 1], [2, 3], [0, 0]]), width=4)
    assert [r.tolist() for r in ev] == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    dvs = np.zeros(2, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "<i1")])
    dvs["t"], dvs["x"] = [1, 1], [2, 0]
    assert [r.tolist() for r in EventArraySource(dvs, width=3, steps=3)] == \
           [[0, 0, 0], [1, 0, 1], [0, 0, 0]]
    it = IterableSource(([i, -i] for i in range(3)), raw=True)
    assert it.raw and [r.tolist() for r in it] == [[0, 0], [1, -1], [2, -2]]
    assert parse_line("12, -3\t7\n").tolist() == [12, -3, 7] and parse_line("# hi") is None


def test_serial_sensor_source_reads_lines_from_a_port():
    import serial

    port = serial.serial_for_url("loop://", timeout=0.2)
    port.write(b"1,2,3\nnoise\n4,5,6\n7,8\n")
    src = SerialSensorSource("loop://", channels=3, timeout=0.2)
    # pyserial's loop:// is per instance: read through the one we wrote to
    real = serial.serial_for_url
    try:
        serial.serial_for_url = lambda *a, **k: port  # noqa: E731
        src_iter_rows = [r.tolist() for r in src]
    finally:
        serial.serial_for_url = real
    assert src_iter_rows == [[1, 2, 3], [4, 5, 6]] and src.raw
