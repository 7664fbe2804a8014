"""``edgespike parity``: one model on the reference, the C core and a device; agreement and cost."""
from __future__ import annotations

import argparse

from edgespike.commands._common import (
    DEVICE_HELP, HelpFormatter, add_device_options, add_json_option, emit, load_inputs,
    open_device_from_args, progress_printer, table,
)

DESCRIPTION = """\
Deploy a model to a device, run inputs on it, on the C core and on the numpy reference, and
report whether all three agree (predictions, scores, per-layer counters, output spikes) and what
an inference costs on the device: instructions (QEMU) or cycles (DWT), SynOps, instructions per
SynOp, latency at the board's clock, model and state memory.

Without MODEL it builds the sample model: a spiking nearest-template classifier of the real 8x8
digits data set (scikit-learn), rate-coded over 16 steps, and runs --count test digits.

""" + DEVICE_HELP

EPILOG = """\
examples:
  edgespike parity --board mps2-an386                     # the sample, emulated Cortex-M4
  edgespike parity --board mps2-an386 --weights ternary --count 200
  edgespike parity model.esm inputs.npz --port socket://127.0.0.1:5555 --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``parity`` verb."""
    p = sub.add_parser("parity", help="check device == C core == reference, and report the cost",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("model", nargs="?", help="model blob (default: the digits sample)")
    p.add_argument("inputs", nargs="?", help=".npy / .npz inputs (needed with MODEL)")
    p.add_argument("--weights", choices=("int8", "ternary"), default="int8",
                   help="weight encoding of the sample model (default int8)")
    p.add_argument("--count", type=int, default=100, metavar="N",
                   help="inputs to run (default 100; the sample has 899)")
    p.add_argument("--host-sim", choices=("batch", "reference"), default="batch",
                   help="exact host simulator for the reference results: the batched "
                        "simulator (default, fastest) or the numpy reference itself")
    add_device_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Deploy, run, compare, print; exit status 1 when any implementation disagrees."""
    from edgespike import parity
    from edgespike.errors import InputError
    from edgespike.model import load

    if args.model:
        if not args.inputs:
            raise InputError("give INPUTS (.npy or .npz) with MODEL")
        model = load(args.model)
        inputs, labels = load_inputs(args.inputs)
    else:
        from edgespike.model.samples import digits_templates

        sample = digits_templates(weights=args.weights)
        model, inputs, labels = sample.model, sample.inputs, sample.labels
    inputs = inputs[: args.count]
    labels = labels[: args.count] if labels is not None else None
    with open_device_from_args(args) as dev:
        report = parity.check(model, inputs, dev, labels, host_sim=args.host_sim,
                              progress=progress_printer("running on the device", not args.json))

    def human() -> None:
        r = report
        yes = {True: "yes", False: "NO", None: "not built"}
        print(f"EdgeSpike parity and cost: {r.model} on {r.board} ({r.core}, "
              f"{r.clock_hz / 1e6:.0f} MHz), {r.inputs} inputs\n")
        rows = [
            ("device == numpy reference", yes[r.agree_device_reference]),
            ("host C core == numpy reference", yes[r.agree_core_reference]),
            ("reference results computed by", f"host simulator '{r.host_sim}'"),
        ]
        if r.accuracy_reference is not None:
            rows += [("accuracy, reference", f"{r.accuracy_reference:.2%}"),
                     ("accuracy, device", f"{r.accuracy_device:.2%}")]
        unit = {"qemu_icount": "instructions", "dwt": "cycles"}.get(r.cycle_source, r.cycle_source)
        rows += [
            ("model blob", f"{r.blob_bytes} bytes ({r.weight_bytes} of weights)"),
            ("neuron state on device", f"{r.state_bytes} bytes"),
            ("upload time", f"{r.upload_s * 1e3:.0f} ms"),
            (f"{unit} per inference", f"{r.cycles_per_inference:,.0f} ({r.cycle_source})"),
            ("SynOps per inference", f"{r.synops_per_inference:,.1f}"),
        ]
        if r.cycles_per_synop is not None:
            rows.append((f"{unit} per SynOp (whole inference)", f"{r.cycles_per_synop:.1f}"))
        if r.latency_ms is not None:
            rows.append((f"latency at {r.clock_hz / 1e6:.0f} MHz", f"{r.latency_ms:.3f} ms"))
        print(table(rows, ("check", "result")))
        print()
        print(table([(p["layer"], p["kind"], p["weights"], p["size"], f"{p['input_events']:.1f}",
                      f"{p['synops']:.1f}", f"{p['spikes']:.1f}", f"{p['cycles']:,.0f}")
                     for p in r.per_layer],
                    ("layer", "kind", "weights", "size", "events", "SynOps", "spikes", unit)))
        for m in r.mismatches:
            print("MISMATCH", m)

    emit(args, report.as_dict(), human)
    ok = report.agree_device_reference and report.agree_core_reference is not False
    return 0 if ok else 1
