"""The host device program (build/host/edgespike-hostdev) as a shared device: one client at a
time, a clear busy error for the others, idle sessions closed, and a client's unfinished
upload gone with it (issue 12, cases 8 and 12). Skips when the firmware is not built."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgespike import paths
from edgespike.device import Device, HostDevice
from edgespike.device.client import content_hash
from edgespike.errors import DeviceBusy, DeviceRejected, LinkClosed, ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights, to_bytes
from edgespike.protocol import pb
from edgespike.protocol.framing import crc32
from edgespike.sim import reference

try:
    paths.hostdev_executable()
    _MISSING = None
except ToolMissing as exc:
    _MISSING = str(exc)
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


def model(seed: int) -> Model:
    rng = np.random.default_rng(seed)
    return Model(name=f"m{seed}", input_size=6, timesteps=5,
                 layers=[Layer(weights=Weights(rng.integers(-60, 90, (6, 4)).astype(np.int8)),
                               neurons=Neurons(vth=30, dv=200))])


@pytest.fixture
def hostdev():
    with HostDevice(idle_timeout=2) as hd:
        yield hd


def test_a_second_client_gets_a_busy_error_within_its_connect_timeout(hostdev):
    """Case 8: a client holding the device (even idle) made others wait for DeviceTimeout,
    and ``connect_timeout=1.0`` waited 5 s before a misleading "Check the port name"."""
    with Device.open(hostdev.url) as a:
        a.hello()
        t0 = time.monotonic()
        with pytest.raises(DeviceBusy, match="another client") as info:
            Device.open(hostdev.url, connect_timeout=1.0, timeout=1.0)
        assert 0.9 < time.monotonic() - t0 < 2.0
        assert info.value.code == "ERR_BUSY" and "port name" not in str(info.value)
        assert a.hello().board == "host"  # the holder was not disturbed
    # the holder left: the next client is served, by retrying within its connect timeout
    with Device.open(hostdev.url, connect_timeout=2.0) as b:
        assert b.hello().board == "host"


def test_a_waiting_client_is_served_once_the_holder_leaves(hostdev):
    a = Device.open(hostdev.url)
    a.hello()
    import threading
    threading.Timer(0.5, a.close).start()
    t0 = time.monotonic()
    with Device.open(hostdev.url, connect_timeout=5.0) as b:
        assert 0.4 < time.monotonic() - t0 < 3.0
        assert b.hello().board == "host"


def test_idle_sessions_are_closed():
    """Case 8: an idle connection blocked everyone for ever; now it is closed after the
    idle timeout (2 s here), saying why on the holder's next request."""
    with HostDevice(idle_timeout=1) as hd:
        a = Device.open(hd.url, timeout=2.0)
        a.hello()
        time.sleep(1.6)
        with Device.open(hd.url, connect_timeout=2.0) as b:  # served: a was dropped
            assert b.hello().board == "host"
        with pytest.raises(LinkClosed, match="idle"):
            a.hello()
        a.close()


def test_an_upload_left_uncommitted_cannot_be_committed_by_the_next_client(hostdev):
    """Case 12: a client uploaded every chunk and disconnected without committing; another
    client's bare ModelCommit committed it."""
    first, other = model(1), model(2)
    with Device.open(hostdev.url) as a:
        a.deploy(first)
        blob = to_bytes(other)
        a.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob), crc32=crc32(blob)))
        a.request_frame(model_chunk=pb.ModelChunk(offset=0, data=blob))
    with Device.open(hostdev.url, connect_timeout=2.0) as b:
        with pytest.raises(DeviceRejected) as info:
            b.request_frame(model_commit=pb.ModelCommit())
        assert info.value.code == "ERR_UPLOAD_NOT_STARTED"
        assert b.hello().model_crc32 == content_hash(to_bytes(first))
        x = (np.random.default_rng(0).random((5, 6)) < 0.4).astype(np.uint8)
        assert b.run(x, model=first).scores.tolist() == reference.run(first, x).scores.tolist()
        assert b.stats().uploads_committed == 1


def test_a_stream_left_open_ends_with_its_client(hostdev):
    m = model(3)
    with Device.open(hostdev.url) as a:
        a.deploy(m)
        a.request_frame(stream_start=pb.StreamStart(free_run=True))
    with Device.open(hostdev.url, connect_timeout=2.0) as b:
        stats = b.stats()
        assert stats.streams_started == 1 and stats.streams_aborted == 1
        assert b.drain(0.2) == []
