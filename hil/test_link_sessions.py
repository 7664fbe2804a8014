"""Link sessions on a board (FRAMING.md "Sessions"; issue 12, cases 7 and 12).

On a UART the device cannot see one host leave and the next arrive: these tests put a second
host (a new :class:`Device`, so a new session whose requests number from 1 again) on the
same wire as the first, as a host that reconnects to a real board does.
"""
from __future__ import annotations

import pytest

import hil_models as hm
from edgespike.device import Device
from edgespike.device.client import content_hash
from edgespike.errors import DeviceRejected
from edgespike.protocol import pb
from edgespike.protocol.framing import crc32, encode_frame
from edgespike.sim import reference


def test_a_new_host_drops_the_outputs_a_vanished_host_left_in_flight(device):
    """Case 7: a host that vanished mid-stream left OutputBatches (seq 1) coming; the next
    host's hello() (seq 1 too) raised ``DeviceRejected ERR_PROTOCOL: expected device_info, the
    device sent output_batch``."""
    model = hm.dense_model(0)
    device.hello()
    device.deploy(model)
    before = device.stats()
    a = Device(device.transport)  # host A: a fresh session, requests from 1
    reply = a.request_frame(stream_start=pb.StreamStart(window=1, hop=1, step_us=4000))
    assert reply.seq == 1 and reply.session == a.session
    # paced, a decision each 4 ms step: an OutputBatch (seq 1) every 4 ms for about a second
    credit = reply.output_batch.credit_limit
    for k in range(min(credit, 4)):
        a.send_frame(pb.Frame(seq=a.next_seq(), event_batch=pb.EventBatch(
            batch_seq=k + 1, first_step=64 * k, n_steps=64)))
    # ... and A vanishes. Host B on the same wire: its hello is seq 1 as well.
    b = Device(device.transport, timeout=10.0)
    b.resync(quiet=0.1, limit=0.2)  # the outputs keep coming: a bounded drain
    info = b.hello()
    assert info.model_loaded and info.model_crc32 == content_hash(hm.blob(model))
    assert b.foreign_frames > 0  # A's OutputBatches, numbered 1 like B's hello, were dropped
    x = hm.spike_inputs(model, 1, 7)[0]
    assert b.run(x, model=model).scores.tolist() == reference.run(model, x).scores.tolist()
    after = b.stats()
    assert after.streams_started == before.streams_started + 1
    assert after.streams_aborted == before.streams_aborted + 1  # B's arrival ended A's stream
    device.drain(0.1)


def test_an_upload_belongs_to_the_host_that_began_it(device):
    """Case 12 on one wire: host A uploads every byte and leaves without committing; host B's
    bare ModelCommit must not commit it."""
    model, other = hm.dense_model(0), hm.values_model()
    device.hello()
    device.deploy(model)
    a = Device(device.transport)
    blob = hm.blob(other)
    a.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob), crc32=crc32(blob)))
    step = device.chunk_bytes()
    for off in range(0, len(blob), step):
        a.request_frame(model_chunk=pb.ModelChunk(offset=off, data=blob[off:off + step]))
    b = Device(device.transport)
    with pytest.raises(DeviceRejected) as info:
        b.request_frame(model_commit=pb.ModelCommit())
    assert info.value.code == "ERR_UPLOAD_NOT_STARTED"
    assert b.hello().model_crc32 == content_hash(hm.blob(model))


def test_a_repeated_request_is_dropped_not_served_twice(device):
    """A request that reaches the device twice (a duplicated frame) runs once; the copy is
    counted in Stats.frames_stale and gets no answer."""
    model = hm.dense_model(0)
    device.hello()
    device.deploy(model)
    before = device.stats()
    x = hm.spike_inputs(model, 1, 9)[0]
    frame = pb.Frame(seq=device.next_seq(), session=device.session, run=device.encode_input(
        x, model))
    wire = encode_frame(frame.SerializeToString())
    device.send_raw(wire + wire)
    replies = device.drain(0.3)
    assert [(r.seq, r.WhichOneof("body")) for r in replies] == [(frame.seq, "run_result")]
    assert list(replies[0].run_result.scores) == reference.run(model, x).scores.tolist()
    after = device.stats()
    assert after.runs == before.runs + 1 and after.frames_stale == before.frames_stale + 1
    assert after.errors_sent == before.errors_sent
