"""The built firmware: unit tests on the host and in QEMU, image sizes, and the link end to end.

Needs ``bash firmware/build.sh`` first; each test skips (saying why) when its build output or
tool is missing. Talks to the devices with a few lines of raw pyserial and
:mod:`edgespike.protocol` only (no SDK client), so a failure here points at the firmware.
Everything runs in a few seconds.
"""
from __future__ import annotations

import json
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from edgespike.protocol import crc32, decode_frame, encode_frame, pb

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
HOST = BUILD / "host"
MPS2 = BUILD / "mps2-an386"
VECTORS = REPO / "protocol" / "vectors"
QEMU = shutil.which("qemu-system-arm")
QEMU_BASE = ["-M", "mps2-an386", "-nographic", "-monitor", "none", "-icount", "shift=0",
             "-semihosting-config", "enable=on,target=native"]


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO)} not built; run: bash firmware/build.sh")
    return path


def need_qemu() -> str:
    if QEMU is None:
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    return QEMU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawLink:
    """One request, one response, over pyserial's socket:// URL."""

    def __init__(self, port: int, connect_timeout_s: float = 10.0) -> None:
        serial = pytest.importorskip("serial")
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self.ser = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=10)
                break
            except Exception:  # noqa: BLE001 - QEMU's server socket opens a little later
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def send_raw(self, wire: bytes) -> None:
        self.ser.write(wire)

    def read_frame(self) -> pb.Frame:
        wire = self.ser.read_until(b"\x00")
        assert wire.endswith(b"\x00"), f"no complete frame before the timeout: {wire[:40]!r}"
        msg = pb.Frame()
        msg.ParseFromString(decode_frame(wire))
        # nanopb writes fields in number order, as protobuf's deterministic serializer does.
        assert encode_frame(msg.SerializeToString(deterministic=True)) == wire
        return msg

    def request(self, msg: pb.Frame) -> pb.Frame:
        self.send_raw(encode_frame(msg.SerializeToString()))
        resp = self.read_frame()
        assert resp.seq == msg.seq
        return resp

    def close(self) -> None:
        self.ser.close()


def hello(link: RawLink, seq: int = 1) -> pb.DeviceInfo:
    msg = pb.Frame(seq=seq)
    msg.hello.protocol_version = 1
    resp = link.request(msg)
    assert resp.WhichOneof("body") == "device_info"
    return resp.device_info


def upload(link: RawLink, blob: bytes, chunk: int) -> pb.Frame:
    msg = pb.Frame(seq=100)
    msg.model_begin.total_bytes = len(blob)
    msg.model_begin.crc32 = crc32(blob)
    assert link.request(msg).WhichOneof("body") == "ack"
    for i, off in enumerate(range(0, len(blob), chunk)):
        msg = pb.Frame(seq=101 + i)
        msg.model_chunk.offset = off
        msg.model_chunk.data = blob[off:off + chunk]
        resp = link.request(msg)
        assert resp.WhichOneof("body") == "ack" and resp.ack.value == min(off + chunk, len(blob))
    msg = pb.Frame(seq=200)
    msg.model_commit.SetInParent()
    return link.request(msg)


def small_model() -> tuple[bytes, dict]:
    blob = (VECTORS / "model_small.bin").read_bytes()
    meta = json.loads((VECTORS / "model_small.json").read_text())
    return blob, meta


def check_run(link: RawLink, meta: dict) -> pb.RunResult:
    ex = meta["example"]
    msg = pb.Frame(seq=300)
    msg.run.events.extend(ex["input_events"])
    msg.run.record_spikes = True
    resp = link.request(msg)
    assert resp.WhichOneof("body") == "run_result", resp
    rr = resp.run_result
    assert rr.prediction == ex["prediction"]
    assert list(rr.scores) == ex["scores"]
    assert list(rr.output_spikes) == ex["output_spikes"]
    assert len(rr.layers) == len(ex["counters"])
    for got, want in zip(rr.layers, ex["counters"]):
        assert (got.input_events, got.synops, got.neuron_updates, got.spikes) == (
            want["input_events"], want["synops"], want["neuron_updates"], want["spikes"])
    return rr


def check_device_session(link: RawLink, board: str) -> pb.RunResult:
    """The same conversation with any device: vectors, errors, upload, run, stats."""
    info = hello(link)
    assert info.board == board and info.protocol_version == 3
    assert info.max_frame_bytes >= 4096 and info.model_capacity_bytes >= 65536

    # Every negative golden vector gets its Error, and the device keeps serving.
    for case in json.loads((VECTORS / "frames.json").read_text())["negative"]:
        link.send_raw(bytes.fromhex(case["frame_hex"]))
        resp = link.read_frame()
        assert resp.WhichOneof("body") == "error", case["name"]
        assert pb.ErrorCode.Name(resp.error.code) == case["error"], case["name"]
    # An over-long frame is discarded up to its delimiter and answered once.
    link.send_raw(b"\x55" * (info.max_frame_bytes + 100) + b"\x00")
    resp = link.read_frame()
    assert resp.error.code == pb.ERR_FRAME_TOO_LONG and resp.seq == 0

    msg = pb.Frame(seq=7)
    msg.run.events.append(0)
    resp = link.request(msg)
    assert resp.error.code == pb.ERR_NO_MODEL

    blob, meta = small_model()
    resp = upload(link, blob, chunk=50)  # several chunks
    assert resp.WhichOneof("body") == "ack" and resp.ack.value == len(blob), resp
    info = hello(link, seq=8)
    assert info.model_loaded and info.model_bytes == len(blob)
    assert info.model_crc32 == int(meta["content_crc32"], 16)
    assert info.state_bytes_used == meta["state_bytes"]
    rr = check_run(link, meta)

    # A corrupt upload is refused and the old model keeps running.
    bad = bytearray(blob)
    bad[20] ^= 0x40
    resp = upload(link, bytes(bad), chunk=4096)
    assert resp.WhichOneof("body") == "error" and resp.error.code == pb.ERR_MODEL_CRC
    check_run(link, meta)

    msg = pb.Frame(seq=9)
    msg.stats_request.SetInParent()
    stats = link.request(msg).stats
    assert stats.uploads_committed == 1 and stats.uploads_rejected == 1
    assert stats.runs == 2 and stats.frames_bad_crc >= 2 and stats.frames_too_long == 1
    return rr


# ---- unit tests -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["es_link_tests", "es_core_tests", "es_golden_tests"])
def test_host_unit_tests(name: str) -> None:
    exe = need(HOST / name)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.qemu
@pytest.mark.parametrize("name", ["es_link_tests.elf", "es_core_tests.elf", "es_golden_tests.elf"])
def test_qemu_unit_tests(name: str) -> None:
    elf = need(MPS2 / name)
    qemu = need_qemu()
    r = subprocess.run([qemu, *QEMU_BASE, "-serial", "null", "-kernel", str(elf)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.qemu
def test_elf_sizes() -> None:
    size = shutil.which("arm-none-eabi-size")
    if size is None:
        pytest.skip("arm-none-eabi-size not installed (apt-get install binutils-arm-none-eabi)")
    for name, flash_budget in [("edgespike-mps2-an386.elf", 64 * 1024),
                               ("edgespike-runner-mps2-an386.elf", 64 * 1024)]:
        elf = need(MPS2 / name)
        out = subprocess.run([size, str(elf)], capture_output=True, text=True, check=True).stdout
        text, data, bss = (int(x) for x in out.splitlines()[1].split()[:3])
        assert 4096 < text + data <= flash_budget, (name, text, data)
        assert data + bss + 64 * 1024 <= 4 * 1024 * 1024, (name, data, bss)  # RAM, 64 K stack


# ---- the link, end to end ----------------------------------------------------------------------

@pytest.fixture
def hostdev() -> Iterator[tuple[subprocess.Popen, int]]:
    exe = need(HOST / "edgespike-hostdev")
    proc = subprocess.Popen([str(exe), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening socket://127.0.0.1:"), line
        yield proc, int(line.rsplit(":", 1)[1])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)


def test_hostdev_session(hostdev: tuple[subprocess.Popen, int]) -> None:
    proc, port = hostdev
    link = RawLink(port)
    rr = check_device_session(link, "host")
    assert rr.cycle_source == pb.CYCLES_HOST_NS and rr.cycles > 0
    link.send_raw(b"\x05\x11\x22")  # a torn frame: the peer goes away mid-frame
    link.close()
    # A new connection starts clean and finds the device serving, its model still loaded.
    link = RawLink(port)
    assert hello(link, seq=3).model_loaded
    link.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


@pytest.mark.qemu
def test_qemu_link_session() -> None:
    elf = need(MPS2 / "edgespike-mps2-an386.elf")
    qemu = need_qemu()
    port = free_port()
    proc = subprocess.Popen(
        [qemu, *QEMU_BASE, "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
         "-kernel", str(elf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        link = RawLink(port)
        info = hello(link)
        assert info.core == "cortex-m4" and info.cycle_source == pb.CYCLES_QEMU_ICOUNT
        assert 4096 < info.flash_bytes < 1024 * 1024 and info.ram_bytes > info.model_capacity_bytes
        rr = check_device_session(link, "mps2-an386")
        # Instructions (SysTick ticks x 40), per layer and in total.
        assert rr.cycle_source == pb.CYCLES_QEMU_ICOUNT
        assert all(layer.cycles > 0 and layer.cycles % 40 == 0 for layer in rr.layers)
        assert rr.cycles >= sum(layer.cycles for layer in rr.layers)
        link.close()
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.mark.qemu
def test_qemu_runner(tmp_path: Path) -> None:
    elf = need(MPS2 / "edgespike-runner-mps2-an386.elf")
    qemu = need_qemu()
    blob, meta = small_model()
    ex = meta["example"]
    (tmp_path / "model.bin").write_bytes(blob)
    inputs = [ex["input_events"], [5, 3], ex["input_events"]]  # the middle one is unsorted
    records = b"".join(struct.pack(f"<I{len(e)}I", len(e), *e) for e in inputs)
    (tmp_path / "input.bin").write_bytes(struct.pack("<4I", 0x31495345, 0, len(inputs), 3) + records)
    r = subprocess.run([qemu, *QEMU_BASE, "-serial", "null", "-kernel", str(elf)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr  # one input failed, the others ran
    raw = (tmp_path / "output.bin").read_bytes()
    magic, status, n, flags, L, O, N, T = struct.unpack_from("<8I", raw)
    assert (magic, status, n, flags) == (0x314F5345, 0, 3, 3)
    assert (L, O, T) == (len(meta["layers"]), len(ex["scores"]), meta["timesteps"])
    off = 128
    for i in range(n):
        st, pred = struct.unpack_from("<ii", raw, off)
        off += 8
        scores = np.frombuffer(raw, "<i8", O, off)
        off += 8 * O
        counters = np.frombuffer(raw, "<u8", 5 * L, off).reshape(L, 5)
        off += 40 * L
        (cycles,) = struct.unpack_from("<Q", raw, off)
        off += 8
        raster = np.frombuffer(raw, "u1", T * N, off)
        off += T * N + 12 * N
        if i == 1:
            assert st == pb.ERR_BAD_INPUT and pred == -1 and cycles == 0
            continue
        assert st == 0 and pred == ex["prediction"] and scores.tolist() == ex["scores"]
        for row, want in zip(counters, ex["counters"]):
            assert row[:4].tolist() == [want["input_events"], want["synops"],
                                        want["neuron_updates"], want["spikes"]]
        assert int(raster.sum()) == sum(c["spikes"] for c in ex["counters"])
        assert cycles > 0 and cycles % 40 == 0
    assert off == len(raw)


@pytest.mark.qemu
def test_qemu_link_matches_reference() -> None:
    """Bigger models through the UART (4 KiB chunks fill the RX ring: backpressure), bit-exact
    against the numpy reference; a second upload replaces the first; noise is survived."""
    from edgespike.model import Layer, Model, Neurons, Weights, to_bytes
    from edgespike.sim import reference

    elf = need(MPS2 / "edgespike-mps2-an386.elf")
    qemu = need_qemu()
    rng = np.random.default_rng(3)
    spikes_model = Model(
        name="spikes", input_size=100, timesteps=20, input_kind="spikes",
        layers=[Layer(weights=Weights(rng.integers(-60, 60, (100, 80)).astype(np.int8), exp=0),
                      neurons=Neurons(vth=200, dv=300, du=2000)),
                Layer(weights=Weights(rng.integers(-60, 60, (80, 10)).astype(np.int8), exp=0),
                      neurons=Neurons(vth=150, dv=200))])
    values_model = Model(
        name="values", input_size=6, timesteps=12, input_kind="values", input_max_abs=50,
        decoding="membrane_last",
        layers=[Layer(weights=Weights(rng.integers(-40, 40, (6, 20)).astype(np.int8), exp=0),
                      neurons=Neurons(vth=80, dv=150)),
                Layer(weights=Weights(rng.integers(-40, 40, (20, 4)).astype(np.int8), exp=0),
                      neurons=Neurons(vth=60))])
    port = free_port()
    proc = subprocess.Popen(
        [qemu, *QEMU_BASE, "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
         "-kernel", str(elf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        link = RawLink(port)
        for model in (spikes_model, values_model):
            blob = to_bytes(model)
            resp = upload(link, blob, chunk=4096)
            assert resp.WhichOneof("body") == "ack", resp
            for k in range(2):
                msg = pb.Frame(seq=400 + k)
                if model.input_kind == "spikes":
                    x = (rng.random((model.timesteps, model.input_size)) < 0.2).astype(np.uint8)
                    msg.run.events.extend(reference.events_from_spikes(x).tolist())
                else:
                    x = rng.integers(-50, 51, (model.timesteps, model.input_size))
                    msg.run.values.extend(x.ravel().tolist())
                msg.run.record_spikes = True
                ref = reference.run(model, x)
                rr = link.request(msg).run_result
                assert rr.prediction == ref.prediction
                assert list(rr.scores) == ref.scores.tolist()
                assert list(rr.output_spikes) == reference.events_from_spikes(ref.spikes[-1]).tolist()
                assert [(l.input_events, l.synops, l.neuron_updates, l.spikes) for l in rr.layers] == [
                    (c.input_events, c.synops, c.neuron_updates, c.spikes) for c in ref.counters]
        # Noise: every bad frame is answered, nothing crashes, and the model still runs.
        link.send_raw(np.random.default_rng(5).integers(0, 256, 16384, dtype=np.uint8).tobytes()
                      + b"\x00")
        msg = pb.Frame(seq=777)
        msg.stats_request.SetInParent()
        link.send_raw(encode_frame(msg.SerializeToString()))
        while (resp := link.read_frame()).seq != 777:
            assert resp.WhichOneof("body") == "error" and resp.seq == 0
        assert resp.stats.rx_overruns == 0 and resp.stats.uploads_committed == 2
        assert resp.stats.frames_bad_cobs + resp.stats.frames_bad_crc > 0
        info = hello(link, seq=778)
        assert info.model_loaded and info.model_bytes == len(to_bytes(values_model))
        link.close()
    finally:
        proc.kill()
        proc.wait(timeout=5)
