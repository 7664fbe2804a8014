"""Seed corpora for the libFuzzer harnesses, and the stream harness's models, from protocol/vectors.

    python3 firmware/fuzz/gen_seeds.py --out DIR        # DIR/link, DIR/stream, DIR/model
    python3 firmware/fuzz/gen_seeds.py --header FILE    # es_fuzz_models.h (stream harness)

Needs the SDK importable (PYTHONPATH=host_sdk). Everything is generated at build or test time
from protocol/vectors/ (frames.json, model_small.bin/.json) and SDK-built models, never
committed. Record formats: firmware/fuzz/fuzz_common.h (link, stream) and fuzz_model.c.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "host_sdk"))

from edgespike.model import EncoderSpec, Layer, Model, Neurons, Weights, to_bytes  # noqa: E402
from edgespike.model.blob import to_message  # noqa: E402
from edgespike.protocol import crc32, encode_frame, pb  # noqa: E402

VECTORS = REPO / "protocol" / "vectors"


# ---- the records of fuzz_common.h -----------------------------------------------------------

def raw(data: bytes) -> bytes:
    """RAW records: bytes as a port hands them over (in pieces of at most 64)."""
    return b"".join(bytes([len(data[i:i + 64]) - 1]) + data[i:i + 64] for i in range(0, len(data), 64))


def frame(msg) -> bytes:
    """A FRAME record: the harness seals the payload with CRC and COBS."""
    payload = msg.SerializeToString(deterministic=True) if not isinstance(msg, bytes) else msg
    return b"\x40" + struct.pack("<H", len(payload)) + payload


def poll(units: int = 1) -> bytes:
    """A POLL record: the clock advances units x 100 us (units < 64), then es_link_poll."""
    return bytes([0x80 | units])


RESYNC, DISCONNECT, OVERRUN, STALL = b"\xc0", b"\xc1", b"\xc2", b"\xc3"


def f(seq: int, **body: dict) -> "pb.Frame":
    """A Frame with one body given as keyword: f(3, run={"events": [1]})."""
    msg = pb.Frame(seq=seq)
    for name, fields in body.items():
        cls = getattr(pb, "".join(part.capitalize() for part in name.split("_")))
        getattr(msg, name).CopyFrom(cls(**fields))
    return msg


def upload(blob: bytes, seq: int = 1, chunk: int = 4096) -> list:
    """ModelBegin, ModelChunks of ``chunk`` bytes, ModelCommit."""
    frames = [f(seq, model_begin={"total_bytes": len(blob), "crc32": crc32(blob)})]
    for off in range(0, len(blob), chunk):
        frames.append(f(seq + 1 + off // chunk, model_chunk={"offset": off, "data": blob[off:off + chunk]}))
    frames.append(f(seq + 99, model_commit={}))
    return frames


# ---- models -----------------------------------------------------------------------------------

def models() -> list[Model]:
    """The stream harness's models after model_small.bin (spike input, 2 delta channels)."""
    rng = np.random.default_rng(7)
    values = Model(
        input_size=4, timesteps=8, input_kind="values", input_max_abs=100, decoding="membrane_last",
        name="values", dt_us=1000, stream_window=4, stream_hop=2,
        layers=[Layer(Weights(rng.integers(-30, 30, (4, 6)).astype(np.int8), exp=-2),
                      Neurons(du=200, dv=300, vth=40, bias_mant=3, bias_exp=1)),
                Layer(Weights(rng.integers(-60, 60, (6, 3)).astype(np.int8)),
                      Neurons(dv=100, vth=rng.integers(5, 60, 3), reset="subtract"))])
    recurrent = Model(
        input_size=6, timesteps=10, decoding="first_spike", name="recurrent",
        layers=[Layer(Weights(rng.integers(-1, 2, (6, 5)).astype(np.int8), encoding="ternary",
                              a_pos=rng.integers(20, 90, 5), a_neg=30),
                      Neurons(du=1000, dv=500, vth=30, refractory=2, adapt_step=10, adapt_decay=300),
                      recurrent=Weights(rng.integers(-40, 40, (5, 5)).astype(np.int8))),
                Layer(Weights(rng.integers(-90, 90, (5, 2)).astype(np.int8)), Neurons(vth=50))])
    return [values, recurrent]


def extra_models() -> list[Model]:
    """More models for the parser harness: every decoding, per-neuron arrays, an encoder,
    labels, streaming fields, a wider ternary layer, many layers."""
    rng = np.random.default_rng(8)
    out = []
    for decoding in ("spike_count", "membrane_last"):
        out.append(Model(
            input_size=5, timesteps=12, decoding=decoding, name=f"m-{decoding}",
            labels=["x", "y", "z"], dt_us=250,
            encoder=EncoderSpec(kind="delta", channels=3, thresholds=[2, -5, 9], params_json='{"a": 1}'),
            layers=[Layer(Weights(rng.integers(-128, 128, (5, 7)).astype(np.int8), exp=-4),
                          Neurons(vth=rng.integers(0, 100, 7), bias_mant=rng.integers(-100, 100, 7),
                                  bias_exp=3, du=4096, dv=4096)),
                    Layer(Weights(rng.integers(-1, 2, (7, 3)).astype(np.int8), encoding="ternary",
                                  a_pos=rng.integers(1, 255, 3), a_neg=rng.integers(1, 255, 3), exp=-5),
                          Neurons(dv=0, vth=1, reset="subtract"))]))
    out.append(Model(input_size=40, timesteps=3, name="wide",
                     layers=[Layer(Weights(rng.integers(-1, 2, (40, 33)).astype(np.int8),
                                           encoding="ternary", a_pos=3, a_neg=4, exp=-1))]))
    out.append(Model(input_size=2, timesteps=2, name="deep",
                     layers=[Layer(Weights(np.full((2, 2), 40, np.int8))) for _ in range(8)]))
    out.append(Model(input_size=3, timesteps=1, input_kind="values", input_max_abs=32767,
                     decoding="first_spike", name="one-step",
                     layers=[Layer(Weights(np.full((3, 1), 127, np.int8), exp=-9))]))
    out.append(Model(input_size=6, timesteps=5, input_kind="values", input_max_abs=500,
                     decoding="membrane_sum", name="values-ternary",
                     layers=[Layer(Weights(rng.integers(-1, 2, (6, 9)).astype(np.int8), encoding="ternary",
                                           a_pos=rng.integers(1, 40, 9), a_neg=17, exp=-3),
                                   Neurons(du=0, dv=2000, vth=9))]))
    return out


def refused_bodies() -> list[bytes]:
    """Bodies the parser refuses late: a sum past 2^31 (the kernels' int32), a 9th layer."""
    huge = Model(input_size=600, timesteps=2, input_kind="values", input_max_abs=32767,
                 layers=[Layer(Weights(np.full((600, 1), 127, np.int8), exp=-31))])
    deep = Model(input_size=1, timesteps=2, layers=[Layer(Weights(np.ones((1, 1), np.int8)))] * 9)
    return [to_message(m).SerializeToString(deterministic=True) for m in (huge, deep)]


def stream_blobs() -> list[bytes]:
    return [(VECTORS / "model_small.bin").read_bytes()] + [to_bytes(m) for m in models()]


def write_header(path: Path) -> None:
    blobs = stream_blobs()
    lines = ["/* Generated by firmware/fuzz/gen_seeds.py: the stream harness's models. */",
             "#ifndef ES_FUZZ_MODELS_H", "#define ES_FUZZ_MODELS_H", "#include <stdint.h>", ""]
    for i, b in enumerate(blobs):
        body = ",".join(str(x) for x in b)
        lines.append(f"static const uint8_t es_fuzz_model_{i}[{len(b)}] = {{{body}}};")
    lines += ["static const struct { const uint8_t *blob; uint32_t len; } es_fuzz_models[] = {"]
    lines += [f"    {{es_fuzz_model_{i}, {len(b)}u}}," for i, b in enumerate(blobs)]
    lines += ["};", f"#define ES_FUZZ_N_MODELS {len(blobs)}u", "#endif", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


# ---- seeds ------------------------------------------------------------------------------------

def link_seeds() -> list[bytes]:
    vectors = json.loads((VECTORS / "frames.json").read_text())
    seeds = []
    for case in vectors["frames"]:
        seeds.append(frame(bytes.fromhex(case["payload_hex"])))
        seeds.append(raw(bytes.fromhex(case["frame_hex"])))
    for case in vectors["negative"]:
        seeds.append(raw(bytes.fromhex(case["frame_hex"])))
    small = (VECTORS / "model_small.bin").read_bytes()
    example = json.loads((VECTORS / "model_small.json").read_text())["example"]["input_events"]
    session = [f(1, hello={"protocol_version": 1})] + upload(small, seq=2) + [
        f(200, run={"events": example, "record_spikes": True}),
        f(201, run={"values": [1, 2, 3]}), f(202, stats_request={}), f(203, reset={}),
        f(204, run={"events": example})]
    seeds.append(b"".join(frame(m) for m in session))
    seeds.append(raw(b"".join(encode_frame(m.SerializeToString(deterministic=True)) for m in session)))
    values, recurrent = models()
    vals = np.random.default_rng(1).integers(-100, 101, values.timesteps * values.input_size)
    seeds.append(b"".join(frame(m) for m in upload(to_bytes(values), chunk=40) + [
        f(300, run={"values": [int(v) for v in vals], "record_spikes": True}),
        f(301, model_begin={"total_bytes": 10, "crc32": 1}), f(302, model_chunk={"data": b"\x01" * 4}),
        f(303, model_commit={}), f(304, run={"values": [int(v) for v in vals]})]))
    seeds.append(b"".join(frame(m) for m in upload(to_bytes(recurrent)) + [
        f(400, run={"events": [0, 3, 65537, 131077, 196608], "record_spikes": True})]))
    return seeds


def stream_seeds() -> list[bytes]:
    def batch(seq, first, n, **items):
        return f(seq, event_batch=dict(batch_seq=seq - 10, first_step=first, n_steps=n, **items))

    seeds = []
    # model 0: model_small, spike input (4 = 2 UP/DOWN channels), 6 steps
    seeds.append(b"\x00" + b"".join(frame(m) for m in [
        f(10, stream_start={"free_run": True, "record_spikes": True}),
        batch(11, 0, 3, events=[0, 2, 65537, 131075]), batch(12, 3, 3, events=[1, 65538])])
        + poll(1) + frame(f(13, stats_request={})) + frame(f(14, stream_stop={})))
    seeds.append(b"\x00" + frame(f(10, stream_start={"step_us": 1000, "window": 3, "hop": 1}))
                 + b"".join(frame(batch(11 + k, 3 * k, 3, events=[k % 4, 65536 + (k + 1) % 4]))
                            + poll(20) for k in range(5)) + STALL)
    seeds.append(b"\x00" + frame(f(10, stream_start={"free_run": True, "raw_samples": True,
                                                     "delta_thresholds": [3, 5]}))
                 + frame(batch(11, 0, 4, samples=[0, 0, 4, -6, 9, 1, 2, 30]))
                 + poll(1) + DISCONNECT)
    seeds.append(b"\x00" + frame(f(10, stream_start={"free_run": True}))
                 + frame(batch(11, 0, 1, events=[1])) + frame(batch(13, 1, 1, events=[2])))  # gap
    seeds.append(b"\x00" + frame(f(10, stream_start={"free_run": True}))
                 + b"".join(frame(batch(11 + k, k, 1, events=[k % 4])) for k in range(10)))  # credit
    seeds.append(b"\x00" + frame(f(10, stream_stop={})) + frame(f(11, event_batch={"batch_seq": 1})))
    # model 1: direct input, window 4 / hop 2
    seeds.append(b"\x01" + frame(f(10, stream_start={"record_spikes": True, "step_us": 500}))
                 + b"".join(frame(batch(11 + k, 2 * k, 2, values=[(7 * k + j) % 200 - 100 for j in range(8)]))
                            + poll(15) for k in range(6)) + frame(f(30, stream_stop={})))
    seeds.append(b"\x01" + frame(f(10, stream_start={"free_run": True}))
                 + frame(batch(11, 0, 1, values=[101, 0, 0, 0])))  # out of range
    # model 2: recurrent ternary, first-spike decoding
    seeds.append(b"\x02" + frame(f(10, stream_start={"free_run": True, "record_spikes": True}))
                 + frame(batch(11, 0, 10, events=[(t << 16) | (t % 6) for t in range(10)]))
                 + poll(1) + frame(batch(12, 10, 10, events=[(t << 16) | 5 for t in range(10)]))
                 + poll(1) + frame(f(13, hello={"protocol_version": 1})))
    vectors = json.loads((VECTORS / "frames.json").read_text())
    for case in vectors["frames"]:
        if case["body"] in ("stream_start", "event_batch", "stream_stop"):
            seeds.append(b"\x00" + frame(bytes.fromhex(case["payload_hex"])) + poll(3))
    return seeds


def model_seeds() -> list[bytes]:
    rng = np.random.default_rng(3)
    seeds = []
    bodies = [b[:-6] for b in stream_blobs()] + [to_bytes(m)[:-6] for m in extra_models()]
    for body in bodies + refused_bodies():
        for inp in (bytes(rng.integers(0, 4, 24).astype(np.uint8)),
                    rng.integers(-200, 200, 40).astype("<i2").tobytes(), b"\xff" + bytes(range(16))):
            seeds.append(struct.pack("<H", len(body)) + body + inp)
    blob = (VECTORS / "model_small.bin").read_bytes()  # as is: the harness adds no hash
    seeds.append(struct.pack("<H", 0x8000 | len(blob)) + blob)
    return seeds


def write_seeds(out: Path) -> dict[str, int]:
    counts = {}
    for target, seeds in (("link", link_seeds()), ("stream", stream_seeds()), ("model", model_seeds())):
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():  # seeds of an earlier version go
            old.unlink()
        for s in seeds:
            (d / hashlib.sha1(s).hexdigest()).write_bytes(s)
        counts[target] = len(seeds)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write seed corpora into OUT/{link,stream,model}")
    ap.add_argument("--header", type=Path, help="write the stream harness's models header")
    args = ap.parse_args(argv)
    if args.header:
        write_header(args.header)
    if args.out:
        print(" ".join(f"{k}={v}" for k, v in write_seeds(args.out).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
