"""The ``edgespike`` command line.

Each verb lives in its own module under :mod:`edgespike.commands` and exposes
``register(subparsers)``; this file only discovers and dispatches them, so adding a verb is
adding a file.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Sequence

import edgespike.commands
from edgespike.errors import EdgeSpikeError

log = logging.getLogger("edgespike")

DESCRIPTION = """\
EdgeSpike: spiking neural networks from training to a microcontroller, with the cost of
every inference.

The pipeline, one verb per step:
  train -> quantize -> deploy / run / profile on a device (real or emulated)

Onto your own board: 'edgespike firmware build --board B' and 'edgespike flash FW.elf', or
compile a model into your own firmware with 'edgespike export MODEL --c model.h'.

A device is named by --port (a serial port such as /dev/ttyACM0, or socket://HOST:PORT of a
running emulator) or --board mps2-an386 (start an emulated Cortex-M4 for this one command).
Run 'edgespike VERB --help' for the details of each verb.
"""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every verb found in :mod:`edgespike.commands`."""
    parser = argparse.ArgumentParser(
        prog="edgespike", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for info in sorted(pkgutil.iter_modules(edgespike.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"edgespike.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgespike`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeSpikeError as exc:
        print(f"edgespike {args.verb}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
