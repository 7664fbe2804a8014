"""Device.stream against the host device (the firmware's link compiled for this machine):
exactness against edgespike.stream.reference, raw samples, sliding windows, recorded spikes,
a dropped link, and the ``edgespike stream`` verb. Skips when build/host is not built."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgespike import paths
from edgespike.cli import main
from edgespike.device import Device, HostDevice
from edgespike.errors import DeviceRejected, StreamInterrupted, ToolMissing
from edgespike.model import save
from edgespike.model.quantized import Layer, Model, Neurons, Weights
from edgespike.sim import reference
from edgespike.stream import ArraySource, IterableSource, reference_stream


def _hostdev_missing() -> str | None:
    try:
        paths.hostdev_executable()
    except ToolMissing as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_hostdev_missing() is not None,
                                reason="build/host/edgespike-hostdev not built")


def spike_model() -> Model:
    rng = np.random.default_rng(0)
    return Model(name="s", input_size=8, timesteps=6, labels=["a", "b", "c"],
                 layers=[Layer(weights=Weights(rng.integers(-30, 60, (8, 10)).astype(np.int8)),
                               neurons=Neurons(vth=20, dv=300)),
                         Layer(weights=Weights(rng.integers(-30, 60, (10, 3)).astype(np.int8)),
                               neurons=Neurons(vth=20, dv=300))])


def values_model() -> Model:
    rng = np.random.default_rng(1)
    return Model(name="v", input_size=3, timesteps=5, input_kind="values", input_max_abs=40,
                 decoding="membrane_sum", dt_us=2000,
                 layers=[Layer(weights=Weights(rng.integers(-50, 50, (3, 6)).astype(np.int8)),
                               neurons=Neurons(vth=40, dv=400)),
                         Layer(weights=Weights(rng.integers(-50, 50, (6, 2)).astype(np.int8)),
                               neurons=Neurons(vth=40, dv=400))])


@pytest.fixture(scope="module")
def board():
    with HostDevice() as b:
        yield b


@pytest.fixture
def dev(board):
    with Device.open(board.url, timeout=5.0) as d:
        d.hello()
        yield d


def same(got, ref):
    assert [(d.index, d.end_step, d.prediction, d.scores.tolist()) for d in got] == \
           [(r.index, r.end_step, r.prediction, r.scores.tolist()) for r in ref]


def test_values_stream_equals_reference_and_batch_run(dev):
    m = values_model()
    dev.deploy(m)
    x = np.random.default_rng(2).integers(-40, 41, (12, 5, 3))
    s = dev.stream(x)
    got = list(s)
    same(got, reference_stream(m, x.reshape(-1, 3)))
    assert [d.prediction for d in got] == [dev.run(xi).prediction for xi in x]
    st = s.stats
    assert st.device_steps == 60 and st.device_items == x.size == st.items_sent
    assert st.window == 5 and st.hop == 5 and st.step_us == 0
    assert all(d.device_time > 0 and d.device_latency >= 0 for d in got)


def test_spike_stream_with_labels_spikes_and_paced_replay(dev):
    m = spike_model()
    dev.deploy(m)
    x = (np.random.default_rng(3).random((4, 6, 8)) < 0.4).astype(np.int64)
    s = dev.stream(x, speed=500, record_spikes=True)  # dt 1 ms / 500: 2 us per step
    got = list(s)
    same(got, reference_stream(m, x.reshape(-1, 8)))
    assert got[0].label == m.labels[got[0].prediction]
    want = []
    for k, r in enumerate(reference.run_batch(m, x)):
        t, i = np.nonzero(r.spikes[-1])
        want += [(6 * k + int(a), int(b)) for a, b in zip(t, i)]
    assert sorted(s.spikes) == sorted(want) and not s.spikes_truncated
    assert s.stats.step_us == 2 and s.stats.batches_sent == 24  # one step per batch


def test_raw_samples_are_delta_encoded_on_the_device(dev):
    m = spike_model()  # 8 inputs = UP/DOWN of 4 channels
    dev.deploy(m)
    samples = np.cumsum(np.random.default_rng(4).integers(-6, 7, size=(36, 4)), axis=0)
    th = [2, 3, 4, 2]
    got = list(dev.stream(ArraySource(samples, raw=True), thresholds=th))
    same(got, reference_stream(m, samples, raw_thresholds=th))
    with pytest.raises(DeviceRejected) as info:
        list(dev.stream(ArraySource(samples[:, :3], raw=True), thresholds=[1, 1, 1]))
    assert info.value.code == "ERR_BAD_INPUT"


def test_sliding_windows_on_the_device(dev):
    m = spike_model()
    dev.deploy(m)
    x = (np.random.default_rng(5).random((50, 8)) < 0.4).astype(np.int64)
    same(list(dev.stream(x, window=10, hop=3)), reference_stream(m, x, window=10, hop=3))
    got = list(dev.stream(x, window=8, hop=8, batch_steps=3))
    same(got, reference_stream(m, x, window=8, hop=8))


def test_model_declares_its_window(dev):
    m = spike_model()
    m.stream_window, m.stream_hop = 9, 4
    dev.deploy(m)
    x = (np.random.default_rng(6).random((30, 8)) < 0.4).astype(np.int64)
    s = dev.stream(x)
    same(list(s), reference_stream(m, x))
    assert (s.stats.window, s.stats.hop) == (9, 4)


def test_dropped_link_raises_stream_interrupted_and_the_device_serves_again(board, dev):
    m = spike_model()
    dev.deploy(m)
    x = (np.random.default_rng(7).random((200, 8)) < 0.4).astype(np.int64)

    def rows():
        for k, r in enumerate(x):
            if k == 60:
                dev.transport._ser.close()
            yield r

    s = dev.stream(IterableSource(rows(), step_s=0.0005), batch_steps=1)
    with pytest.raises(StreamInterrupted) as info:
        list(s)
    assert 0 < info.value.last_acked_seq <= info.value.last_sent_seq <= 60
    assert "last acknowledged batch" in str(info.value)
    with Device.open(board.url, timeout=5.0) as d2:
        st = d2.stats()
        assert st.streams_aborted >= 1 and st.stream_batches >= info.value.last_acked_seq
        assert d2.hello().model_loaded
        xr = x[:6]
        assert d2.run(xr, model=m).scores.tolist() == reference.run(m, xr).scores.tolist()


def test_cli_stream_json(board, tmp_path, capsys):
    m = values_model()
    save(m, tmp_path / "m.bin")
    x = np.random.default_rng(8).integers(-40, 41, (6, 5, 3))
    np.save(tmp_path / "x.npy", x)
    rc = main(["stream", str(tmp_path / "m.bin"), "--source", str(tmp_path / "x.npy"),
               "--port", board.url, "--speed", "max", "--json"])
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    decisions, summary = lines[:-1], lines[-1]["summary"]
    ref = reference_stream(m, x.reshape(-1, 3))
    assert [d["scores"] for d in decisions] == [r.scores.tolist() for r in ref]
    assert summary["device_items"] == x.size and summary["decisions"] == 6
    rc = main(["stream", str(tmp_path / "m.bin"), "--source", str(tmp_path / "x.npy"),
               "--port", board.url, "--speed", "100x", "--limit", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and "decision #1" in out and "latency" in out and "events/s" in out


def test_cli_stream_help_has_an_example():
    with pytest.raises(SystemExit) as info:
        main(["stream", "--help"])
    assert info.value.code == 0


def test_leaving_a_stream_early_stops_it_cleanly(dev):
    m = spike_model()
    dev.deploy(m)
    x = (np.random.default_rng(9).random((600, 8)) < 0.4).astype(np.int64)
    before = dev.stats()
    for d in dev.stream(x, batch_steps=6):
        break
    assert d.index == 0
    assert dev.hello().model_loaded  # skips the stream's last frames, answers
    after = dev.stats()
    assert after.streams_started == before.streams_started + 1
    assert after.streams_aborted == before.streams_aborted  # a StreamStop, not an abort


def test_a_source_pausing_past_the_stall_timeout_is_reported(dev):
    import time

    m = spike_model()
    dev.deploy(m)
    x = (np.random.default_rng(10).random((30, 8)) < 0.4).astype(np.int64)

    def rows():
        for k, r in enumerate(x):
            if k == 12:
                time.sleep(0.5)  # the sensor goes quiet
            yield r

    with pytest.raises(StreamInterrupted) as info:
        list(dev.stream(IterableSource(rows()), batch_steps=1, idle_timeout_ms=100))
    assert info.value.last_acked_seq == 12
    assert dev.stats().streams_aborted >= 1


def test_live_sources_send_every_step_at_once_and_arrays_fill_batches(dev):
    m = spike_model()
    dev.deploy(m)
    x = (np.random.default_rng(11).random((24, 8)) < 0.4).astype(np.int64)
    live = dev.stream(IterableSource(iter(x)))
    same(list(live), reference_stream(m, x))
    assert live.stats.batches_sent == 24 and live.stats.step_us == 0
    bulk = dev.stream(x)
    same(list(bulk), reference_stream(m, x))
    assert bulk.stats.batches_sent == 1
