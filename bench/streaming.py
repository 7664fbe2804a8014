"""Live streaming through a board: event-to-decision latency, sustained throughput, and where
credit-based flow control starts to hold the host back (issue #5).

    python bench/streaming.py                       # the emulated board (QEMU mps2-an386)
    python bench/streaming.py --board host          # the host device, for comparison
    python bench/streaming.py --json out.json

Workload: a BasicMotions-shaped direct-encoding SNN (6 inputs -> 32 -> 4, int8, 100 steps per
window, membrane-sum decisions) with fixed random weights, fed the real BasicMotions test set
(standardised values x 16, rounded, clipped to +-127); and, for events per second, a spike
model (64 inputs -> 32 -> 4, 20 % input spike rate). Accuracy is irrelevant here; the figures
are relative (compare them run to run and board to board), nothing is asserted.

Tables:
1. latency: real-time replay by the host (one step per batch) to a device that runs each
   step on arrival (free-running) or on its own schedule (paced at the same step period);
   host clock from sending the batch that closes a window to receiving its decision, and the
   device's own clock from that batch's arrival to the decision (QEMU: virtual ns).
   device_clock_per_wall: device clock seconds per host second over the stream. Under QEMU
   -icount the virtual clock falls behind the wall clock while the board takes UART bytes
   (one interrupt per byte), so a paced board runs slower than its nominal rate.
2. throughput: unpaced host, free-running device, as many steps per batch as fit: steps/s,
   items/s (values) and events/s (spike model), sustained over the whole stream.
3. flow control: one step per EventBatch, the host offering a fixed rate, the device paced
   at 10 ms per step (100 steps/s) or free-running; the rate achieved, the fraction of the
   host's time spent waiting for credit, the most batches in flight, and items lost (sent
   minus taken by the device: always 0). Where credit_wait_fraction leaves 0 is where flow
   control starts to hold the host back: at the device's pace, or at the link's frame rate.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from edgespike.device import open_device
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.stream import ArraySource, IterableSource, ReplaySource, reference_stream


def values_model(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    return Model(name="bm-shaped", input_size=6, timesteps=100, input_kind="values",
                 input_max_abs=127, decoding="membrane_sum", dt_us=100_000,
                 layers=[Layer(weights=Weights(rng.integers(-60, 60, (6, 32)).astype(np.int8),
                                               exp=-2), neurons=Neurons(vth=80, dv=410)),
                         Layer(weights=Weights(rng.integers(-60, 60, (32, 4)).astype(np.int8)),
                               neurons=Neurons(vth=100, dv=410))])


def spike_model(seed: int = 1) -> Model:
    rng = np.random.default_rng(seed)
    return Model(name="spikes", input_size=64, timesteps=100, input_kind="spikes",
                 decoding="spike_count", dt_us=1000,
                 layers=[Layer(weights=Weights(rng.integers(-40, 60, (64, 32)).astype(np.int8)),
                               neurons=Neurons(vth=40, dv=410)),
                         Layer(weights=Weights(rng.integers(-40, 60, (32, 4)).astype(np.int8)),
                               neurons=Neurons(vth=40, dv=410))])


def basic_motions_values() -> np.ndarray:
    try:
        from edgespike.train.pipeline import prepare

        x = np.asarray(prepare("basic_motions", "direct", 8, 0).x_test, dtype=np.float64)
    except Exception as exc:  # the dataset is not available: fall back to noise, say so
        print(f"(BasicMotions not available: {exc}; using random values)", file=sys.stderr)
        x = np.random.default_rng(0).normal(size=(40, 100, 6))
    return np.clip(np.round(x * 16), -127, 127).astype(np.int64)


def pct(v, q):
    return float(np.percentile(np.asarray(v) * 1000.0, q)) if len(v) else float("nan")


def latency(dev, model, x, step_ms: float, n: int, free_run: bool):
    dev.hello()
    dev.deploy(model)
    s = dev.stream(ReplaySource(x[:n], step_ms / 1000.0, 1.0), batch_steps=1, free_run=free_run)
    t0 = time.monotonic()
    got = list(s)
    wall = time.monotonic() - t0
    dev_lat = [d.device_latency / 1e9 for d in got]  # ns of the device clock
    span_dev = (got[-1].device_time - got[0].device_time) / 1e9 if len(got) > 1 else 0.0
    span_host = got[-1].received - got[0].received if len(got) > 1 else 0.0
    ok = [d.scores.tolist() for d in got] == [r.scores.tolist() for r in
                                             reference_stream(model, x[:n].reshape(-1, 6))]
    return {"step_ms": step_ms, "device": "free-running" if free_run else "paced",
            "decisions": len(got), "exact": ok, "wall_s": round(wall, 3),
            "host_median_ms": round(pct(s.stats.latencies_s, 50), 3),
            "host_p99_ms": round(pct(s.stats.latencies_s, 99), 3),
            "device_median_ms": round(pct(dev_lat, 50), 3),
            "device_p99_ms": round(pct(dev_lat, 99), 3),
            "device_clock_per_wall": round(span_dev / span_host, 3) if span_host else None,
            "credit_wait_s": round(s.stats.credit_wait_s, 3), "stalls": s.stats.device_stalls}


def throughput(dev, model, x, label: str):
    dev.hello()
    dev.deploy(model)
    s = dev.stream(ArraySource(x))
    got = list(s)
    st = s.stats
    return {"workload": label, "steps": st.device_steps, "decisions": len(got),
            "seconds": round(st.seconds, 3), "steps_per_s": round(st.device_steps / st.seconds),
            "items_per_s": round(st.items_sent / st.seconds),
            "events_per_s": round(st.events_sent / st.seconds),
            "batches": st.batches_sent, "credit_waits": st.credit_waits}


def flow_control(dev, model, x, device_step_us: int, offered_steps_per_s: float, steps: int):
    """The host offers one step per batch at a fixed rate (inf: as fast as it can); the device
    is paced at ``device_step_us`` (0: free-running)."""
    dev.hello()
    dev.deploy(model)
    rows = x.reshape(-1, x.shape[-1])[:steps]
    step_s = None if math.isinf(offered_steps_per_s) else 1.0 / offered_steps_per_s
    s = dev.stream(IterableSource(iter(rows), step_s=step_s), step_us=device_step_us,
                   free_run=device_step_us == 0, batch_steps=1)
    t0 = time.monotonic()
    list(s)
    wall = time.monotonic() - t0
    st = s.stats
    return {"device": f"paced {device_step_us / 1000:g} ms" if device_step_us else "free-running",
            "offered_steps_per_s": "max" if step_s is None else round(offered_steps_per_s),
            "achieved_steps_per_s": round(st.device_steps / wall),
            "credit_wait_fraction": round(st.credit_wait_s / wall, 3),
            "credit_waits": st.credit_waits, "max_in_flight": st.max_in_flight,
            "lost_items": st.items_sent - st.device_items}


def table(rows, cols):
    w = [max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols]
    out = ["  ".join(str(c).ljust(x) for c, x in zip(cols, w)), "  ".join("-" * x for x in w)]
    out += ["  ".join(str(r[c]).ljust(x) for c, x in zip(cols, w)) for r in rows]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default="mps2-an386", choices=("mps2-an386", "host"))
    ap.add_argument("--port", default=None, help="an already running device instead")
    ap.add_argument("--json", default=None, metavar="FILE")
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = ap.parse_args(argv)
    vm, sm = values_model(), spike_model()
    x = basic_motions_values()
    xs = (np.random.default_rng(2).random((40, 100, 64)) < 0.2).astype(np.int64)
    n_lat = 3 if args.quick else 8
    out = {"board": args.board if not args.port else args.port}
    with open_device(port=args.port, board=None if args.port else args.board, timeout=20) as dev:
        info = dev.hello()
        out["device"] = {"board": info.board, "cycle_source": info.cycle_source}
        out["latency"] = [latency(dev, vm, x, ms, n_lat, free) for free in (True, False)
                          for ms in (10.0, 2.0)]
        out["throughput"] = [throughput(dev, vm, x, "values 6/step (BasicMotions)"),
                             throughput(dev, sm, xs[: 10 if args.quick else 40],
                                        "spikes 64 inputs, 20 %")]
        steps = 150 if args.quick else 300
        fc = [flow_control(dev, vm, x, 10_000, r, steps) for r in (50, 90, 110, 200, math.inf)]
        fc += [flow_control(dev, vm, x, 0, r, steps) for r in (100, 200, 400, 800, math.inf)]
        out["flow_control"] = fc
    print(f"streaming on {out['device']['board']} (device clock: {out['device']['cycle_source']})")
    print("\n1. event-to-decision latency (real-time replay, 1 step per batch, 100-step windows)")
    print(table(out["latency"], ["step_ms", "device", "decisions", "exact", "host_median_ms",
                                 "host_p99_ms", "device_median_ms", "device_p99_ms",
                                 "device_clock_per_wall", "credit_wait_s"]))
    print("\n2. sustained throughput (unpaced host, free-running device)")
    print(table(out["throughput"], ["workload", "steps", "seconds", "steps_per_s", "items_per_s",
                                    "events_per_s", "batches"]))
    print("\n3. flow control: one step per batch, the host offering a fixed rate; the device "
          "paced at 10 ms/step (100 steps/s) or free-running")
    print(table(out["flow_control"], ["device", "offered_steps_per_s", "achieved_steps_per_s",
                                      "credit_wait_fraction", "credit_waits", "max_in_flight",
                                      "lost_items"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
