"""``edgespike demo``: train, quantize, deploy to the emulated Cortex-M4, run, profile."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgespike.commands._common import (
    BOARD_CHOICES, HelpFormatter, add_json_option, add_threads_option, emit, jsonable,
    progress_printer,
)

DESCRIPTION = """\
The whole pipeline on a bundled real dataset: train a small SNN (BPTT with surrogate
gradients), quantize it to int8 and to ternary weights (QAT), export the model blobs, start the
emulated Cortex-M4 (QEMU mps2-an386), deploy each model over the link, run the whole test set on
the device and on the numpy reference, and profile it: accuracy on host and device (they must
be equal), instructions/cycles, SynOps, latency, flash and RAM, energy per inference for each
target model (Cortex-M datasheets, Loihi 2, SpiNNaker 2, 45 nm per-op), and the same network
as an int8 ANN (CMSIS-NN class) with the SNN/ANN energy ratio.

Artefacts in --out: <dataset>-int8.esm, <dataset>-ternary.esm (model blobs),
<dataset>-<variant>-test.npz (integer test inputs and labels), report.json, raster.png, energy_per_layer_*.png,
accuracy_vs_energy.png. Datasets: basic_motions (default), digits, japanese_vowels, fsdd.
The full setting takes about a minute on 2 cores; --quick (what CI runs) well under a minute.
Exit status 1 if the device's accuracy differs from the host reference's.
"""

EPILOG = """\
examples:
  edgespike demo                                  # BasicMotions, full setting
  edgespike demo --dataset digits --out digits-demo
  edgespike demo --quick --json > report.json     # the CI setting, one JSON object
  edgespike demo --port socket://127.0.0.1:5555   # a running emulator or a real board
  edgespike demo --targets my_targets.toml        # add energy targets (see docs/profile.md)
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` verb."""
    from edgespike.demo import SETUPS

    p = sub.add_parser("demo", help="train, quantize, deploy to the emulated M4, run and profile",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("--dataset", choices=sorted(SETUPS), default="basic_motions",
                   help="bundled dataset (default basic_motions)")
    p.add_argument("--out", type=Path, default=Path("edgespike-demo"), metavar="DIR",
                   help="output folder for blobs, report.json and plots (default edgespike-demo/)")
    p.add_argument("--quick", action="store_true",
                   help="reduced setting for CI: fewer epochs (and samples for large sets)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, init and shuffling")
    p.add_argument("--targets", type=Path, metavar="TOML",
                   help="extra energy targets (TOML tables, same form as the built-in table)")
    add_threads_option(p)
    group = p.add_argument_group("device (default: start the emulated mps2-an386)")
    g = group.add_mutually_exclusive_group()
    g.add_argument("--port", metavar="PORT",
                   help="serial port or socket://HOST:PORT of a board or running emulator")
    g.add_argument("--board", choices=BOARD_CHOICES, help="board to start (default mps2-an386)")
    group.add_argument("--timeout", type=float, default=10.0, metavar="S",
                       help="seconds to wait for each answer from the device (default 10)")
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; print the report (or JSON); 1 if device and host accuracies differ."""
    from edgespike.demo import DemoConfig, format_full, run_demo

    show = not args.json

    def say(msg: str) -> None:
        if show:
            print(f"[demo] {msg}", file=sys.stderr, flush=True)

    cfg = DemoConfig(dataset=args.dataset, out=args.out, quick=args.quick, seed=args.seed,
                     port=args.port, board=args.board, timeout=args.timeout,
                     targets=args.targets, threads=args.threads,
                     progress=show and sys.stderr.isatty())
    result = run_demo(cfg, say, progress_printer("  running on the device", show))
    emit(args, jsonable(result.as_dict()), lambda: (print(format_full(result)),
                                                     print(f"\nartefacts in {args.out}/: "
                                                           + ", ".join(Path(a).name for a in result.artefacts))))
    return 0 if result.device_equals_host else 1
