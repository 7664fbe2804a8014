"""``edgespike stream MODEL --source ...``: live streaming to a device (docs/streaming.md)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any


from edgespike.commands._common import (
    DEVICE_HELP, HelpFormatter, add_device_options, load_inputs, open_device_from_args,
)
from edgespike.errors import InputError
from edgespike.model import load

DESCRIPTION = """\
Stream inputs through a model on a device, one time step per tick of the model's dt, and show
the decisions live: the current decision, events per second and event-to-decision latency.
The model is uploaded first unless the device already holds it.

--source is one of:
  FILE.npy / FILE.npz     a recorded dataset (n, timesteps, width) or (steps, width) of
                          integers, replayed at --speed x real time (the model's dt_us per step)
  serial:URL[@BAUD]       a sensor printing one step of integers per line (e.g.
                          serial:/dev/ttyUSB0@115200, serial:socket://127.0.0.1:7000)
  -                       lines of integers on stdin, one step per line

Raw integer sensor samples (--raw) are delta-encoded on the device with the model's encoder
thresholds (or --thresholds). Decisions are per-window (the state restarts every window) or
sliding (--hop smaller than --window); the model's stream_window/stream_hop are the default.

""" + DEVICE_HELP

EPILOG = """\
examples:
  edgespike stream model.bin --source test.npz --board mps2-an386 --speed 10x
  edgespike stream model.bin --source test.npy --port socket://127.0.0.1:5555 --speed max --json
  edgespike stream model.bin --source serial:/dev/ttyUSB0 --raw --port /dev/ttyACM0
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``stream`` verb."""
    p = sub.add_parser("stream", help="stream inputs live through a model on a device",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("model", metavar="MODEL", help="model blob (.bin)")
    p.add_argument("--source", required=True, metavar="SRC",
                   help="FILE.npy/.npz (replay), serial:URL[@BAUD], or - (stdin)")
    p.add_argument("--speed", default="1x", metavar="Nx",
                   help="replay speed for files: 1x real time (default), 10x, 0.5x, or max "
                        "(as fast as the device takes it)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="files: stream only the first N samples")
    p.add_argument("--window", type=int, default=0, metavar="STEPS",
                   help="steps per decision (default: the model's stream_window or timesteps)")
    p.add_argument("--hop", type=int, default=0, metavar="STEPS",
                   help="steps between decisions (default: the model's, else = window)")
    p.add_argument("--raw", action="store_true",
                   help="the source gives raw integer samples; the device delta-encodes them")
    p.add_argument("--thresholds", default=None, metavar="T1,T2,...",
                   help="--raw: delta thresholds per channel (default: the model's encoder)")
    p.add_argument("--free-run", action="store_true",
                   help="the device runs each step as soon as it arrives (no pacing)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON line per decision, then one with the summary")
    add_device_options(p)
    p.set_defaults(func=main)


def _source(args: argparse.Namespace, model: Any):
    from edgespike.stream.sources import IterableSource, ReplaySource, SerialSensorSource, parse_line

    spec = args.source
    if spec.startswith("serial:"):
        url, _, baud = spec[len("serial:"):].partition("@")
        return SerialSensorSource(url, baudrate=int(baud or 115200), raw=args.raw)
    if spec == "-":
        rows = (r for r in (parse_line(line) for line in sys.stdin) if r is not None)
        return IterableSource(rows, raw=args.raw)
    x, _ = load_inputs(spec) if spec.endswith((".npz", ".npy")) else (None, None)
    if x is None:
        raise InputError(f"--source {spec!r}: give a .npy/.npz file, serial:URL or -")
    if args.limit is not None:
        x = x[: args.limit]
    return ReplaySource(x, model.dt_us / 1e6, args.speed, raw=args.raw)


def main(args: argparse.Namespace) -> int:
    """Open the device, deploy, stream, display."""
    from edgespike.stream.display import LiveDisplay, json_line, summary

    model = load(args.model)
    src = _source(args, model)
    thresholds = ([int(t) for t in args.thresholds.split(",")] if args.thresholds else None)
    with open_device_from_args(args) as dev:
        dev.hello()
        dev.deploy(model)
        session = dev.stream(src, window=args.window, hop=args.hop, thresholds=thresholds,
                             free_run=True if args.free_run else None)
        display = None if args.json else LiveDisplay(session.stats)
        if display is not None:
            speed = getattr(src, "speed", None)
            pace = "max speed" if speed is not None and math.isinf(speed) else (
                f"{speed:g}x real time" if speed is not None else "live")
            print(f"streaming {args.source} through {args.model} on "
                  f"{dev.device_info.board if dev.device_info else 'device'} ({pace})")
        try:
            for d in session:
                if display is not None:
                    display.update(d)
                else:
                    json_line(d)
        finally:
            if display is not None:
                display.close()
        st = session.stats
        if args.json:
            print(json.dumps({"summary": st.as_dict()}))
        else:
            print(summary(st))
    return 0
