"""``edgespike info``: what a device is and what it can hold."""
from __future__ import annotations

import argparse

from edgespike.commands._common import (
    DEVICE_HELP, HelpFormatter, add_device_options, add_json_option, emit, open_device_from_args,
    table,
)

DESCRIPTION = """\
Ask a device who it is: firmware version, board and core, clock, cycle counter, how large a
model and its state may be, the link's limits, and the model it holds now.

""" + DEVICE_HELP

EPILOG = """\
examples:
  edgespike info --board mps2-an386          # boot the emulated Cortex-M4, ask, stop it
  edgespike info --port socket://127.0.0.1:5555 --json
  edgespike info --port /dev/ttyACM0
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` verb."""
    p = sub.add_parser("info", help="describe a device (firmware, limits, loaded model)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    add_device_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Connect, say hello, print the DeviceInfo."""
    with open_device_from_args(args) as dev:
        info = dev.hello()
        stats = dev.stats()
    d = info.as_dict()

    def human() -> None:
        rows = [(k, f"{v:08x}" if k == "model_crc32" else v) for k, v in d.items()]
        print(table(rows, ("field", "value")))

    emit(args, {"port": args.port or dev.transport.url, "info": d, "stats": stats.as_dict()},
         human)
    return 0
