#!/usr/bin/env python3
"""Firmware cost on the emulated Cortex-M4 (QEMU mps2-an386, -icount shift=0).

For a fixed set of layer shapes and input spike rates it prints instructions per inference,
instructions per SynOp and per neuron update, and the firmware's flash and RAM
(arm-none-eabi-size). Figures are executed instructions (deterministic under icount), not
seconds, so runs compare across machines; the per-SynOp cost is measured against a baseline
taken in the same run: the same model on silent input (neuron updates only), so

    instructions per SynOp = (instructions(input) - instructions(silent)) / SynOps

Usage: python bench/firmware.py [--json] [--timesteps 16] [--inputs 4]
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
from edgespike.model import Layer, Model, Neurons, Weights
from edgespike.sim import qemu

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


def measure(model: Model, rate: float, n: int, seed: int = 1) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    x = (rng.random((n, model.timesteps, model.input_size)) < rate).astype(np.uint8)
    out = qemu.run_batch(model, x, record=False)
    return (float(np.mean([o.cycles for o in out])),
            float(np.mean([sum(c.synops for c in o.counters) for o in out])))


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
    args = ap.parse_args()

    rows: list[Row] = []
    for fan_in, fan_out in SHAPES:
        for encoding in ("int8", "ternary"):
            model = make_model(fan_in, fan_out, encoding, args.timesteps)
            silent, _ = measure(model, 0.0, 1)
            for rate in RATES:
                instr, synops = measure(model, rate, args.inputs)
                updates = args.timesteps * fan_out
                rows.append(Row(f"{fan_in}x{fan_out}", encoding, rate, synops, instr, silent,
                                (instr - silent) / synops if synops else float("nan"),
                                silent / updates))
            print(f"measured {fan_in}x{fan_out} {encoding}", file=sys.stderr)
    sizes = elf_sizes()
    if args.json:
        print(json.dumps({"timesteps": args.timesteps, "rows": [asdict(r) for r in rows], "sizes": sizes}))
        return 0
    print(f"Firmware on the emulated Cortex-M4 (mps2-an386), {args.timesteps} steps per inference, "
          "instructions under QEMU -icount shift=0")
    print()
    hdr = f"{'layer':>9} {'weights':>7} {'rate':>5} {'SynOps':>10} {'instr/inference':>16} {'silent':>10} {'instr/SynOp':>11} {'instr/update':>12}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r.shape:>9} {r.weights:>7} {r.rate:>5.2f} {r.synops:>10,.0f} {r.instr:>16,.0f} "
              f"{r.instr_silent:>10,.0f} {r.instr_per_synop:>11.2f} {r.instr_per_neuron_update:>12.2f}")
    print()
    for name, s in sizes.items():
        print(f"{name:>14}: flash {s['flash_bytes']:,} bytes (text {s['text']:,} + data {s['data']:,}), "
              f"static RAM {s['ram_bytes']:,} bytes (data + bss {s['bss']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
