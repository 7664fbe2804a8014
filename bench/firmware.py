#!/usr/bin/env python3
"""Firmware cost on the emulated Cortex-M4 (QEMU mps2-an386, -icount shift=0).

For a fixed set of layer shapes and input spike rates it prints instructions per inference,
estimated Cortex-M4 cycles per inference (the cycle model's central figure and its low-high
range, from a block trace of the same run; docs/profile.md), instructions and cycles per SynOp
and per neuron update, and the firmware's flash and RAM (arm-none-eabi-size). Instructions are
exact (deterministic under icount), cycles are estimates; neither is seconds, so runs compare
across machines. The per-SynOp cost is measured against a baseline taken in the same run: the
same model on silent input (neuron updates only), so

    instructions per SynOp = (instructions(input) - instructions(silent)) / SynOps

and the same for cycles. Without the block-trace plugin (bash firmware/build.sh builds it) the
cycle columns say "-".

Usage: python bench/firmware.py [--json] [--timesteps 16] [--inputs 4] [--core cortex-m4]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

import numpy as np

from edgespike import paths
from edgespike.errors import ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.profile.estimate import core_estimate
from edgespike.sim import qemu, trace

SHAPES = [(64, 10), (128, 128), (256, 256), (784, 128), (512, 512)]
RATES = [0.02, 0.1, 0.3]


@dataclass
class Row:
    shape: str
    weights: str
    rate: float
    synops: float
    instr: float
    instr_silent: float
    instr_per_synop: float
    instr_per_neuron_update: float
    cycles: float = float("nan")
    cycles_low: float = float("nan")
    cycles_high: float = float("nan")
    cycles_silent: float = float("nan")
    cycles_per_synop: float = float("nan")
    cycles_per_neuron_update: float = float("nan")

    @property
    def cpi(self) -> float:
        return self.cycles / self.instr if self.instr else float("nan")


def make_model(fan_in: int, fan_out: int, encoding: str, timesteps: int, seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    if encoding == "int8":
        w = Weights(rng.integers(-128, 128, (fan_in, fan_out)).astype(np.int8), exp=-6)
    else:
        w = Weights(rng.integers(-1, 2, (fan_in, fan_out)).astype(np.int8), encoding="ternary",
                    a_pos=20, a_neg=24, exp=-2)
    model = Model(input_size=fan_in, timesteps=timesteps, name=f"{fan_in}x{fan_out}-{encoding}",
                  layers=[Layer(w, Neurons(du=1024, dv=512, vth=200))])
    while True:  # lower the exponent until the 2^17 input bound holds
        try:
            return model.validate()
        except Exception:
            model.layers[0].weights.exp -= 1


def measure(model: Model, rate: float, n: int, core: str, seed: int = 1,
            traced: bool = True) -> tuple[float, float, tuple[float, float, float] | None]:
    """Instructions and SynOps per inference, and estimated cycles (low, central, high) when
    the block-trace plugin is built (``traced``)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, model.timesteps, model.input_size)) < rate).astype(np.uint8)
    if traced:
        run = trace.trace_batch(model, x)
        est, _, _ = core_estimate(run, core)
        out = run.outputs
        cyc = (est.cycles.low, est.cycles.central, est.cycles.high)
    else:
        out, cyc = qemu.run_batch(model, x, record=False), None
    return (float(np.mean([o.cycles for o in out])),
            float(np.mean([sum(c.synops for c in o.counters) for o in out])), cyc)


def elf_sizes() -> dict[str, dict[str, int]]:
    tool = shutil.which("arm-none-eabi-size")
    out: dict[str, dict[str, int]] = {}
    if tool is None:
        return out
    for name, path in (("link firmware", paths.firmware_image()), ("runner", paths.runner_image())):
        lines = subprocess.run([tool, str(path)], capture_output=True, text=True, check=True).stdout.splitlines()
        text, data, bss = (int(v) for v in lines[1].split()[:3])
        out[name] = {"flash_bytes": text + data, "ram_bytes": data + bss, "text": text, "data": data, "bss": bss}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    ap.add_argument("--timesteps", type=int, default=16)
    ap.add_argument("--inputs", type=int, default=4, help="inputs averaged per point")
    ap.add_argument("--core", default="cortex-m4",
                    choices=("cortex-m4", "cortex-m7", "cortex-m33"),
                    help="the core whose cycle model prices the trace (default cortex-m4)")
    args = ap.parse_args()

    why = trace.available()
    if why:
        print(f"no cycle estimate: {why}", file=sys.stderr)
    rows: list[Row] = []
    for fan_in, fan_out in SHAPES:
        for encoding in ("int8", "ternary"):
            model = make_model(fan_in, fan_out, encoding, args.timesteps)
            silent, _, csilent = measure(model, 0.0, 1, args.core, traced=not why)
            for rate in RATES:
                instr, synops, cyc = measure(model, rate, args.inputs, args.core, traced=not why)
                updates = args.timesteps * fan_out
                row = Row(f"{fan_in}x{fan_out}", encoding, rate, synops, instr, silent,
                          (instr - silent) / synops if synops else float("nan"),
                          silent / updates)
                if cyc is not None and csilent is not None:
                    row.cycles_low, row.cycles, row.cycles_high = cyc
                    row.cycles_silent = csilent[1]
                    row.cycles_per_synop = (cyc[1] - csilent[1]) / synops if synops else float("nan")
                    row.cycles_per_neuron_update = csilent[1] / updates
                rows.append(row)
            print(f"measured {fan_in}x{fan_out} {encoding}", file=sys.stderr)
    sizes = elf_sizes()
    if args.json:
        print(json.dumps({"timesteps": args.timesteps, "core": args.core,
                          "rows": [dict(asdict(r), cpi=r.cpi) for r in rows], "sizes": sizes}))
        return 0
    print(f"Firmware on the emulated Cortex-M4 (mps2-an386), {args.timesteps} steps per inference: "
          "instructions under QEMU -icount shift=0 (exact), cycles estimated for the "
          f"{args.core} (central, low-high; docs/profile.md)")
    print()
    hdr = (f"{'layer':>9} {'weights':>7} {'rate':>5} {'SynOps':>10} {'instr/inference':>16} "
           f"{'est. cycles/inference':>30} {'CPI':>5} {'silent':>10} {'instr/SynOp':>11} "
           f"{'cyc/SynOp':>9} {'instr/update':>12} {'cyc/update':>10}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        cyc = "-" if r.cycles != r.cycles else \
            f"{r.cycles:,.0f} ({r.cycles_low:,.0f}-{r.cycles_high:,.0f})"
        print(f"{r.shape:>9} {r.weights:>7} {r.rate:>5.2f} {r.synops:>10,.0f} {r.instr:>16,.0f} "
              f"{cyc:>30} {r.cpi:>5.2f} {r.instr_silent:>10,.0f} {r.instr_per_synop:>11.2f} "
              f"{r.cycles_per_synop:>9.2f} {r.instr_per_neuron_update:>12.2f} "
              f"{r.cycles_per_neuron_update:>10.2f}")
    print()
    for name, s in sizes.items():
        print(f"{name:>14}: flash {s['flash_bytes']:,} bytes (text {s['text']:,} + data {s['data']:,}), "
              f"static RAM {s['ram_bytes']:,} bytes (data + bss {s['bss']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
