"""The link firmware on a board (emulated by default) against the numpy reference.

Every result the device returns must equal edgespike.sim.reference's for the same model and
input; every malformed request must get an Error of the right code while the device keeps
serving its last good model.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import hil_models as hm
from edgespike.device import Device
from edgespike.device.client import content_hash
from edgespike.errors import DeviceRejected
from edgespike.model import Model
from edgespike.protocol import pb
from edgespike.protocol.framing import cobs_encode, crc32, encode_frame
from edgespike.sim import reference

CYCLE_SOURCES = {"mps2-an386": "qemu_icount", "netduinoplus2": "qemu_icount", "host": "host_ns"}
#: Instructions per SysTick tick under QEMU -icount shift=0: 25 MHz and 168 MHz cores.
ICOUNT_TICK = {"mps2-an386": 40, "netduinoplus2": 6}


def code(name: str) -> int:
    return pb.ErrorCode.Value(name)


def deploy(dev: Device, model: Model) -> None:
    """Make ``model`` the device's model (refreshing the cached DeviceInfo first)."""
    dev.hello()
    dev.deploy(model)


def check_same(model: Model, dev_out, ref_out, *, spikes: bool) -> None:
    assert dev_out.prediction == ref_out.prediction
    assert dev_out.scores.tolist() == ref_out.scores.tolist()
    assert len(dev_out.counters) == len(ref_out.counters)
    for d, r in zip(dev_out.counters, ref_out.counters):
        assert (d.input_events, d.synops, d.neuron_updates, d.spikes) == \
               (r.input_events, r.synops, r.neuron_updates, r.spikes)
    if spikes:
        assert not dev_out.spikes_truncated
        assert np.array_equal(dev_out.spikes[-1], ref_out.spikes[-1])


def assert_serving(dev: Device, model: Model, seed: int = 99) -> None:
    """The device still answers Run with the reference's result for ``model``."""
    x = hm.spike_inputs(model, 1, seed)[0] if model.input_kind == "spikes" else \
        hm.value_inputs(model, 1, seed)[0]
    check_same(model, dev.run(x, model=model, record_spikes=True), reference.run(model, x),
               spikes=True)


def expect_error(dev: Device, name: str, timeout: float = 10.0):
    """Read frames until an Error arrives; check its code; return it."""
    reply = dev.read_frame(timeout)
    assert reply.WhichOneof("body") == "error", f"expected an Error, got {reply}"
    assert reply.error.code == code(name), (pb.ErrorCode.Name(reply.error.code),
                                            reply.error.message)
    return reply


@pytest.fixture(scope="module")
def base_model() -> Model:
    return hm.dense_model(0)


def test_run_before_any_model(device):
    if device.hello().model_loaded:
        pytest.skip("the device already holds a model (an emulator reused via --port)")
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(run=pb.Run(events=[0]))
    assert info.value.code == "ERR_NO_MODEL"


def test_info_fields_sane(device, board_name):
    info = device.hello()
    assert info.protocol_version == 3  # 2: link sessions, 3: static input
    assert info.firmware_version
    assert info.model_capacity_bytes >= 4096 and info.state_capacity_bytes >= 1024
    assert 0 < info.max_chunk_bytes < info.max_frame_bytes
    assert info.max_layers >= 2 and info.max_input_items > 0 and info.max_outputs > 0
    if board_name:
        assert info.board == board_name
        assert info.cycle_source == CYCLE_SOURCES[board_name]
    if board_name == "mps2-an386":
        assert info.core == "cortex-m4" and info.clock_hz == 25_000_000
        assert 0 < info.flash_bytes < 4 << 20 and 0 < info.ram_bytes < 4 << 20
    if board_name == "netduinoplus2":  # STM32F405: 1 MB flash, 128 KB SRAM
        assert info.core == "cortex-m4" and info.clock_hz == 168_000_000
        assert 0 < info.flash_bytes < 1 << 20 and 0 < info.ram_bytes < 128 << 10
    if board_name in ("mps2-an386", "netduinoplus2"):  # the image it booted, by build id
        from edgespike import paths
        from edgespike.device.image import read_elf

        assert info.build_id == read_elf(paths.firmware_image(board_name)).build_id != ""


@pytest.mark.parametrize("make", [
    lambda: hm.dense_model(0),
    lambda: hm.dense_model(3, decoding="first_spike"),
    lambda: hm.dense_model(4, sizes=(10, 12, 6), decoding="membrane_last"),
    hm.feature_model,
    hm.values_model,
], ids=["dense", "first_spike", "membrane_last", "ternary_recurrent_adaptive", "values"])
def test_deploy_and_run_equal_reference(device, board_name, make):
    model = make()
    deploy(device, model)
    info = device.hello()
    assert info.model_loaded and info.model_crc32 == content_hash(hm.blob(model))
    assert info.model_bytes == len(hm.blob(model))
    xs = hm.spike_inputs(model, 4, 7) if model.input_kind == "spikes" else hm.value_inputs(model, 4, 7)
    refs = reference.run_batch(model, xs)
    for k, (x, ref) in enumerate(zip(xs, refs)):
        out = device.run(x, record_spikes=(k % 2 == 0))
        check_same(model, out, ref, spikes=(k % 2 == 0))
        if board_name in CYCLE_SOURCES:
            assert out.cycle_source == CYCLE_SOURCES[board_name]
        if board_name in ICOUNT_TICK:
            assert out.cycles > 0
            assert sum(c.cycles for c in out.counters) <= out.cycles


def test_max_outputs_holds_for_late_spikes(device):
    """Issue 12, case 6: DeviceInfo.max_outputs output spike events fit the board's frame
    even when every one is late in the run (5 bytes each): a run with more is answered, cut
    at max_outputs and flagged, never ERR_INTERNAL, and no error is sent."""
    model = hm.late_spikes_model()
    x = hm.late_spikes_input()
    ref = reference.run(model, x)
    ref_events = reference.events_from_spikes(ref.spikes[-1])
    info = device.hello()
    if model.state_bytes() > info.state_capacity_bytes:
        pytest.skip("the late-spikes model does not fit this board's state arena")
    deploy(device, model)
    before = device.stats()
    out = device.run(x, model=model, record_spikes=True)
    cap = info.max_outputs
    assert out.output_events.tolist() == ref_events[:cap].tolist()
    assert out.spikes_truncated == (len(ref_events) > cap)
    assert out.scores.tolist() == ref.scores.tolist()
    after = device.stats()
    assert after.errors_sent == before.errors_sent and after.runs == before.runs + 1


def test_cycles_are_repeatable_under_icount(device, board_name, base_model):
    if board_name not in ICOUNT_TICK:
        pytest.skip("cycle counts are repeatable only under QEMU -icount")
    deploy(device, base_model)
    x = hm.spike_inputs(base_model, 1, 5)[0]
    a, b = device.run(x), device.run(x)
    # SysTick counts in steps of 40 (mps2-an386) or 125/21 (netduinoplus2, rounded up to 6)
    # instructions and its phase depends on when the host's bytes arrived: the total (one pair
    # of readings) agrees to one tick, a layer's cycles (summed over one pair of readings per
    # step) to one tick per step
    tick = ICOUNT_TICK[board_name]
    assert abs(a.cycles - b.cycles) <= tick
    slack = tick * base_model.timesteps
    assert all(abs(ca.cycles - cb.cycles) <= slack for ca, cb in zip(a.counters, b.counters))
    assert all(c.cycles > 0 for c in a.counters)


def test_redeploy_replaces_the_model(device):
    a, b = hm.dense_model(0), hm.dense_model(3, decoding="first_spike")
    x = hm.spike_inputs(a, 1, 11)[0]
    deploy(device, a)
    check_same(a, device.run(x), reference.run(a, x), spikes=False)
    deploy(device, b)
    assert device.hello().model_crc32 == content_hash(hm.blob(b))
    check_same(b, device.run(x, model=b), reference.run(b, x), spikes=False)
    assert reference.run(a, x).scores.tolist() != reference.run(b, x).scores.tolist()


# -- malformed input: an Error of the right code, and the last good model keeps serving --------

@pytest.fixture
def serving(device, base_model):
    deploy(device, base_model)
    device.drain(0.05)
    yield base_model
    device.drain(0.05)
    assert_serving(device, base_model)


def test_bad_crc(device, serving):
    before = device.stats().frames_bad_crc
    payload = pb.Frame(seq=77, hello=pb.Hello(protocol_version=1)).SerializeToString()
    wire = cobs_encode(payload + (crc32(payload) ^ 0x1).to_bytes(4, "little")) + b"\x00"
    device.send_raw(wire)
    expect_error(device, "ERR_BAD_CRC")
    assert device.stats().frames_bad_crc == before + 1


def test_truncated_frame(device, serving):
    good = encode_frame(pb.Frame(seq=5, hello=pb.Hello(protocol_version=1)).SerializeToString())
    device.send_raw(good[:-4] + b"\x00")  # the last COBS block now runs past the delimiter
    expect_error(device, "ERR_BAD_FRAME")
    device.send_raw(b"\x03\x11\x22\x00")  # 2 bytes: shorter than a CRC
    expect_error(device, "ERR_BAD_FRAME")


def test_protobuf_that_does_not_decode(device, serving):
    payload = b"\x12\x05\x08"  # Hello announced with 5 bytes, 1 follows
    device.send_raw(encode_frame(payload))
    expect_error(device, "ERR_DECODE")


def test_unknown_message(device, serving):
    unknown = b"\x08\x2a" + b"\x9a\x06\x00"  # seq 42, an empty message in field 99
    device.send_raw(encode_frame(unknown))
    reply = expect_error(device, "ERR_UNKNOWN_MESSAGE")
    assert reply.seq == 42
    device.send_raw(encode_frame(b"\x08\x2b"))  # seq 43, no body at all
    assert expect_error(device, "ERR_UNKNOWN_MESSAGE").seq == 43
    device.send_raw(encode_frame(b""))  # empty payload
    expect_error(device, "ERR_UNKNOWN_MESSAGE")


def test_frame_too_long(device, serving):
    limit = device.hello().max_frame_bytes
    device.send_raw(b"\x05" * (limit + 64) + b"\x00")
    # QEMU's UART takes ~25 KiB/s host -> device: allow the bytes time to arrive
    expect_error(device, "ERR_FRAME_TOO_LONG", timeout=30.0)
    assert device.drain(0.3) == []  # one error for the whole long frame, nothing else


def test_empty_frames_are_skipped(device, serving):
    device.send_raw(b"\x00\x00\x00")
    assert device.drain(0.3) == []


def test_garbage_then_resync(device, serving):
    rng = np.random.default_rng(0)
    for _ in range(10):
        device.send_raw(rng.integers(0, 256, int(rng.integers(1, 200))).astype(np.uint8).tobytes())
    device.send_raw(b"\x00")
    frames = device.drain(0.5)
    assert all(f.WhichOneof("body") == "error" for f in frames)


def test_model_too_large(device, serving):
    cap = device.hello().model_capacity_bytes
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(model_begin=pb.ModelBegin(total_bytes=cap + 1, crc32=0))
    assert info.value.code == "ERR_MODEL_TOO_LARGE"


def _upload_raw(dev: Device, blob: bytes, crc: int | None = None):
    dev.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob),
                                                crc32=crc32(blob) if crc is None else crc))
    step = dev.chunk_bytes()
    for off in range(0, len(blob), step):
        dev.request_frame(model_chunk=pb.ModelChunk(offset=off, data=blob[off:off + step]))
    return dev.request_frame(model_commit=pb.ModelCommit(), raise_error=False)


@pytest.mark.parametrize("make", [hm.broken_chain_blob, hm.ternary_11_blob],
                         ids=["fan_in_chain_broken", "ternary_code_11"])
def test_invalid_model_with_correct_hash(device, serving, make):
    reply = _upload_raw(device, make())
    assert reply.WhichOneof("body") == "error"
    assert reply.error.code == code("ERR_MODEL_INVALID"), reply.error.message
    info = device.hello()
    assert info.model_crc32 == content_hash(hm.blob(serving))


def test_blob_crc_mismatch_at_commit(device, serving):
    blob = hm.blob(hm.values_model())
    reply = _upload_raw(device, blob, crc=crc32(blob) ^ 0xFFFF)
    assert reply.error.code == code("ERR_MODEL_CRC")


def test_chunk_at_wrong_offset(device, serving):
    blob = hm.blob(hm.values_model())
    device.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob), crc32=crc32(blob)))
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(model_chunk=pb.ModelChunk(offset=10, data=blob[10:40]))
    assert info.value.code == "ERR_UPLOAD_OFFSET"


def test_upload_never_committed(device, serving):
    other = hm.values_model()
    blob = hm.blob(other)
    device.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob), crc32=crc32(blob)))
    device.request_frame(model_chunk=pb.ModelChunk(offset=0, data=blob[:100]))
    assert_serving(device, serving)  # the old model answers while the upload hangs
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(model_commit=pb.ModelCommit())
    assert info.value.code == "ERR_UPLOAD_INCOMPLETE"


def test_commit_without_begin(device, serving):
    device.reset()
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(model_commit=pb.ModelCommit())
    assert info.value.code == "ERR_UPLOAD_NOT_STARTED"


@pytest.mark.parametrize("events", [[(0 << 16) | 24], [(0 << 16) | 0xFFFF], [(12 << 16) | 0]],
                         ids=["index_eq_input_size", "index_ffff", "step_eq_timesteps"])
def test_run_input_out_of_range(device, serving, events):
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(run=pb.Run(events=events))
    assert info.value.code == "ERR_BAD_INPUT"


def test_run_values_on_spike_model_and_out_of_range_values(device, serving):
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(run=pb.Run(values=[1] * 24 * 12))
    assert info.value.code == "ERR_BAD_INPUT"
    vm = hm.values_model()
    deploy(device, vm)
    bad = [0] * (vm.timesteps * vm.input_size)
    bad[5] = vm.input_max_abs + 1
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(run=pb.Run(values=bad))
    assert info.value.code == "ERR_BAD_INPUT"
    with pytest.raises(DeviceRejected) as info:
        device.request_frame(run=pb.Run(values=[0] * 7))  # wrong count
    assert info.value.code == "ERR_BAD_INPUT"
    assert_serving(device, vm)
    deploy(device, serving)


# -- the CLI against a board of its own ---------------------------------------------------------

def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgespike.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_cli_emulator_detach_info_deploy_run_stop(board_name, tmp_path):
    if board_name is None:
        pytest.skip("--port given: the CLI test starts its own board")
    why = hm.board_missing(board_name)
    if why:
        pytest.skip(why)
    pid_file = tmp_path / "emu.json"
    r = _cli("emulator", "start", "--board", board_name, "--detach", "--pid-file", str(pid_file),
             "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    try:
        url = rec["url"]
        r = _cli("info", "--port", url, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["info"]["board"] == board_name
        model = hm.dense_model(3, decoding="first_spike")
        from edgespike.model import save
        mpath = save(model, tmp_path / "m.bin")
        xs = hm.spike_inputs(model, 3, 1)
        np.savez(tmp_path / "in.npz", inputs=xs, labels=np.array([0, 1, 2]))
        r = _cli("deploy", str(mpath), "--port", url, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["skipped"] is False
        r = _cli("run", str(mpath), str(tmp_path / "in.npz"), "--port", url, "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert [x["scores"] for x in out["results"]] == \
            [o.scores.tolist() for o in reference.run_batch(model, xs)]
    finally:
        r = _cli("emulator", "stop", "--pid-file", str(pid_file), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["stopped"] is True
    with pytest.raises(ProcessLookupError):
        os.kill(rec["pid"], 0)


def test_cli_board_for_one_command(board_name):
    if board_name is None:
        pytest.skip("--port given")
    why = hm.board_missing(board_name)
    if why:
        pytest.skip(why)
    r = _cli("info", "--board", board_name, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["info"]["board"] == board_name
