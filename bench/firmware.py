#!/usr/bin/env python3
"""The C core's cost on the emulated Cortex-M4 (QEMU mps2-an386, -icount shift=0), by part.

Every inference runs in the semihosting runner under the block-trace plugin, which counts the
instructions of every function inside ``es_engine_run``; the linker map says which source file
each function comes from, so an inference splits exactly into:

  kernels        es_kernel_*.c    synaptic input (per SynOp for spikes, per MAC for values)
  neuron update  es_lif.c         per neuron update
  fixed          everything else  (engine, counters, cycle reads) per layer and time step

Figures are executed instructions (exact and deterministic under icount), for the DSP kernels
(the default build) and the portable C kernels built for the same core. "per SynOp" divides a
kernel's instructions by the SynOps it did at that input density (its per-row and per-block
overhead included); "marginal" is the slope between two densities. Whole networks: the demo's
shapes (or the demo's own models with --demo DIR), a Fashion-MNIST-sized 784-256-10 network,
beside CMSIS-NN's arm_fully_connected_s8 measured on the same emulator (profile/ann.py).
Estimated Cortex-M4 cycles (profile/cycles.py) are added for the whole networks.

The fixed cost is split in two: the engine inside a layer's step (per layer and step), and
what runs between layer steps and around the inference (cycle reads, decoding, reset, the
input check; per step).

Usage: python bench/firmware.py [--json] [--quick] [--demo DIR ...]
"""
from __future__ import annotations

import argparse
import bisect
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgespike import paths
from edgespike.model import Layer, Model, Neurons, Weights, load
from edgespike.profile.ann import CMSIS_NN_MEASURED, ann_baseline
from edgespike.sim import elf, trace

ES_A_IN_LIMIT = 1 << 17
#: Targets of issue 11, for the table (instructions on the emulated M4, DSP kernels).
TARGETS = {
    "int8 spikes 128x128": 1.2, "int8 spikes 512x512": 1.1,
    "ternary spikes 128x128": 1.8, "ternary spikes 512x512": 1.8,
    "int8 values": 2.5, "ternary values": 3.0,
    "update, common": 20.0, "update, per-neuron vth": 30.0, "fixed per layer-step": 200.0,
}


# --------------------------------------------------------------------------- attribution

def function_sources(image: Path) -> dict[str, str]:
    """Function name -> source file, from the image's linker map (``-Wl,-Map``)."""
    mapfile = image.with_suffix(".map")
    text = mapfile.read_text()
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*\.text\.(\S+)\s*\n?\s*0x[0-9a-f]+\s+0x[0-9a-f]+\s+(\S+)", text,
                         re.M):
        src = re.sub(r"\.obj\)?$|\.o\)?$", "", m.group(2).split("(")[-1].split("/")[-1])
        out[m.group(1)] = src
    return out


def part_of(source: str) -> str:
    if source.startswith("es_kernel"):
        return "kernels"
    if source == "es_lif.c":
        return "neuron update"
    return "fixed"


def instructions_by_part(run: trace.TracedRun) -> dict[str, float]:
    """Instructions per inference of each part: kernels, neuron update, fixed (the engine
    inside the layer steps), and "outside" (between layer steps and around the inference:
    cycle reads, decoding, reset, input checks). Without the per-layer split of the trace,
    "outside" is folded into "fixed"."""
    image = elf.load(run.image)
    starts = [f[0] for f in image.functions]
    sources = function_sources(run.image)
    parts: dict[str, float] = {"kernels": 0.0, "neuron update": 0.0, "fixed": 0.0,
                               "outside": 0.0}
    for tb in run.trace.tbs:
        i = bisect.bisect_right(starts, tb.vaddr & ~1) - 1
        name = image.functions[i][2] if i >= 0 else "?"
        part = part_of(sources.get(name, "?"))
        for b in range(len(tb.execs)):
            ran = sum(tb.reach(k, b) for k in range(tb.n))
            parts["outside" if b == 0 and run.layers_split and part == "fixed" else part] += ran
    return {k: v / max(1, run.trace.windows) for k, v in parts.items()}


# --------------------------------------------------------------------------- models

def layer(rng: np.random.Generator, fan_in: int, fan_out: int, encoding: str, bound: int = 1,
          neurons: Optional[Neurons] = None) -> Layer:
    if encoding == "int8":
        w = Weights(rng.integers(-128, 128, (fan_in, fan_out)).astype(np.int8))
    else:
        w = Weights(rng.integers(-1, 2, (fan_in, fan_out)).astype(np.int8), encoding="ternary",
                    a_pos=int(rng.integers(60, 128)), a_neg=int(rng.integers(60, 128)))
    w.exp = 16
    while w.worst_case_input(bound) >= ES_A_IN_LIMIT:
        w.exp -= 1
    return Layer(w, neurons or Neurons(du=4096, dv=410, vth=200))


def spikes_per_step(rng, n: int, timesteps: int, size: int, count: int) -> np.ndarray:
    x = np.zeros((n, timesteps, size), np.uint8)
    for b in range(n):
        for t in range(timesteps):
            x[b, t, rng.choice(size, count, replace=False)] = 1
    return x


# --------------------------------------------------------------------------- measurements

@dataclass
class KernelRow:
    kernels: str            # "default" (DSP) or "plain"
    what: str               # "int8 spikes 128x128", "ternary values 64x128", ...
    work: str               # "SynOp" or "MAC"
    density: float          # input spikes per step, or non-zero inputs per step
    units: float            # SynOps / MACs per inference
    kernel_instr: float
    per_unit: float
    marginal: float = float("nan")
    update_instr_per_update: float = float("nan")
    fixed_per_layer_step: float = float("nan")
    outside_per_step: float = float("nan")


@dataclass
class UpdateRow:
    kernels: str
    what: str
    instr_per_update: float


@dataclass
class NetworkRow:
    name: str
    weights: str
    source: str                  # "demo model" or "random weights, real inputs" ...
    instructions: float
    cycles_m4: float
    synops: float
    ann_instructions: float
    ann_source: str
    snn_over_ann: float
    parts: dict = field(default_factory=dict)


def measure(model: Model, x: np.ndarray, kernels: str) -> tuple[trace.TracedRun, dict]:
    run = trace.trace_batch(model, x, kernels=kernels)
    return run, instructions_by_part(run)


def kernel_rows(rng, kernels: str, quick: bool) -> tuple[list[KernelRow], list[UpdateRow]]:
    rows: list[KernelRow] = []
    ups: list[UpdateRow] = []
    T = 8 if quick else 16
    n = 2
    spike_cases = [(128, 128, (26, 52)), (512, 512, (26, 103)), (64, 10, (8, 16))]
    for enc in ("int8", "ternary"):
        for fan_in, fan_out, counts in spike_cases:
            model = Model(input_size=fan_in, timesteps=T,
                          layers=[layer(rng, fan_in, fan_out, enc)]).validate()
            got = []
            for c in counts:
                x = spikes_per_step(rng, n, T, fan_in, c)
                run, parts = measure(model, x, kernels)
                syn = float(np.mean([o.counters[0].synops for o in run.outputs]))
                got.append((c, syn, parts))
            for c, syn, parts in got:
                row = KernelRow(kernels, f"{enc} spikes {fan_in}x{fan_out}", "SynOp", c, syn,
                                parts["kernels"], parts["kernels"] / syn,
                                update_instr_per_update=parts["neuron update"] / (T * fan_out),
                                fixed_per_layer_step=parts["fixed"] / T,
                                outside_per_step=parts["outside"] / T)
                (c0, s0, p0), (c1, s1, p1) = got
                row.marginal = (p1["kernels"] - p0["kernels"]) / (s1 - s0)
                rows.append(row)
        for fan_in, fan_out in ((6, 64), (64, 128), (784, 256)):
            model = Model(input_size=fan_in, timesteps=T, input_kind="values", input_max_abs=127,
                          layers=[layer(rng, fan_in, fan_out, enc, bound=127)]).validate()
            x = rng.integers(1, 128, (n, T, fan_in)) * rng.choice([-1, 1], (n, T, fan_in))
            run, parts = measure(model, x.astype(np.int32), kernels)
            macs = float(fan_in * fan_out * T)
            rows.append(KernelRow(kernels, f"{enc} values {fan_in}x{fan_out}", "MAC", fan_in,
                                  macs, parts["kernels"], parts["kernels"] / macs,
                                  update_instr_per_update=parts["neuron update"] / (T * fan_out),
                                  fixed_per_layer_step=parts["fixed"] / T,
                                  outside_per_step=parts["outside"] / T))
    # the neuron update on its own shapes: 128 neurons fed 26 spikes per step
    x = spikes_per_step(rng, n, T, 128, 26)
    configs = {
        "common (du 4096, per-layer vth)": Neurons(du=4096, dv=410, vth=200),
        "per-neuron vth": Neurons(du=4096, dv=410, vth=rng.integers(100, 300, 128)),
        "current decay (du 1024)": Neurons(du=1024, dv=410, vth=200),
        "general (refractory, adaptive)": Neurons(du=4096, dv=410, vth=200, refractory=2,
                                                  adapt_step=10, adapt_decay=200),
    }
    for what, nrn in configs.items():
        model = Model(input_size=128, timesteps=T,
                      layers=[layer(rng, 128, 128, "int8", neurons=nrn)]).validate()
        _, parts = measure(model, x, kernels)
        ups.append(UpdateRow(kernels, what, parts["neuron update"] / (T * 128)))
    # the fixed cost alone: two layers fed nothing (a bias keeps them from being skipped)
    nrn = Neurons(du=4096, dv=410, vth=200, bias_mant=1)
    model = Model(input_size=16, timesteps=T, layers=[
        layer(rng, 16, 16, "int8", neurons=nrn), layer(rng, 16, 16, "int8", neurons=nrn)]
                  ).validate()
    _, parts = measure(model, np.zeros((n, T, 16), np.uint8), kernels)
    rows.append(KernelRow(kernels, "no input, 2 layers", "-", 0, 0, 0, float("nan"),
                          update_instr_per_update=parts["neuron update"] / (T * 32),
                          fixed_per_layer_step=parts["fixed"] / (2 * T),
                          outside_per_step=parts["outside"] / T))
    return rows, ups


# --------------------------------------------------------------------------- networks

def demo_like(rng, name: str, enc: str) -> tuple[Model, np.ndarray, str]:
    """The demo's network shapes and neuron settings with random weights, driven by the real
    dataset where it is installed (else random inputs)."""
    nrn = lambda size: Neurons(du=4096, dv=410, vth=rng.integers(10, 60, size))  # noqa: E731
    if name == "basic_motions":
        try:
            from edgespike.data import load_dataset
            d = load_dataset("basic_motions")
            xs = np.asarray(d.x_test, float)[:4]
            x = np.clip(np.round(xs / np.abs(xs).max() * 127), -127, 127).astype(np.int32)
            src = "random weights, BasicMotions test inputs"
        except Exception:  # dataset missing: random series
            x = rng.integers(-127, 128, (4, 100, 6)).astype(np.int32)
            src = "random weights and inputs"
        model = Model(input_size=6, timesteps=x.shape[1], input_kind="values", input_max_abs=127,
                      decoding="membrane_sum",
                      layers=[layer(rng, 6, 64, enc, 127, nrn(64)),
                              layer(rng, 64, 4, enc, 1, Neurons(du=4096, dv=410, vth=30))])
        return model.validate(), x, src
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
            img = load_digits().data[:4] / 16.0
            src = "random weights, digits test images"
        except Exception:
            img = rng.random((4, 64))
            src = "random weights and images"
        x = np.repeat(np.round(img * 127).astype(np.int32)[:, None], 8, axis=1)
        model = Model(input_size=64, timesteps=8, input_kind="values", input_max_abs=127,
                      decoding="membrane_sum",
                      layers=[layer(rng, 64, 128, enc, 127, nrn(128)),
                              layer(rng, 128, 10, enc, 1, Neurons(du=4096, dv=410, vth=30))])
        return model.validate(), x, src
    # Fashion-MNIST sized: 784-256-10, 8 steps, a still image
    f = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    try:
        import gzip
        raw = np.frombuffer(gzip.open(f).read(), np.uint8, 4 * 784, 16).reshape(4, 784)
        src = "random weights, Fashion-MNIST test images"
    except OSError:
        raw = rng.integers(0, 256, (4, 784)).astype(np.uint8)
        src = "random weights and images"
    x = np.repeat((raw // 2).astype(np.int32)[:, None], 8, axis=1)
    model = Model(input_size=784, timesteps=8, input_kind="values", input_max_abs=127,
                  decoding="membrane_sum",
                  layers=[layer(rng, 784, 256, enc, 127, nrn(256)),
                          layer(rng, 256, 10, enc, 1, Neurons(du=4096, dv=410, vth=30))])
    return model.validate(), x, src


def network_row(name: str, enc: str, model: Model, x: np.ndarray, source: str) -> NetworkRow:
    from edgespike.profile.estimate import core_estimate

    run = trace.trace_batch(model, x)
    parts = instructions_by_part(run)
    instr = float(np.mean([o.cycles for o in run.outputs]))
    est, _, _ = core_estimate(run, "cortex-m4")
    ann = ann_baseline(model, x)
    synops = float(np.mean([sum(c.synops for c in o.counters) for o in run.outputs]))
    return NetworkRow(name, enc, source, instr, est.cycles.central, synops, ann.instructions,
                      ann.source.rsplit("; ", 1)[-1], instr / ann.instructions,
                      {k: round(v) for k, v in parts.items()})


def networks(rng, demo_dirs: list[Path], quick: bool) -> list[NetworkRow]:
    rows: list[NetworkRow] = []
    for d in demo_dirs:
        for blob in sorted(d.glob("*.esm")):
            data = np.load(blob.with_name(blob.stem + "-test.npz"))
            x = data["inputs"][:4]
            rows.append(network_row(blob.stem, load(blob).layers[0].weights.encoding,
                                    load(blob), x, f"demo model ({d})"))
    for name in ("basic_motions", "digits", "fashion-784-256-10"):
        if quick and name == "fashion-784-256-10":
            continue
        for enc in ("int8", "ternary"):
            model, x, src = demo_like(rng, name, enc)
            rows.append(network_row(name, enc, model, x, src))
    return rows


def elf_sizes() -> dict[str, dict[str, int]]:
    tool = shutil.which("arm-none-eabi-size")
    out: dict[str, dict[str, int]] = {}
    if tool is None:
        return out
    for name, path in (("link firmware", paths.firmware_image()),
                       ("runner", paths.runner_image())):
        lines = subprocess.run([tool, str(path)], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        text, data, bss = (int(v) for v in lines[1].split()[:3])
        out[name] = {"flash_bytes": text + data, "ram_bytes": data + bss, "text": text,
                     "data": data, "bss": bss}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    ap.add_argument("--quick", action="store_true", help="fewer steps, no Fashion-MNIST network")
    ap.add_argument("--demo", type=Path, action="append", default=[], metavar="DIR",
                    help="also measure the models of an `edgespike demo` output folder")
    args = ap.parse_args()
    why = trace.available()
    if why:
        print(f"bench/firmware.py needs the block-trace plugin: {why}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    krows: list[KernelRow] = []
    urows: list[UpdateRow] = []
    for kernels in ("default", "plain"):
        k, u = kernel_rows(rng, kernels, args.quick)
        krows += k
        urows += u
        print(f"measured the {kernels} kernels", file=sys.stderr)
    nrows = networks(rng, args.demo, args.quick)
    sizes = elf_sizes()
    result = {"kernels": [asdict(r) for r in krows], "updates": [asdict(r) for r in urows],
              "networks": [asdict(r) for r in nrows], "sizes": sizes,
              "cmsis_nn_measured": {"-".join(map(str, k)): v for k, v in CMSIS_NN_MEASURED.items()},
              "targets": TARGETS}
    if args.json:
        print(json.dumps(result))
        return 0
    print("The C core on the emulated Cortex-M4 (QEMU mps2-an386, -icount): instructions, exact")
    print()
    hdr = (f"{'kernels':>8} {'layer':>26} {'input/step':>10} {'instr/unit':>11} {'marginal':>9} "
           f"{'instr/update':>12} {'fixed/layer-step':>16} {'outside/step':>12}")
    print(hdr)
    print("-" * len(hdr))
    for r in krows:
        print(f"{r.kernels:>8} {r.what:>26} {r.density:>10g} {r.per_unit:>7.2f}/{r.work:<3} "
              f"{r.marginal:>9.2f} {r.update_instr_per_update:>12.1f} "
              f"{r.fixed_per_layer_step:>16.0f} {r.outside_per_step:>12.0f}")
    print("fixed/layer-step: the engine inside a layer's step (counters, dispatch, the quiet "
          "check); outside/step: between layer steps and around the inference (cycle reads, "
          "decoding, reset, input check), per step")
    print()
    print(f"{'kernels':>8} {'neuron update':>34} {'instr/update':>12}")
    for u in urows:
        print(f"{u.kernels:>8} {u.what:>34} {u.instr_per_update:>12.1f}")
    print()
    hdr = (f"{'network':>20} {'weights':>7} {'instr/inference':>15} {'est. M4 cycles':>14} "
           f"{'CMSIS-NN instr':>14} {'SNN/ANN':>7}  source")
    print(hdr)
    print("-" * len(hdr))
    for r in nrows:
        print(f"{r.name:>20} {r.weights:>7} {r.instructions:>15,.0f} {r.cycles_m4:>14,.0f} "
              f"{r.ann_instructions:>14,.0f} {r.snn_over_ann:>7.2f}  {r.source}; ANN {r.ann_source}")
    print()
    print("CMSIS-NN arm_fully_connected_s8, DSP path, -O2, measured on the same emulator "
          "(instructions per pass): " + ", ".join(f"{'-'.join(map(str, k))} {v:,}"
                                                  for k, v in CMSIS_NN_MEASURED.items()))
    for name, s in sizes.items():
        print(f"{name:>14}: flash {s['flash_bytes']:,} bytes, static RAM {s['ram_bytes']:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
