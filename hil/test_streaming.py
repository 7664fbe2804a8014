"""Live streaming on a board (issue #5): exactness against the batch run, credit-based flow
control with zero loss, sequence gaps, and a dropped connection mid-stream.

The BasicMotions test streams the whole test set (40 samples x 100 steps) as fast as the
device takes it, and a slice of it (the first 8 samples, 800 steps = 80 s of data) at 10x real
time (10 ms per step, about 8 s): the full 10x replay would take 40 s of the suite's budget.
Both must give exactly the decisions of the batch run (Device.run) on the same samples.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import hil_models as hm
from edgespike.device import Device, Transport
from edgespike.errors import DeviceRejected, StreamInterrupted
from edgespike.model import Model
from edgespike.protocol import pb
from edgespike.sim import reference
from edgespike.stream import IterableSource, reference_stream



def deploy(dev: Device, model: Model) -> None:
    dev.hello()
    dev.deploy(model)


def reconnect(dev: Device) -> None:
    """Open the device's link again (same URL) after it was dropped."""
    url = dev.transport.url
    dev.transport.close()
    dev.transport = Transport(url, connect_timeout=10.0)
    dev._decoder.reset()
    dev._pending.clear()
    # the drop may have cut a frame: resync ends it and lets the device's Error (seq 0) for it,
    # and any late frame of the old stream, go by
    dev.resync(quiet=0.3)


@pytest.fixture(scope="module")
def basic_motions():
    """A small int8 SNN trained for a few epochs on BasicMotions (exactness, not accuracy, is
    checked) and the test set as the model's integer input (40, 100, 6)."""
    torch = pytest.importorskip("torch")
    from edgespike.nn import NeuronConfig, mlp
    from edgespike.quant import export, quantize
    from edgespike.train import TrainConfig, Trainer
    from edgespike.train.pipeline import prepare

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = prepare("basic_motions", "direct", 8, 0)
        torch.manual_seed(0)
        net = mlp([data.channels, 16, len(data.labels)], NeuronConfig(du=4096, dv=410))
        Trainer(net, TrainConfig(epochs=2, lr=1e-2, batch_size=8, seed=0)).fit(
            data.x_train, data.y_train)
        q = quantize(net, "int8", data.x_train, data.y_train, qat_epochs=1,
                     input_kind=data.input_kind, batch_size=8, seed=0)
        model = export(q, data.timesteps, name="basic_motions-int8", labels=data.labels)
        x = q.integer_input(data.x_test).numpy().astype(np.int64)
    finally:
        torch.set_num_threads(threads)
    model.dt_us = 100_000  # BasicMotions: 10 Hz
    return model, x


def same_decisions(got, want) -> None:
    assert [(d.index, d.end_step, d.prediction) for d in got] == \
           [(k, (k + 1) * w - 1, r.prediction) for k, (w, r) in enumerate(want)]
    for d, (_, r) in zip(got, want):
        assert d.scores.tolist() == r.scores.tolist()


def test_basic_motions_stream_equals_batch_run(device, basic_motions):
    model, x = basic_motions
    deploy(device, model)
    assert x.shape == (40, 100, 6)
    batch = [device.run(s) for s in x]  # the batch run on the device
    ref = reference.run_batch(model, x)
    assert [b.prediction for b in batch] == [r.prediction for r in ref]
    want = [(model.timesteps, b) for b in batch]

    # the whole test set, as fast as the device takes it
    s = device.stream(x)
    got = list(s)
    same_decisions(got, want)
    assert s.stats.device_steps == 40 * 100 and s.stats.device_items == x.size

    # the whole test set again at 10x real time (40 s): 10 ms per step, the device paced
    s = device.stream(x, speed="10x")
    assert s.source.step_s == pytest.approx(0.01)
    t0 = time.monotonic()
    got = list(s)
    took = time.monotonic() - t0
    same_decisions(got, want)
    assert s.stats.step_us == 10_000 and s.stats.window == model.timesteps
    assert took >= 40 * 100 * 0.01 * 0.95  # paced, not faster than 10x
    assert all(d.latency_s > 0 for d in got)


def test_fast_host_is_held_back_by_credits_and_nothing_is_lost(device):
    model = hm.values_model(2)
    deploy(device, model)
    x = hm.value_inputs(model, 40, 7).reshape(-1, model.input_size)  # 320 steps
    before = device.stream_stats()
    runs_before = device.stats()
    # the host offers every step at once (an unpaced array); the device runs one step per
    # 2 ms: the host must wait for credit, and every batch must arrive
    s = device.stream(x, free_run=False, step_us=2000, batch_steps=2)
    got = list(s)
    after = device.stream_stats()
    st = s.stats
    assert st.credit_waits > 0 and st.credit_wait_s > 0.1
    assert st.max_in_flight <= st.credit_limit - st.last_acked_seq or st.max_in_flight <= 8
    assert st.max_in_flight <= 8  # the device's queue (ES_STREAM_SLOTS)
    assert st.batches_sent == 160 and st.last_acked_seq == 160
    assert after["stream_batches"] - before["stream_batches"] == st.batches_sent
    assert after["stream_items"] - before["stream_items"] == st.items_sent == x.size
    assert after["stream_steps"] - before["stream_steps"] == 320
    assert after["stream_gaps"] == before["stream_gaps"]
    assert device.stats().rx_overruns == runs_before.rx_overruns
    ref = reference_stream(model, x)
    assert [(d.end_step, d.scores.tolist()) for d in got] == \
           [(r.end_step, r.scores.tolist()) for r in ref]


def test_sequence_gap_is_reported(device):
    model = hm.dense_model(0)
    deploy(device, model)
    reply = device.request_frame(stream_start=pb.StreamStart(free_run=True))
    assert reply.WhichOneof("body") == "output_batch"
    assert reply.output_batch.credit_limit >= 1 and reply.output_batch.acked_seq == 0
    gaps = device.stream_stats()["stream_gaps"]
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(event_batch=pb.EventBatch(batch_seq=2, first_step=0, n_steps=1))
    assert info.value.code == "ERR_STREAM_GAP" and info.value.detail == 1
    assert device.stream_stats()["stream_gaps"] == gaps + 1
    # the stream is over: another batch is refused, the device serves runs
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(event_batch=pb.EventBatch(batch_seq=1, first_step=0, n_steps=1))
    assert info.value.code == "ERR_NOT_STREAMING"
    x = hm.spike_inputs(model, 1, 5)[0]
    assert device.run(x).scores.tolist() == reference.run(model, x).scores.tolist()


def test_dropped_connection_is_reported_and_the_device_returns_to_idle(device):
    model = hm.dense_model(0)
    deploy(device, model)
    x = hm.spike_inputs(model, 20, 3).reshape(-1, model.input_size)  # 240 steps
    before = device.stream_stats()

    def rows():
        for k, r in enumerate(x):
            if k == 100:
                device.transport._ser.close()  # the cable is pulled
            yield r

    s = device.stream(IterableSource(rows(), step_s=0.002), batch_steps=1, idle_timeout_ms=300)
    got = []
    with pytest.raises(StreamInterrupted) as info:
        for d in s:
            got.append(d)
    err = info.value
    assert 0 < err.last_acked_seq <= err.last_sent_seq <= 100
    assert err.last_acked_seq == s.stats.last_acked_seq
    # every decision of an acknowledged batch (1 step each) was delivered, in order
    assert [d.end_step for d in got] == list(range(11, err.last_acked_seq, 12))[:len(got)]
    assert len(got) == err.last_acked_seq // 12

    time.sleep(1.5)  # past the stall timeout (300 ms of device time)
    reconnect(device)
    after = device.stream_stats()  # Stats does not end a stream: the device did it itself
    assert after["streams_aborted"] == before["streams_aborted"] + 1
    assert after["stream_batches"] - before["stream_batches"] >= err.last_acked_seq
    info2 = device.hello()
    assert info2.model_loaded
    xr = hm.spike_inputs(model, 1, 11)[0]
    assert device.run(xr).scores.tolist() == reference.run(model, xr).scores.tolist()
    # and a new stream works
    got = list(device.stream(x[:48]))
    assert [d.scores.tolist() for d in got] == \
           [r.scores.tolist() for r in reference_stream(model, x[:48])]


def test_stream_refuses_a_hop_beyond_the_window(device):
    deploy(device, hm.values_model(2))
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(stream_start=pb.StreamStart(window=8, hop=9))
    assert info.value.code == "ERR_BAD_INPUT"
