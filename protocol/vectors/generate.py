#!/usr/bin/env python3
"""Generate the golden vectors of the link and the model blob (protocol/vectors/README.md).

Deterministic: the same SDK gives the same bytes. Run it after changing the framing, the schema
or the blob writer, and commit the output; ``tests/test_vectors.py`` fails while the committed
files differ from a fresh generation.

    python protocol/vectors/generate.py            # rewrite the files beside this script
    python protocol/vectors/generate.py --check    # exit 1 if they are stale
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from edgespike.model import Layer, Model, Neurons, Weights, to_bytes
from edgespike.protocol import pb
from edgespike.protocol.framing import cobs_encode, crc32, encode_frame
from edgespike.sim import reference

HERE = Path(__file__).resolve().parent
FORMAT = 1


def _frame(seq: int, session: int = 0, **body: Any):
    """A Frame with ``seq``, ``session`` and one body given as ``name=dict`` (fields of the
    body message)."""
    msg = pb.Frame(seq=seq, session=session)
    (name, fields), = body.items()
    getattr(msg, name).SetInParent()
    json_format.ParseDict(fields, getattr(msg, name))
    return msg


def _message_cases() -> list[tuple[str, Any]]:
    """One or more Frames for every body of ``Frame`` in edgespike.proto."""
    return [
        ("hello", _frame(1, hello={"protocol_version": 1})),
        ("device_info", _frame(1, device_info={
            "protocol_version": 1, "firmware_version": "0.1.0", "board": "mps2-an386",
            "core": "cortex-m4", "clock_hz": 25000000, "cycle_source": "CYCLES_QEMU_ICOUNT",
            "model_capacity_bytes": 65536, "state_capacity_bytes": 32768, "max_layers": 8,
            "max_frame_bytes": 4096, "max_chunk_bytes": 1024, "max_input_items": 8192,
            "max_outputs": 1024, "model_loaded": True, "model_crc32": 0xDEADBEEF,
            "model_bytes": 1234, "state_bytes_used": 512, "flash_bytes": 40000,
            "ram_bytes": 120000})),
        ("device_info_empty_model", _frame(7, device_info={
            "protocol_version": 1, "board": "host", "core": "x86_64",
            "cycle_source": "CYCLES_HOST_NS", "model_loaded": False})),
        ("model_begin", _frame(2, model_begin={"total_bytes": 300, "crc32": 0x01020304})),
        ("model_chunk", _frame(3, model_chunk={"offset": 0, "data": "AAECAwAA"})),
        ("model_chunk_offset", _frame(4, model_chunk={
            "offset": 1024, "data": json_format.MessageToDict(
                pb.ModelChunk(data=bytes(range(1, 41))))["data"]})),
        ("model_commit", _frame(5, model_commit={})),
        ("ack", _frame(5, ack={"value": 300})),
        ("ack_zero", _frame(9, ack={})),
        ("run_events", _frame(6, run={"events": [0x00000001, 0x00010003, 0x00020000,
                                                  0x0003FFFF], "record_spikes": True})),
        ("run_values", _frame(6, run={"values": [0, -1, 1, -32767, 32767, 100]})),
        ("run_result", _frame(6, run_result={
            "prediction": 1, "scores": ["3", "-5", "0", "-9000000000"],
            "layers": [{"input_events": 4, "synops": "12", "neuron_updates": 40, "spikes": 3,
                        "cycles": "1200"},
                       {"input_events": 3, "synops": "6", "neuron_updates": 20, "spikes": 2,
                        "cycles": "800"}],
            "cycles": "2000", "cycle_source": "CYCLES_QEMU_ICOUNT",
            "output_spikes": [0x00000001, 0x00040000], "spikes_truncated": False})),
        ("run_result_no_spike", _frame(6, run_result={"prediction": 0, "scores": ["0", "0"],
                                                      "cycle_source": "CYCLES_NONE"})),
        ("stats_request", _frame(8, stats_request={})),
        ("stats", _frame(8, stats={
            "frames_ok": 10, "frames_bad_crc": 1, "frames_bad_cobs": 2, "frames_too_long": 3,
            "errors_sent": 4, "runs": 5, "rx_overruns": 0, "uploads_committed": 6,
            "uploads_rejected": 7})),
        ("reset", _frame(10, reset={})),
        ("error", _frame(11, error={"code": "ERR_MODEL_INVALID",
                                    "message": "layer 1: fan_in 3 != previous size 4",
                                    "detail": 1})),
        ("error_bad_crc_seq0", _frame(0, error={"code": "ERR_BAD_CRC",
                                                "message": "frame CRC mismatch"})),
        ("hello_large_seq", _frame(0xFFFFFFFF, hello={"protocol_version": 1})),
        # 300 non-zero payload bytes: COBS 255-code blocks inside a frame
        ("model_chunk_long_run", _frame(12, model_chunk={
            "offset": 7, "data": json_format.MessageToDict(
                pb.ModelChunk(data=bytes((i % 255) + 1 for i in range(300))))["data"]})),
        # zeros in a row inside a payload: COBS code 0x01 blocks
        ("model_chunk_zeros", _frame(13, model_chunk={
            "offset": 0, "data": json_format.MessageToDict(
                pb.ModelChunk(data=bytes(16)))["data"]})),
    ] + _stream_cases() + _session_cases()


def _session_cases() -> list[tuple[str, Any]]:
    """Link sessions (protocol 2, FRAMING.md "Sessions"): Frame.session in requests and
    answers, the busy answer of a device held by another host, the stale-frame counter."""
    session = 0x5E551011
    return [
        ("hello_v2_session", _frame(1, session=session, hello={"protocol_version": 2})),
        ("device_info_v2_session", _frame(1, session=session, device_info={
            "protocol_version": 2, "firmware_version": "0.1.0", "board": "netduinoplus2",
            "core": "cortex-m4", "clock_hz": 168000000, "cycle_source": "CYCLES_QEMU_ICOUNT",
            "model_capacity_bytes": 6144, "state_capacity_bytes": 2048, "max_layers": 8,
            "max_frame_bytes": 4224, "max_chunk_bytes": 4096, "max_input_items": 4096,
            "max_outputs": 255})),
        ("run_session", _frame(2, session=session, run={"events": [0x10000000],
                                                        "record_spikes": True})),
        ("output_batch_session", _frame(0xFFFFFFFF, session=0xFFFFFFFF, output_batch={
            "out_seq": 4, "acked_seq": 2, "credit_limit": 4, "final": True})),
        ("error_busy", _frame(0, error={"code": "ERR_BUSY", "message": "busy: another client "
                                        "holds this device (for 3 s)", "detail": 3})),
        ("stats_stale", _frame(3, session=session, stats={"frames_ok": 9, "frames_stale": 2})),
        # the build id of the flashed image (edgespike flash checks it after flashing)
        ("device_info_build_id", _frame(1, session=session, device_info={
            "protocol_version": 3, "firmware_version": "0.1.0", "board": "mps2-an386",
            "core": "cortex-m4", "cycle_source": "CYCLES_QEMU_ICOUNT", "flash_bytes": 35100,
            "build_id": json_format.MessageToDict(pb.DeviceInfo(
                build_id=bytes.fromhex("5a1e0b6b3d4c2f1e0d9c8b7a6958473625140300")))
                ["buildId"]})),
    ]


def _stream_cases() -> list[tuple[str, Any]]:
    """Streaming (FRAMING.md "Streaming"): StreamStart, EventBatch, OutputBatch, StreamStop.
    firmware/link/tests/test_link.c checks the ones it names against its own encoder and
    decoder (tests/test_vectors.py keeps the copies there identical)."""
    return [
        ("stream_start", _frame(20, stream_start={
            "window": 12, "hop": 4, "step_us": 10000, "record_spikes": True,
            "idle_timeout_ms": 500})),
        ("stream_start_raw", _frame(21, stream_start={
            "free_run": True, "raw_samples": True, "delta_thresholds": [3, 5, 120]})),
        ("event_batch_events", _frame(22, event_batch={
            "batch_seq": 1, "first_step": 0, "n_steps": 3,
            "events": [0x00000001, 0x00010000, 0x00020003],
            "host_time_us": "1700000000000000"})),
        ("event_batch_values", _frame(23, event_batch={
            "batch_seq": 2, "first_step": 3, "n_steps": 1, "values": [5, -7, 0, 50]})),
        ("event_batch_samples", _frame(24, event_batch={
            "batch_seq": 1, "first_step": 0, "n_steps": 2, "samples": [100, -100, 101, -97]})),
        ("output_batch_credit", _frame(20, output_batch={
            "out_seq": 1, "credit_limit": 8, "device_time": "123456789", "window": 12,
            "hop": 4, "step_us": 10000, "max_batch_steps": 256, "max_batch_items": 1024})),
        ("output_batch_decisions", _frame(20, output_batch={
            "out_seq": 2, "acked_seq": 1, "credit_limit": 9,
            "decisions": [{"index": 0, "end_step": 11, "prediction": 1,
                           "scores": ["2", "5", "-3"], "device_time": "2000",
                           "input_time": "1500", "host_time_us": "1700000000000000"}],
            "output_spikes": [0x00000001, 0x00020000], "device_time": "2100",
            "steps_run": 12, "items_received": 30, "batches_received": 1,
            "spikes_first_step": 10})),
        ("output_batch_final", _frame(25, output_batch={
            "out_seq": 3, "acked_seq": 1, "credit_limit": 9, "final": True, "stalls": 2})),
        ("stream_stop", _frame(25, stream_stop={})),
        ("error_stream_gap", _frame(26, error={"code": "ERR_STREAM_GAP",
                                               "message": "EventBatch out of sequence",
                                               "detail": 2})),
        ("stats_stream", _frame(27, stats={
            "frames_ok": 10, "runs": 1, "stream_batches": 160, "stream_items": 1920,
            "stream_steps": 320, "stream_decisions": 40, "streams_started": 2,
            "streams_aborted": 1, "stream_gaps": 1})),
    ]


def _cobs_cases() -> list[dict[str, str]]:
    """Plain COBS encodings (no CRC, no delimiter), the edge cases of the byte stuffing."""
    raws = {
        "empty": b"",
        "one_zero": b"\x00",
        "two_zeros": b"\x00\x00",
        "zero_inside": b"\x11\x22\x00\x33",
        "no_zero": b"\x11\x22\x33\x44",
        "trailing_zero": b"\x11\x00",
        "run_253_then_zero": bytes(range(1, 254)) + b"\x00",
        "run_254": bytes(range(1, 255)),
        "run_255": bytes(range(1, 256)),
        "zero_then_run_254": b"\x00" + bytes(range(1, 255)),
        "run_254_then_zero": bytes(range(1, 255)) + b"\x00",
        "run_508": bytes((i % 254) + 1 for i in range(508)),
    }
    return [{"name": k, "raw_hex": v.hex(), "cobs_hex": cobs_encode(v).hex()}
            for k, v in raws.items()]


def _raw_frame(payload: bytes, crc: int | None = None) -> bytes:
    crc = crc32(payload) if crc is None else crc
    return cobs_encode(payload + struct.pack("<I", crc)) + b"\x00"


def _negative_cases() -> list[dict[str, str]]:
    """Frames a receiver must reject, with the protocol ErrorCode the device answers."""
    good = _frame(1, hello={"protocol_version": 1}).SerializeToString(deterministic=True)
    good_wire = encode_frame(good)
    flipped = bytearray(good)
    flipped[-1] ^= 0x01
    cases = [
        ("bad_crc_payload_bit", _raw_frame(bytes(flipped), crc32(good)), "ERR_BAD_CRC",
         "one payload bit flipped after the CRC was computed"),
        ("bad_crc_zero", _raw_frame(good, 0), "ERR_BAD_CRC", "CRC field is 0"),
        ("truncated_block", good_wire[:-3] + b"\x00", "ERR_BAD_FRAME",
         "the last COBS block runs past the delimiter"),
        ("shorter_than_crc", b"\x04\x01\x02\x03\x00", "ERR_BAD_FRAME",
         "3 decoded bytes: shorter than a CRC-32"),
        ("single_byte", b"\x02\xaa\x00", "ERR_BAD_FRAME", "1 decoded byte"),
        ("cobs_code_past_end", b"\xff\x01\x02\x00", "ERR_BAD_FRAME",
         "code 0xFF announces 254 bytes, 2 follow"),
        ("protobuf_truncated", _raw_frame(b"\x12\x05\x08"), "ERR_DECODE",
         "valid CRC; Hello announces 5 bytes, 1 follows"),
        ("protobuf_bad_tag", _raw_frame(b"\x08"), "ERR_DECODE",
         "valid CRC; a seq tag with no varint"),
        ("empty_payload", _raw_frame(b""), "ERR_UNKNOWN_MESSAGE",
         "valid CRC over 0 bytes: a Frame with no body"),
        ("seq_only", _raw_frame(b"\x08\x05"), "ERR_UNKNOWN_MESSAGE",
         "a Frame with seq 5 and no body"),
        ("unknown_body_field", _raw_frame(b"\x08\x05\x9a\x06\x00"), "ERR_UNKNOWN_MESSAGE",
         "seq 5 plus an empty message in field 99 (no such body)"),
    ]
    return [{"name": n, "frame_hex": w.hex(), "error": e, "note": note}
            for n, w, e, note in cases]


def small_model() -> Model:
    """The tiny model of model_small.bin: int8 dense, then ternary recurrent with per-neuron
    magnitudes and thresholds (every blob feature a small C parser must read)."""
    w0 = np.array([[3, -2, 0], [1, 0, 5], [-4, 7, 2], [0, 1, -1]], dtype=np.int8)
    w1 = np.array([[1, 0], [-1, 1], [0, -1]], dtype=np.int8)
    r1 = np.array([[0, -1], [1, 0]], dtype=np.int8)
    return Model(
        name="small", input_size=4, timesteps=6, decoding="spike_count",
        layers=[
            Layer(weights=Weights(w0, exp=2), name="hidden",
                  neurons=Neurons(du=1024, dv=512, vth=10, bias_mant=3, bias_exp=1)),
            Layer(weights=Weights(w1, exp=3, encoding="ternary", a_pos=np.array([2, 3]),
                                  a_neg=np.array([1, 4])),
                  recurrent=Weights(r1, exp=0, encoding="ternary", a_pos=2, a_neg=1),
                  neurons=Neurons(du=4096, dv=256, vth=np.array([6, 9]), reset="subtract"),
                  name="out"),
        ],
        labels=["left", "right"],
    )


def late_spikes_model() -> Model:
    """A model whose recorded output spikes come late (step >= 4096: 5 bytes each on the
    wire) and many (64 outputs x every input step), with large membrane-sum scores: a
    RunResult at its largest for the board. Fits the stm32f4's limits (6 KB blob, 2 KB
    state). firmware/link/tests/test_limits.c holds a copy (checked by tests/test_vectors.py)."""
    return Model(
        name="late", input_size=1, timesteps=4400, decoding="membrane_sum",
        layers=[Layer(weights=Weights(np.full((1, 64), 127, np.int8), exp=7), name="out",
                      neurons=Neurons(du=4096, dv=4096, vth=1, bias_mant=-4096, bias_exp=7))])


def late_spikes_events(n: int = 40) -> list[int]:
    """Input events for :func:`late_spikes_model`: one spike a step from step 4096 on."""
    return [(4096 + k) << 16 for k in range(n)]


def small_input() -> np.ndarray:
    """A fixed (timesteps x input_size) spike raster for the small model."""
    x = np.zeros((6, 4), dtype=np.uint8)
    for t, i in [(0, 0), (0, 2), (1, 1), (1, 2), (2, 2), (3, 0), (3, 1), (3, 2), (4, 2), (5, 3)]:
        x[t, i] = 1
    return x


def _model_json(model: Model, blob: bytes) -> dict[str, Any]:
    def weights(w: Weights) -> dict[str, Any]:
        d: dict[str, Any] = {"fan_in": w.fan_in, "fan_out": w.fan_out, "encoding": w.encoding,
                             "exp": w.exp, "codes": w.values.astype(int).tolist(),
                             "integer": w.integer_matrix().astype(int).tolist()}
        if w.encoding == "ternary":
            d["a_pos"] = np.asarray(w.a_pos).astype(int).tolist()
            d["a_neg"] = np.asarray(w.a_neg).astype(int).tolist()
        return d

    layers = []
    for layer in model.layers:
        n = layer.neurons
        layers.append({
            "name": layer.name, "kind": layer.kind, "size": layer.size,
            "weights": weights(layer.weights),
            "recurrent": weights(layer.recurrent) if layer.recurrent is not None else None,
            "neurons": {"du": n.du, "dv": n.dv, "vth": np.asarray(n.vth).astype(int).tolist(),
                        "bias_mant": np.asarray(n.bias_mant).astype(int).tolist(),
                        "bias_exp": n.bias_exp, "reset": n.reset, "refractory": n.refractory,
                        "adapt_step": n.adapt_step, "adapt_decay": n.adapt_decay},
        })
    x = small_input()
    out = reference.run(model, x)
    return {
        "format": FORMAT,
        "blob": "model_small.bin",
        "blob_bytes": len(blob),
        "content_crc32": f"{struct.unpack('<I', blob[-4:])[0]:08x}",
        "format_version": 1, "name": model.name, "input_size": model.input_size,
        "input_kind": model.input_kind, "timesteps": model.timesteps,
        "decoding": model.decoding, "dt_us": model.dt_us, "labels": model.labels,
        "layers": layers,
        "state_bytes": model.state_bytes(),
        "example": {
            "input_events": [int(e) for e in reference.events_from_spikes(x)],
            "prediction": out.prediction,
            "scores": [int(s) for s in out.scores],
            "counters": [{"input_events": c.input_events, "synops": c.synops,
                          "neuron_updates": c.neuron_updates, "spikes": c.spikes}
                         for c in out.counters],
            "output_spikes": [int(e) for e in reference.events_from_spikes(out.spikes[-1])],
        },
    }


def build() -> dict[str, bytes]:
    """Every vector file's name and exact content."""
    frames = []
    for name, msg in _message_cases():
        payload = msg.SerializeToString(deterministic=True)
        frames.append({
            "name": name, "body": msg.WhichOneof("body"),
            "message": json_format.MessageToDict(msg, preserving_proto_field_name=True),
            "payload_hex": payload.hex(), "frame_hex": encode_frame(payload).hex(),
        })
    doc = {"format": FORMAT, "frames": frames, "cobs": _cobs_cases(),
           "negative": _negative_cases()}
    model = small_model()
    blob = to_bytes(model)
    return {
        "frames.json": (json.dumps(doc, indent=1) + "\n").encode(),
        "model_small.bin": blob,
        "model_small.json": (json.dumps(_model_json(model, blob), indent=1) + "\n").encode(),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the vectors (or, with --check, compare them); returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)
    stale = []
    for name, data in build().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
        else:
            path.write_bytes(data)
            print(f"wrote {path} ({len(data)} bytes)")
    if stale:
        print("stale vectors: " + ", ".join(stale) + "; run python protocol/vectors/generate.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
