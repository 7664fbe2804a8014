"""The device client against an in-process fake device over loopback TCP (no firmware needed)."""
from __future__ import annotations

import importlib.util
import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edgespike.device import Device, Emulator, HostDevice, Transport
from edgespike.device.client import RESYNC_LIMIT
from edgespike.device.emulator import free_port, open_device
from edgespike.device.fake import FakeConfig, FakeDevice
from edgespike.errors import (
    DeviceRejected, DeviceTimeout, EmulatorError, InputError, LinkClosed, ModelTooLarge, ToolMissing,
)
from edgespike.model import Layer, Model, Neurons, Weights, to_bytes
from edgespike.protocol import pb
from edgespike.protocol.framing import cobs_encode, crc32
from edgespike.sim import reference

VECTORS = Path(__file__).resolve().parents[1] / "protocol" / "vectors"
_spec = importlib.util.spec_from_file_location("es_vectors_generate", VECTORS / "generate.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def values_model() -> Model:
    rng = np.random.default_rng(1)
    return Model(name="vals", input_size=5, timesteps=4, input_kind="values", input_max_abs=20,
                 decoding="membrane_last",
                 layers=[Layer(weights=Weights(rng.integers(-30, 30, (5, 6)).astype(np.int8), exp=0),
                               neurons=Neurons(vth=40, dv=100)),
                         Layer(weights=Weights(rng.integers(-50, 50, (6, 3)).astype(np.int8), exp=0),
                               neurons=Neurons(vth=30))])


@pytest.fixture
def fake():
    with FakeDevice() as f:
        yield f


def test_hello_and_info(fake):
    with Device.open(fake.url) as dev:
        info = dev.hello()
        assert info.board == "fake" and info.protocol_version == 2
        assert info.max_chunk_bytes == 256 and not info.model_loaded
        assert dev.info() == info


def test_deploy_chunk_sequence_and_run_matches_reference(fake):
    model, x = gen.small_model(), gen.small_input()
    seen = []
    with Device.open(fake.url) as dev:
        res = dev.deploy(model, chunk_bytes=64, progress=lambda d, t: seen.append((d, t)))
        blob = to_bytes(model)
        assert res.chunks == 3 and res.blob_bytes == len(blob) and res.crc32 == crc32(blob)
        assert seen == [(64, len(blob)), (128, len(blob)), (len(blob), len(blob))]
        assert fake.config.log == ["hello", "model_begin", "model_chunk", "model_chunk",
                                   "model_chunk", "model_commit"]
        assert fake.model_blob == blob
        out = dev.run(x, record_spikes=True)
        ref = reference.run(model, x)
        assert out.prediction == ref.prediction
        assert out.scores.tolist() == ref.scores.tolist()
        assert [(c.input_events, c.synops, c.neuron_updates, c.spikes) for c in out.counters] == \
               [(c.input_events, c.synops, c.neuron_updates, c.spikes) for c in ref.counters]
        assert np.array_equal(out.spikes[-1], ref.spikes[-1])
        assert out.output_events.tolist() == reference.events_from_spikes(ref.spikes[-1]).tolist()
        assert dev.run(x).spikes == []  # not recorded


def test_deploy_skips_when_device_holds_the_blob(fake):
    model = gen.small_model()
    with Device.open(fake.url) as dev:
        assert not dev.deploy(model).skipped
    with Device.open(fake.url) as dev:
        again = dev.deploy(model)
        assert again.skipped and again.chunks == 0
        assert not dev.deploy(model, force=True).skipped
    assert fake.stats.uploads_committed == 2


def test_blob_bytes_deploy_and_values_model(fake):
    model = values_model()
    x = np.random.default_rng(2).integers(-20, 21, (3, 4, 5))
    with Device.open(fake.url) as dev:
        dev.deploy(to_bytes(model))
        outs = dev.run_batch(x, progress=lambda d, t: None)
    refs = reference.run_batch(model, x)
    assert [o.scores.tolist() for o in outs] == [r.scores.tolist() for r in refs]


def test_run_batch_progress(fake):
    model = gen.small_model()
    xs = np.random.default_rng(0).integers(0, 2, (4, 6, 4))
    calls = []
    with Device.open(fake.url) as dev:
        dev.deploy(model)
        outs = dev.run_batch(xs, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [o.prediction for o in outs] == reference.predict(model, xs).tolist()


def test_stale_frames_are_skipped_by_seq():
    with FakeDevice(FakeConfig(stale_before_reply=True)) as fake, Device.open(fake.url) as dev:
        dev.deploy(gen.small_model())
        out = dev.run(gen.small_input())
        assert out.prediction == reference.run(gen.small_model(), gen.small_input()).prediction
        assert dev.skipped_frames >= 5


def test_seq_increases_and_wraps():
    with FakeDevice() as fake, Device.open(fake.url) as dev:
        a = dev.request_frame(hello=pb.Hello(protocol_version=1)).seq
        b = dev.request_frame(hello=pb.Hello(protocol_version=1)).seq
        assert b == a + 1
        dev._seq = 0xFFFFFFFF
        assert dev.request_frame(hello=pb.Hello(protocol_version=1)).seq == 1


def test_timeout_raises_device_timeout():
    with FakeDevice(FakeConfig(mute=True)) as fake, Device.open(fake.url, timeout=0.3) as dev:
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout, match="hello"):
            dev.hello()
        assert time.monotonic() - t0 < 2.0


def test_error_reply_raises_device_rejected(fake):
    with Device.open(fake.url) as dev:
        with pytest.raises(DeviceRejected) as info:
            dev.request_frame(run=pb.Run(events=[0]))
        assert info.value.code == "ERR_NO_MODEL"
        reply = dev.request_frame(model_chunk=pb.ModelChunk(offset=0, data=b"x"), raise_error=False)
        assert reply.error.code == pb.ErrorCode.Value("ERR_UPLOAD_NOT_STARTED")
        dev.deploy(gen.small_model())
        with pytest.raises(DeviceRejected) as info:
            dev.request_frame(run=pb.Run(events=[(0 << 16) | 4]))  # index == input_size
        assert info.value.code == "ERR_BAD_INPUT"
        assert dev.run(gen.small_input()).prediction == 1  # still serving


def test_model_too_large_host_check_and_device_check():
    with FakeDevice(FakeConfig(model_capacity_bytes=100)) as fake, Device.open(fake.url) as dev:
        with pytest.raises(ModelTooLarge, match="at most 100 bytes"):
            dev.deploy(gen.small_model())
        with pytest.raises(DeviceRejected) as info:
            dev.request_frame(model_begin=pb.ModelBegin(total_bytes=101, crc32=0))
        assert info.value.code == "ERR_MODEL_TOO_LARGE" and info.value.detail == 100


def test_invalid_blob_rejected_and_old_model_kept(fake):
    model = gen.small_model()
    bad = bytearray(to_bytes(values_model()))
    body = bytes(bad[:-6]).replace(b"\x18\x05", b"\x18\x06", 1)  # input_size 5 -> 6: chain broken
    blob = body + b"\xc5\x3e" + crc32(body).to_bytes(4, "little")
    with Device.open(fake.url) as dev:
        dev.deploy(model)
        with pytest.raises(Exception):
            dev.deploy(blob)  # the host's own reader refuses it first
        dev.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob), crc32=crc32(blob)))
        dev.request_frame(model_chunk=pb.ModelChunk(offset=0, data=blob))
        with pytest.raises(DeviceRejected) as info:
            dev.request_frame(model_commit=pb.ModelCommit())
        assert info.value.code == "ERR_MODEL_INVALID"
        assert dev.run(gen.small_input(), model=model).scores.tolist() == \
            reference.run(model, gen.small_input()).scores.tolist()


def test_bad_crc_answered_with_seq0_error(fake):
    with Device.open(fake.url) as dev:
        payload = pb.Frame(seq=9, hello=pb.Hello()).SerializeToString()
        dev.send_raw(cobs_encode(payload + b"\x00\x00\x00\x00") + b"\x00")
        reply = dev.read_frame(2.0)
        assert reply.seq == 0 and reply.error.code == pb.ErrorCode.Value("ERR_BAD_CRC")
        assert dev.hello().board == "fake"


def test_dropped_connection_raises_link_closed():
    with FakeDevice(FakeConfig(drop_after=1)) as fake, Device.open(fake.url, timeout=2.0) as dev:
        dev.hello()
        with pytest.raises(LinkClosed):
            dev.stats()
            dev.stats()


def test_host_side_input_checks(fake):
    with Device.open(fake.url) as dev:
        with pytest.raises(InputError, match="deploy"):
            dev.run(gen.small_input())
        dev.deploy(gen.small_model())
        with pytest.raises(InputError):
            dev.run(np.zeros((5, 4), dtype=np.uint8))  # wrong timesteps
        with pytest.raises(InputError):
            dev.run(np.full((6, 4), 2))  # not a spike
        with pytest.raises(InputError, match="out of range"):
            dev.run(np.array([(0 << 16) | 9], dtype=np.uint32))
        # ready events are accepted (and sorted)
        ev = reference.events_from_spikes(gen.small_input())[::-1].copy()
        assert dev.run(ev).prediction == 1


def test_connect_refused_is_link_closed():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(LinkClosed, match="nothing listens") as info:
        Transport(f"socket://127.0.0.1:{port}", connect_timeout=0.3)
    assert time.monotonic() - t0 < 1.0
    assert "port name" not in str(info.value)


def test_connect_timeout_is_kept_and_the_message_says_why():
    """Issue 12, case 8: ``connect_timeout=1.0`` to a listener that accepts nobody (its queue
    full) waited pyserial's 5 s, then said "Check the port name"."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    holder = socket.create_connection(srv.getsockname(), timeout=1.0)  # fills the queue
    try:
        t0 = time.monotonic()
        with pytest.raises(LinkClosed, match="accepted no connection") as info:
            Transport(f"socket://127.0.0.1:{srv.getsockname()[1]}", connect_timeout=1.0)
        assert 0.9 < time.monotonic() - t0 < 2.0
        assert "port name" not in str(info.value)
    finally:
        holder.close()
        srv.close()


@pytest.mark.parametrize("url", ["socket://127.0.0.1", "socket://:80", "socket://h:notaport"])
def test_malformed_socket_url(url):
    with pytest.raises(LinkClosed, match="socket://HOST:PORT"):
        Transport(url, connect_timeout=0.1)


def test_a_device_that_never_falls_quiet_still_opens():
    """Issue 12, case 9: Device.open() never returned while the device kept sending (an old
    session's stream): the resync drain had no deadline."""
    with FakeDevice(FakeConfig(chatter_s=0.02)) as fake:
        t0 = time.monotonic()
        with Device.open(fake.url, timeout=2.0) as dev:
            assert time.monotonic() - t0 < RESYNC_LIMIT + 1.5
            assert dev.hello().board == "fake"  # the chatter is another session's: dropped
            assert dev.foreign_frames > 0
            t1 = time.monotonic()
            assert len(dev.drain(0.5, limit=0.3)) == 0  # only foreign frames came, bounded
            assert time.monotonic() - t1 < 1.0


def test_frames_of_an_earlier_session_with_the_same_seq_are_dropped():
    """Issue 12, case 7: a board still sending an OutputBatch of a vanished host's stream
    (seq 1, as the new host's first request) made hello() raise
    ``DeviceRejected ERR_PROTOCOL: expected device_info, the device sent output_batch``."""
    model, x = gen.small_model(), gen.small_input()
    with FakeDevice(FakeConfig(ghost_before_reply=True)) as fake, Device.open(fake.url) as dev:
        info = dev.hello()  # seq 1; a ghost OutputBatch with seq 1 came first
        assert info.board == "fake"
        dev.deploy(model, chunk_bytes=64)
        assert dev.run(x).prediction == reference.run(model, x).prediction
        assert dev.foreign_frames >= 6  # one ghost before every reply
        assert fake.session == dev.session != 0


def test_every_request_carries_the_session_and_replies_echo_it(fake):
    with Device.open(fake.url) as a, Device.open(fake.url) as b:
        assert a.session != b.session and 0 < a.session < 2 ** 32
    with Device.open(fake.url) as dev:
        reply = dev.request_frame(stats_request=pb.StatsRequest())
        assert reply.session == dev.session == fake.session


def test_a_protocol_1_device_without_sessions_is_still_served():
    """Firmware of protocol 1 answers without a session: the SDK accepts that (and seq still
    tells stale frames apart)."""
    model, x = gen.small_model(), gen.small_input()
    with FakeDevice(FakeConfig(sessions=False, stale_before_reply=True)) as fake, \
            Device.open(fake.url) as dev:
        assert dev.hello().protocol_version == 1
        dev.deploy(model, chunk_bytes=64)
        assert dev.run(x).prediction == reference.run(model, x).prediction
        assert dev.foreign_frames == 0 and dev.skipped_frames >= 5


def test_an_upload_belongs_to_the_session_that_began_it(fake):
    """Issue 12, case 12, on one link (a UART: the device cannot see the host change): a new
    session's bare ModelCommit must not commit what another session uploaded."""
    blob = to_bytes(gen.small_model())
    with Device.open(fake.url) as a:
        a.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob), crc32=crc32(blob)))
        a.request_frame(model_chunk=pb.ModelChunk(offset=0, data=blob))
        b = Device(a.transport)  # the next host on the same wire, a new session
        with pytest.raises(DeviceRejected) as info:
            b.request_frame(model_commit=pb.ModelCommit())
        assert info.value.code == "ERR_UPLOAD_NOT_STARTED"
        assert not b.hello().model_loaded and fake.model is None


def test_owner_is_stopped_on_close(fake):
    class Owner:
        stopped = 0

        def stop(self):
            self.stopped += 1

    owner = Owner()
    dev = Device(Transport(fake.url), owner=owner)
    dev.close()
    dev.close()
    assert owner.stopped == 1


FAKE_HOSTDEV = textwrap.dedent("""\
    import sys, time
    sys.path[:0] = {path!r}
    from edgespike.device.fake import FakeDevice
    with FakeDevice() as f:
        print("edgespike-hostdev: link on tcp")
        print("listening", f.url, flush=True)
        while True:
            time.sleep(1)
    """)


def _script(tmp_path: Path, name: str, body: str) -> Path:
    exe = tmp_path / name
    exe.write_text(f"#!{sys.executable}\n" + body)
    exe.chmod(0o755)
    return exe


def test_hostdev_launcher_reads_port_and_tears_down(tmp_path):
    exe = _script(tmp_path, "hostdev", FAKE_HOSTDEV.format(path=sys.path))
    board = HostDevice(exe)
    with board:
        pid = board.pid
        with Device(board.connect(), owner=None) as dev:
            assert dev.hello().board == "fake"
    assert board.proc is None
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.05)


def test_hostdev_launcher_reports_early_death(tmp_path):
    exe = _script(tmp_path, "hostdev", "import sys\nprint('cannot bind: boom', file=sys.stderr)\n"
                                       "sys.exit(3)\n")
    with pytest.raises(EmulatorError, match="boom"):
        HostDevice(exe, start_timeout=5).start()


def test_emulator_is_torn_down_even_on_exceptions(tmp_path, monkeypatch):
    fw = tmp_path / "fw.elf"
    fw.write_bytes(b"\x7fELF")
    monkeypatch.setattr("edgespike.device.emulator.shutil.which", lambda name: "/usr/bin/true")
    monkeypatch.setattr(Emulator, "command",
                        lambda self, port: [sys.executable, "-c", "import time; time.sleep(60)"])
    emu = Emulator(firmware=fw)
    with pytest.raises(RuntimeError):
        with emu:
            proc = emu.proc
            assert emu.url.startswith("socket://127.0.0.1:")
            raise RuntimeError("user code failed")
    assert proc.poll() is not None and emu.proc is None


def test_emulator_death_reported_with_its_output(tmp_path, monkeypatch):
    fw = tmp_path / "fw.elf"
    fw.write_bytes(b"\x7fELF")
    monkeypatch.setattr("edgespike.device.emulator.shutil.which", lambda name: "/usr/bin/true")
    monkeypatch.setattr(Emulator, "command", lambda self, port: [
        sys.executable, "-c", "import sys; print('qemu: could not load kernel', file=sys.stderr);"
                              "sys.exit(1)"])
    emu = Emulator(firmware=fw)
    with pytest.raises(EmulatorError, match="could not load kernel"):
        with emu:
            emu.connect(timeout=10)  # nothing listens; the dead process is noticed, not waited out
    assert emu.proc is None


def test_emulator_missing_firmware(tmp_path):
    with pytest.raises(ToolMissing, match="firmware"):
        Emulator(firmware=tmp_path / "nope.elf").start()
    with pytest.raises(EmulatorError, match="unknown emulated board"):
        Emulator(board="pdp-11")


def test_open_device_on_port(fake):
    with open_device(port=fake.url) as dev:
        assert dev.hello().board == "fake"
