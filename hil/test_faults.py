"""Fault injection (issue 12): a proxy between the SDK and a board drops, corrupts, duplicates
and delays frames while runs, uploads and streams go through.

Every request must end with its answer or a named error (an EdgeSpikeError) within a bounded
time; every answer that comes must be exact (the reference's); the committed model must stay
intact (one of the models deployed, running exactly); and nothing may be counted twice:
with every frame duplicated both ways, the device's Run, commit and EventBatch counters equal
what the host sent, and every duplicate is dropped as stale (FRAMING.md "Sessions").

Starts its own board (the one hil/ runs on, default the emulated mps2-an386) behind a
loopback proxy (hil/fault_proxy.py); skipped with --port. About 15-30 s.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import hil_models as hm
from edgespike.device import Device, make_board
from edgespike.device.client import content_hash
from edgespike.errors import EdgeSpikeError
from edgespike.model import Model
from edgespike.sim import reference
from edgespike.stream import reference_stream
from fault_proxy import FaultProxy

#: Seconds the SDK waits for each answer while faults are on (a lost frame costs this).
FAULT_TIMEOUT = 1.0
#: Operations in the mixed-fault phase, and its time cap in seconds.
MIXED_OPS = 30
MIXED_CAP_S = 30.0


@pytest.fixture(scope="module")
def proxied(request, board_name):
    """(proxy, board) for a freshly started board behind a fault proxy."""
    if board_name is None:
        pytest.skip("fault injection starts its own board: not with --port")
    why = hm.board_missing(board_name)
    if why:
        pytest.skip(f"hil: {why}")
    board = make_board(board_name)
    board.start()
    try:
        # board.connect waits for a ready banner where the board sends one
        with FaultProxy(lambda: board.connect(10.0)._ser.sock, seed=12) as proxy:
            yield proxy, board
    finally:
        board.stop()


def _inputs(model: Model, n: int, seed: int) -> np.ndarray:
    return hm.spike_inputs(model, n, seed)


def _check_run(dev: Device, model: Model, x: np.ndarray) -> None:
    out = dev.run(x, model=model, record_spikes=True)
    ref = reference.run(model, x)
    assert out.prediction == ref.prediction and out.scores.tolist() == ref.scores.tolist()
    assert [(c.input_events, c.synops, c.spikes) for c in out.counters] == \
           [(c.input_events, c.synops, c.spikes) for c in ref.counters]
    assert np.array_equal(out.spikes[-1], ref.spikes[-1])


def _check_stream(dev: Device, model: Model, x: np.ndarray, timeout: float) -> int:
    """Stream x; every decision that comes equals the reference's, in order. Returns the
    EventBatches sent."""
    want = reference_stream(model, x)
    s = dev.stream(x, free_run=True, batch_steps=model.timesteps, timeout=timeout)
    got = []
    try:
        for d in s:
            got.append(d)
    finally:
        assert [(d.index, d.scores.tolist()) for d in got] == \
               [(k, r.scores.tolist()) for k, r in enumerate(want[:len(got)])]
    assert len(got) == len(want)
    return s.stats.batches_sent


def test_every_frame_duplicated_nothing_counted_twice(proxied):
    proxy, _ = proxied
    m1, m2 = hm.dense_model(0), hm.dense_model(3, decoding="first_spike")
    with Device.open(proxy.url, timeout=5.0) as dev:
        dev.hello()
        dev.deploy(m1)
        before = dev.stats()
        up0 = proxy.counts.frames["up"]
        proxy.set(dup=1.0)  # every frame, both ways, twice
        xs = _inputs(m1, 6, 1)
        for x in xs:
            _check_run(dev, m1, x)
        dev.deploy(m2, chunk_bytes=256)  # several chunks, each twice on the wire
        x = _inputs(m2, 3, 2).reshape(-1, m2.input_size)
        batches = _check_stream(dev, m2, x, timeout=5.0)
        proxy.set()
        sent = proxy.counts.frames["up"] - up0  # requests the host sent in the phase
        after = dev.stats()
    assert after.runs - before.runs == len(xs)
    assert after.uploads_committed - before.uploads_committed == 1
    assert after.stream_batches - before.stream_batches == batches
    assert after.streams_started - before.streams_started == 1
    # each request of the phase came twice: every second copy was dropped as stale, none
    # was answered twice (the answers' own copies were dropped by the host)
    assert sent >= 15 and after.frames_stale - before.frames_stale == sent
    assert dev.skipped_frames > 0


def test_mixed_faults_every_request_answered_or_named_error(proxied):
    proxy, _ = proxied
    models = [hm.dense_model(0), hm.dense_model(4, sizes=(10, 12, 6), decoding="membrane_last")]
    ok = {"run": 0, "deploy": 0, "stream": 0}
    failed = {"run": 0, "deploy": 0, "stream": 0}
    errors: dict[str, int] = {}
    with Device.open(proxy.url, timeout=5.0) as dev:
        dev.hello()
        dev.deploy(models[0])
        committed = {content_hash(hm.blob(models[0]))}
        current = models[0]
        before = dev.stats()
        faults_before = proxy.counts.total()
        dev.timeout = FAULT_TIMEOUT
        proxy.set(drop=0.04, corrupt=0.04, dup=0.06, delay=0.08, max_delay_s=0.15)
        rng = np.random.default_rng(5)
        t0 = time.monotonic()
        for k in range(MIXED_OPS):
            if time.monotonic() - t0 > MIXED_CAP_S:
                break
            op = ("run", "run", "deploy", "stream")[k % 4]
            t_op = time.monotonic()
            try:
                if op == "run":
                    _check_run(dev, current, _inputs(current, 1, 100 + k)[0])
                elif op == "deploy":
                    nxt = models[int(rng.integers(0, 2))]
                    # a deploy that fails may still have committed (its Ack lost)
                    committed.add(content_hash(hm.blob(nxt)))
                    dev.device_info = None
                    dev.deploy(nxt, force=True, timeout=FAULT_TIMEOUT)
                    committed = {content_hash(hm.blob(nxt))}
                    current = nxt
                else:
                    x = _inputs(current, 2, 200 + k).reshape(-1, current.input_size)
                    _check_stream(dev, current, x, timeout=FAULT_TIMEOUT)
                ok[op] += 1
            except EdgeSpikeError as exc:  # named: the request ended, and said why
                failed[op] += 1
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                if op == "deploy" and len(committed) > 1:
                    current = None  # unknown until the device says
            # bounded: a lost frame costs one timeout per request of the operation
            assert time.monotonic() - t_op < 12 * FAULT_TIMEOUT + 2.0
            if current is None:
                proxy_faults = proxy.faults
                proxy.set()
                dev.resync()
                crc = dev.hello().model_crc32
                assert crc in committed, "the device holds a model nobody committed"
                current = next(m for m in models if content_hash(hm.blob(m)) == crc)
                committed = {crc}
                proxy.set(**vars(proxy_faults))
        proxy.set()
        dev.timeout = 5.0
        dev.resync()
        after = dev.stats()
        info = dev.hello()
    print(f"faults: {proxy.counts}; ok {ok}; failed {failed}; errors {errors}")
    assert proxy.counts.total() - faults_before > 10  # the faults did happen ...
    assert sum(ok.values()) >= MIXED_OPS // 4  # ... and work still got through
    # the committed model is intact: one of those deployed, running exactly
    assert info.model_loaded and info.model_crc32 in committed
    running = next(m for m in models if content_hash(hm.blob(m)) == info.model_crc32)
    with Device.open(proxy.url, timeout=5.0) as dev2:
        for x in _inputs(running, 3, 300):
            _check_run(dev2, running, x)
    # nothing counted twice: each Run the host sent ran at most once
    assert ok["run"] <= after.runs - before.runs <= ok["run"] + failed["run"]
    assert ok["deploy"] <= after.uploads_committed - before.uploads_committed <= \
           ok["deploy"] + failed["deploy"]
