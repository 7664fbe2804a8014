"""The Python framing, protobuf and blob reader against the golden vectors in protocol/vectors."""
from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format

from edgespike.model import from_bytes, to_bytes
from edgespike.protocol import pb
from edgespike.protocol.framing import FrameDecoder, cobs_decode, cobs_encode, decode_frame, encode_frame
from edgespike.errors import FramingError
from edgespike.sim import reference

VECTORS = Path(__file__).resolve().parents[1] / "protocol" / "vectors"
FRAMES = json.loads((VECTORS / "frames.json").read_text())


def _generator():
    spec = importlib.util.spec_from_file_location("es_vectors_generate", VECTORS / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_vectors_are_fresh():
    for name, data in _generator().build().items():
        assert (VECTORS / name).read_bytes() == data, (
            f"{name} is stale: run python protocol/vectors/generate.py")


def test_every_frame_body_is_covered():
    bodies = {f.name for f in pb.Frame.DESCRIPTOR.oneofs_by_name["body"].fields}
    assert bodies <= {c["body"] for c in FRAMES["frames"]}


@pytest.mark.parametrize("case", FRAMES["frames"], ids=lambda c: c["name"])
def test_frame_vector(case):
    payload = bytes.fromhex(case["payload_hex"])
    wire = bytes.fromhex(case["frame_hex"])
    msg = json_format.ParseDict(case["message"], pb.Frame())
    assert msg.SerializeToString(deterministic=True) == payload
    assert encode_frame(payload) == wire
    assert decode_frame(wire) == payload
    parsed = pb.Frame()
    parsed.ParseFromString(payload)
    assert parsed == msg and parsed.WhichOneof("body") == case["body"]


def test_all_frames_as_one_stream_in_odd_chunks():
    stream = b"".join(bytes.fromhex(c["frame_hex"]) for c in FRAMES["frames"])
    dec = FrameDecoder()
    out = []
    for i in range(0, len(stream), 7):
        out += dec.feed(stream[i:i + 7])
    assert out == [bytes.fromhex(c["payload_hex"]) for c in FRAMES["frames"]]


@pytest.mark.parametrize("case", FRAMES["cobs"], ids=lambda c: c["name"])
def test_cobs_vector(case):
    raw, enc = bytes.fromhex(case["raw_hex"]), bytes.fromhex(case["cobs_hex"])
    assert cobs_encode(raw) == enc
    assert cobs_decode(enc) == raw


@pytest.mark.parametrize("case", FRAMES["negative"], ids=lambda c: c["name"])
def test_negative_vector(case):
    wire = bytes.fromhex(case["frame_hex"])
    code = case["error"]
    if code in ("ERR_BAD_CRC", "ERR_BAD_FRAME"):
        with pytest.raises(FramingError) as info:
            decode_frame(wire)
        assert info.value.code == code
        return
    payload = decode_frame(wire)  # framing is fine; the message is not
    msg = pb.Frame()
    if code == "ERR_DECODE":
        with pytest.raises(Exception):
            msg.ParseFromString(payload)
    else:
        assert code == "ERR_UNKNOWN_MESSAGE"
        msg.ParseFromString(payload)
        assert msg.WhichOneof("body") is None


def test_model_small_vector():
    blob = (VECTORS / "model_small.bin").read_bytes()
    exp = json.loads((VECTORS / "model_small.json").read_text())
    assert len(blob) == exp["blob_bytes"]
    assert f"{int.from_bytes(blob[-4:], 'little'):08x}" == exp["content_crc32"]
    m = from_bytes(blob)
    assert (m.input_size, m.timesteps, m.input_kind, m.decoding, m.labels) == (
        exp["input_size"], exp["timesteps"], exp["input_kind"], exp["decoding"], exp["labels"])
    assert m.state_bytes() == exp["state_bytes"]
    for layer, le in zip(m.layers, exp["layers"], strict=True):
        assert layer.kind == le["kind"] and layer.size == le["size"] and layer.name == le["name"]
        for w, we in ((layer.weights, le["weights"]), (layer.recurrent, le["recurrent"])):
            if we is None:
                assert w is None
                continue
            assert (w.fan_in, w.fan_out, w.encoding, w.exp) == (
                we["fan_in"], we["fan_out"], we["encoding"], we["exp"])
            assert w.integer_matrix().tolist() == we["integer"]
        n = le["neurons"]
        assert (layer.neurons.du, layer.neurons.dv, layer.neurons.reset) == (n["du"], n["dv"], n["reset"])
        assert np.asarray(layer.neurons.vth).tolist() == n["vth"]
    ex = exp["example"]
    x = reference.spikes_from_events(np.array(ex["input_events"]), m.timesteps, m.input_size)
    out = reference.run(m, x)
    assert out.prediction == ex["prediction"]
    assert out.scores.tolist() == ex["scores"]
    assert [c.synops for c in out.counters] == [c["synops"] for c in ex["counters"]]
    assert reference.events_from_spikes(out.spikes[-1]).tolist() == ex["output_spikes"]


def test_model_blob_bytes_inside_a_chunk_frame_survive():
    blob = (VECTORS / "model_small.bin").read_bytes()
    frame = pb.Frame(seq=3, model_chunk=pb.ModelChunk(offset=0, data=blob))
    back = pb.Frame()
    back.ParseFromString(decode_frame(encode_frame(frame.SerializeToString())))
    assert back.model_chunk.data == blob
    assert base64.b64decode(json_format.MessageToDict(back)["modelChunk"]["data"]) == blob


def test_c_link_tests_hold_the_same_stream_vectors():
    """firmware/link/tests/test_link.c decodes and encodes copies of the streaming vectors:
    they must be the bytes of frames.json."""
    import re

    src = (VECTORS.parents[1] / "firmware" / "link" / "tests" / "test_link.c").read_text()
    copies = dict(re.findall(r'\{"(\w+)", "([0-9a-f]+)"\}', src))
    by_name = {c["name"]: c["payload_hex"] for c in FRAMES["frames"]}
    assert len(copies) >= 5
    for name, hexstr in copies.items():
        assert by_name[name] == hexstr, f"test_link.c's copy of {name} differs from frames.json"
    for name in ("event_batch_events", "output_batch_credit", "output_batch_decisions",
                 "stream_start_raw"):
        assert name in copies


def test_stream_vectors_decode_in_python():
    frames = {c["name"]: c for c in FRAMES["frames"]}
    b = pb.Frame.FromString(bytes.fromhex(frames["event_batch_events"]["payload_hex"])).event_batch
    assert (b.batch_seq, b.first_step, b.n_steps, list(b.events)) == (1, 0, 3, [1, 0x10000, 0x20003])
    o = pb.Frame.FromString(bytes.fromhex(frames["output_batch_decisions"]["payload_hex"]))
    d = o.output_batch.decisions[0]
    assert (o.seq, o.output_batch.credit_limit, d.end_step, list(d.scores)) == (20, 9, 11, [2, 5, -3])


def test_c_limits_test_holds_the_late_spikes_model_and_its_reference_result():
    """firmware/link/tests/test_limits.c runs generate.py's late_spikes_model from a copy of
    its blob and checks the device against figures written there: they must be the
    reference's."""
    import re

    gen = _generator()
    src = (VECTORS.parents[1] / "firmware" / "link" / "tests" / "test_limits.c").read_text()
    m = re.search(r'\{"late_spikes_model",\s*((?:"[0-9a-f]+"\s*)+)\}', src)
    assert m, "test_limits.c lost its copy of late_spikes_model"
    copy = bytes.fromhex("".join(re.findall(r'"([0-9a-f]+)"', m.group(1))))
    model = gen.late_spikes_model()
    assert copy == to_bytes(model)
    defs = {k: int(v) for k, v in re.findall(r"#define (ES_LATE_\w+) \(?(-?\d+)", src)}
    events = gen.late_spikes_events(defs["ES_LATE_EVENTS"])
    x = reference.spikes_from_events(np.array(events, dtype=np.uint32), model.timesteps,
                                     model.input_size)
    out = reference.run(model, x)
    assert model.output_size == defs["ES_LATE_OUTPUTS"]
    assert out.scores.tolist() == [defs["ES_LATE_SCORE"]] * model.output_size
    ev = reference.events_from_spikes(out.spikes[-1])
    n = defs["ES_LATE_OUTPUTS"]
    assert ev.tolist() == [((4096 + k // n) << 16) | (k % n) for k in range(len(ev))]
    assert len(ev) == defs["ES_LATE_EVENTS"] * n and min(ev) >= 1 << 28  # 5-byte varints


def test_session_vectors_carry_the_session():
    frames = {c["name"]: c for c in FRAMES["frames"]}
    for name in ("hello_v2_session", "device_info_v2_session", "run_session", "stats_stale"):
        msg = pb.Frame.FromString(bytes.fromhex(frames[name]["payload_hex"]))
        assert msg.session == 0x5E551011, name
    busy = pb.Frame.FromString(bytes.fromhex(frames["error_busy"]["payload_hex"]))
    assert busy.error.code == pb.ErrorCode.Value("ERR_BUSY") and busy.session == 0
    # frames of protocol 1 (no session) are byte for byte what they were
    assert frames["hello"]["frame_hex"] == "0b0801120208019afbbb2600"
