"""``edgespike profile``: counters to time, memory and energy for any model on any device."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgespike.commands._common import (
    DEVICE_HELP, HelpFormatter, add_device_options, add_json_option, emit, load_inputs,
    open_device_from_args, progress_printer,
)

DESCRIPTION = """\
Deploy a model blob to a device, run inputs on it and on the host simulator, and report per
layer and in total: input events, SynOps, neuron updates, spikes, cycles (DWT on a real core,
instructions under QEMU -icount on the emulated one), latency at the board's clock, the flash
and RAM the model and firmware take, estimated cycles per core with their range (the
inputs traced on the emulated board and priced by the Cortex-M0/M4/M33/M7 cycle models of
docs/profile.md: instruction counts are exact, cycles are estimates, and the report says
which figure is which), and the energy per inference for every target model, from cycles:
Cortex-M4/M7 from datasheet current per MHz (STM32L4, STM32H7, nRF52840), Loihi 2 and
SpiNNaker 2 from energy per SynOp / neuron update, the 45 nm per-operation model (Horowitz,
ISSCC 2014); plus the same network as an int8 ANN (MACs, CMSIS-NN-class cost) and the SNN/ANN
energy ratio. docs/profile.md cites every figure.

--backend lava|pynn|core|reference|batch takes the SynOp / neuron-update / spike counts for the
neuromorphic and per-op targets from a run on that back-end (counts derived from its spike
rasters, by the rules of docs/SEMANTICS.md, when it returns none; the report says so).

The device's results are checked against an exact host simulator: --host-sim batch (the
default: the batched simulator, fastest), reference (the numpy reference) or core (the C core
on the host); all three are bit-identical.

""" + DEVICE_HELP

EPILOG = """\
examples:
  edgespike profile model.esm inputs.npz --board mps2-an386
  edgespike profile model.esm inputs.npz --port /dev/ttyACM0 --json
  edgespike profile model.esm inputs.npz --board mps2-an386 --backend lava --plot plots/
  edgespike profile model.esm --board mps2-an386 --random 20 --rate 0.1
  edgespike profile model.esm inputs.npz --board mps2-an386 --targets my_board.toml
  edgespike profile model.esm inputs.npz --board mps2-an386 --hotspots 15
  edgespike profile model.esm inputs.npz --board mps2-an386 --cores cortex-m4 cortex-m0
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``profile`` verb."""
    p = sub.add_parser("profile", help="counters, latency, memory and energy per inference",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("model", help="model blob (.esm)")
    p.add_argument("inputs", nargs="?", help=".npy / .npz integer inputs (with optional labels)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="profile only the first N inputs (default all)")
    p.add_argument("--random", type=int, default=0, metavar="N",
                   help="without INPUTS: N random inputs (spikes at --rate, or uniform values)")
    p.add_argument("--rate", type=float, default=0.1, help="spike probability per step and "
                   "input for --random (default 0.1)")
    p.add_argument("--host-sim", choices=("batch", "reference", "core"), default="batch",
                   help="exact host simulator for the expected results (default batch)")
    p.add_argument("--backend", choices=("batch", "reference", "core", "lava", "pynn"),
                   help="counter source for the neuromorphic / per-op targets (default: the "
                   "device's own counters)")
    p.add_argument("--targets", type=Path, metavar="TOML",
                   help="extra energy targets (TOML tables, same form as the built-in table)")
    p.add_argument("--only", nargs="+", metavar="TARGET", help="report only these targets")
    p.add_argument("--ann-passes", type=int, metavar="N",
                   help="forward passes of the ANN baseline per inference (default: 1 for inputs "
                   "constant over time, else one per time step)")
    p.add_argument("--hotspots", type=int, nargs="?", const=10, default=0, metavar="N",
                   help="list the N most expensive code blocks (estimated cycles) with their "
                   "functions (default N: 10)")
    p.add_argument("--cores", nargs="+", metavar="CORE",
                   help="estimate cycles for these cores (cortex-m0, cortex-m4, cortex-m33, "
                   "cortex-m7; default: the device's, the targets' and all four)")
    p.add_argument("--no-cycles", action="store_true",
                   help="skip the cycle estimate (MCU targets are then priced in the device's "
                   "unit: instructions under QEMU, a lower bound)")
    p.add_argument("--plot", type=Path, metavar="DIR",
                   help="write raster.png and energy_per_layer.png into DIR")
    add_device_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def _random_inputs(model, n: int, rate: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, model.timesteps, model.input_size)
    if model.input_kind == "spikes":
        return (rng.random(shape) < rate).astype(np.int64)
    return rng.integers(-model.input_max_abs, model.input_max_abs + 1, shape)


def run(args: argparse.Namespace) -> int:
    """Profile; exit 1 when the device disagrees with the (exact) host simulator."""
    from edgespike.errors import InputError
    from edgespike.model import load
    from edgespike.profile import format_report, load_targets, profile_device

    model = load(args.model)
    labels = None
    if args.inputs:
        inputs, labels = load_inputs(args.inputs)
    elif args.random > 0:
        inputs = _random_inputs(model, args.random, args.rate)
    else:
        raise InputError("give INPUTS (.npy / .npz) or --random N")
    if args.count:
        inputs = inputs[: args.count]
        labels = labels[: args.count] if labels is not None else None
    targets = load_targets(args.targets)
    if args.only:
        missing = [t for t in args.only if t not in targets]
        if missing:
            raise InputError(f"unknown target(s) {', '.join(missing)}; known: {', '.join(targets)}")
        targets = {k: v for k, v in targets.items() if k in args.only}
    if args.cores:
        from edgespike.profile.cycles import CORES

        bad = [c for c in args.cores if c not in CORES]
        if bad:
            raise InputError(f"no cycle model for {', '.join(bad)}; models: {', '.join(CORES)}")
    with open_device_from_args(args) as dev:
        report, _, ref = profile_device(
            model, inputs, dev, targets, labels=labels, backend=args.backend,
            ann_passes=args.ann_passes, host_sim=args.host_sim,
            progress=progress_printer("running on the device", not args.json),
            cycles=not args.no_cycles, cores=args.cores, hotspots=max(args.hotspots, 10))
    if not args.inputs:
        report.notes.append(f"inputs are {args.random} random inputs (not data)")
    if args.plot:
        from edgespike.profile.plots import report_plots

        made = report_plots(report, args.plot, inputs[0], ref[0].spikes, model.input_kind)
        report.notes.append("plots: " + ", ".join(str(p) for p in made))
    emit(args, report.as_dict(), lambda: print(format_report(report, hotspots=args.hotspots)))
    ok = report.predictions_equal and report.counters_vs_reference.equal
    return 0 if ok else 1
