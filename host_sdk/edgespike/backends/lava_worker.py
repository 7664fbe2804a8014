"""Runs a planned network on Lava's bit-accurate Loihi 2 CPU models (lava-nc 0.10).

This file runs INSIDE the Lava environment (Python 3.10, numpy < 2), started by
:mod:`edgespike.backends.lava` as ``<lava python> -I lava_worker.py PLAN.json ARRAYS.npz OUT.npz``.
It is self-contained on purpose: it imports neither edgespike nor anything but numpy and lava,
so the SDK itself can stay on a current Python and numpy.

The plan is already in Lava's terms (the host did the mapping: ``du - 1``, weight scaling, sign
modes, neuron groups). This worker only builds the processes, runs every inference back to back
in one Lava runtime and returns the spike rasters aligned to the SDK's time steps.

Plan (JSON)::

    {"batch": B, "timesteps": T, "period": P,
     "input": {"size": n, "graded": bool},
     "pops":  [{"size": n, "du": int, "dv": int, "vth": int, "lag": int, "bias": bool}, ...],
     "conns": [{"src": "input" or pop, "dst": pop, "weight_exp": int,
                "sign_mode": 1|2|3, "num_message_bits": int}, ...],
     "record_v": [pop, ...]}

Arrays (npz): ``input`` (B, T, n) int32; ``pop{i}_bias_mant``, ``pop{i}_bias_exp`` (n,);
``conn{j}_w`` (n_dst, n_src) int32, Lava's (fan_out, fan_in) layout.

Alignment: every Dense delivers its sum one Lava step after it received the spikes, so a
population with ``lag`` k computes the SDK's step t at Lava step ``k + t`` (0-based, counted
from the start of its inference). Each inference takes ``P = T + max(lag)`` Lava steps; between
inferences u, v and every Dense's buffer are set back to 0. Biases are held at 0 until a
population's first real step, so the lag steps leave it at rest (u = v = 0, no spike).

Output (npz): ``spikes{i}`` (B, T, n) uint8, ``u{i}``, ``v{i}`` (B, n) int32 (state after the
population's last real step), ``vtrace{i}`` (B, T, n) int32 for the recorded populations,
``seconds_build``, ``seconds_run`` (wall seconds), ``lava_steps``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# This folder holds edgespike's lava.py; never let it shadow the lava package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE]

import numpy as np  # noqa: E402


def _build(plan: dict, arrays: dict):
    """Create the Lava processes and connect them; returns the handles the run needs."""
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    batch, steps, period = plan["batch"], plan["timesteps"], plan["period"]
    total = batch * period
    n_in = plan["input"]["size"]

    # The input of inference b sits at Lava steps b*P .. b*P + T - 1, zeros after it.
    x = arrays["input"].astype(np.int32)
    raster = np.zeros((n_in, total), dtype=np.int32)
    for b in range(batch):
        raster[:, b * period: b * period + steps] = x[b].T
    source = Source(data=raster)

    pops = []
    for i, p in enumerate(plan["pops"]):
        n = p["size"]
        pops.append(LIF(
            shape=(n,), du=p["du"], dv=p["dv"], vth=p["vth"],
            # biases start at 0 and are set at the population's first real step
            bias_mant=np.zeros(n, dtype=np.int32),
            bias_exp=arrays[f"pop{i}_bias_exp"].astype(np.int32),
            u=0, v=0, name=f"pop{i}",
        ))

    denses = []
    for j, c in enumerate(plan["conns"]):
        w = arrays[f"conn{j}_w"].astype(np.int32)
        dense = Dense(
            weights=w, weight_exp=int(c["weight_exp"]), num_weight_bits=8,
            sign_mode=SignMode(int(c["sign_mode"])),
            num_message_bits=int(c["num_message_bits"]), name=f"conn{j}",
        )
        # one source per Dense: lava 0.10 cannot compile ConcatPorts
        src_port = source.s_out if c["src"] == "input" else pops[int(c["src"])].s_out
        src_port.connect(dense.s_in)
        dense.a_out.connect(pops[c["dst"]].a_in)
        denses.append(dense)

    sinks = []
    for pop in pops:
        sink = Sink(shape=pop.s_out.shape, buffer=total)
        pop.s_out.connect(sink.a_in)
        sinks.append(sink)

    monitors = {}
    for i in plan.get("record_v", []):
        mon = Monitor()
        mon.probe(pops[i].v, total)
        monitors[i] = mon
    return source, pops, denses, sinks, monitors


def run(plan: dict, arrays: dict) -> dict:
    """Run every inference of the plan; returns the output arrays (see the module doc)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    t0 = time.perf_counter()
    source, pops, denses, sinks, monitors = _build(plan, arrays)
    batch, steps, period = plan["batch"], plan["timesteps"], plan["period"]
    lags = sorted({p["lag"] for p in plan["pops"]})
    if lags[-1] + steps != period:
        raise ValueError(f"period {period} must be timesteps + max lag ({steps} + {lags[-1]})")
    biased = [i for i, p in enumerate(plan["pops"]) if p["bias"]]
    bias_mant = {i: arrays[f"pop{i}_bias_mant"].astype(np.int32) for i in biased}

    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    out = {f"spikes{i}": np.zeros((batch, steps, p["size"]), np.uint8)
           for i, p in enumerate(plan["pops"])}
    for i, p in enumerate(plan["pops"]):
        out[f"u{i}"] = np.zeros((batch, p["size"]), np.int32)
        out[f"v{i}"] = np.zeros((batch, p["size"]), np.int32)

    anchor = pops[0]
    started = False
    t_build = 0.0

    def advance(n: int) -> None:
        nonlocal started, t_build
        if n <= 0:
            return
        if not started:
            anchor.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
            started = True
            t_build = time.perf_counter() - t0
        else:
            anchor.run(condition=RunSteps(num_steps=n))

    try:
        for b in range(batch):
            if b > 0:
                # back to rest: the previous inference's tail left state and buffered sums
                for i, pop in enumerate(pops):
                    pop.u.set(np.zeros(pop.u.shape, np.int32))
                    pop.v.set(np.zeros(pop.v.shape, np.int32))
                    if i in biased:
                        pop.bias_mant.set(np.zeros(pop.bias_mant.shape, np.int32))
                for dense in denses:
                    dense.a_buff.set(np.zeros(dense.a_buff.shape, np.int32))
            # One schedule per inference, in Lava steps from its start: a population's bias is
            # switched on before its first real step (Lava step = lag) and its state is read
            # right after its last one (lag + timesteps). With fewer time steps than layers
            # these events interleave across populations, so they are sorted, not walked
            # population by population; the last read ends the inference at exactly `period`.
            events = sorted(
                [(p["lag"], 0, i) for i, p in enumerate(plan["pops"]) if i in biased]
                + [(p["lag"] + steps, 1, i) for i, p in enumerate(plan["pops"])])
            done = 0
            for at, kind, i in events:
                advance(at - done)
                done = at
                if kind == 0:
                    pops[i].bias_mant.set(bias_mant[i])
                else:
                    out[f"u{i}"][b] = pops[i].u.get()
                    out[f"v{i}"][b] = pops[i].v.get()
            if done != period:
                raise RuntimeError(f"inference {b} ran {done} Lava steps, expected {period}")
        for i, (p, sink) in enumerate(zip(plan["pops"], sinks)):
            data = sink.data.get().astype(np.int64)  # (n, batch * period)
            for b in range(batch):
                start = b * period + p["lag"]
                out[f"spikes{i}"][b] = (data[:, start: start + steps].T != 0)
        for i, mon in monitors.items():
            p = plan["pops"][i]
            trace = np.asarray(mon.get_data()[pops[i].name]["v"])  # (batch * period, n)
            vt = np.zeros((batch, steps, p["size"]), np.int32)
            for b in range(batch):
                start = b * period + p["lag"]
                vt[b] = trace[start: start + steps]
            out[f"vtrace{i}"] = vt
    finally:
        if started:
            anchor.stop()
    out["seconds_build"] = np.float64(t_build)
    out["seconds_run"] = np.float64(time.perf_counter() - t0 - t_build)
    out["lava_steps"] = np.int64(batch * period)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: lava_worker.py PLAN.json ARRAYS.npz OUT.npz", file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[0]).read_text())
    with np.load(argv[1], allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    out = run(plan, arrays)
    tmp = argv[2] + ".part.npz"
    np.savez(tmp, **out)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
