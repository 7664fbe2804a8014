"""Options and helpers shared by the device verbs (info, deploy, run, emulator)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from edgespike.errors import InputError

BOARD_CHOICES = ("mps2-an386", "netduinoplus2", "host")

DEVICE_HELP = """\
Which device:
  --port PORT     a board on a serial port (/dev/ttyACM0, COM3) or a running emulator
                  (socket://127.0.0.1:PORT, as printed by 'edgespike emulator start')
  --board BOARD   start a board just for this command: mps2-an386 (QEMU, Cortex-M4),
                  netduinoplus2 (QEMU, STM32F405 running the stm32f4 port) or host (the
                  firmware's link compiled for this machine); it stops afterwards
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-written line breaks of descriptions and epilogs (examples)."""


def add_device_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """--port / --board / --timeout."""
    group = parser.add_argument_group("device")
    g = group.add_mutually_exclusive_group(required=required)
    g.add_argument("--port", metavar="PORT",
                   help="serial port or socket://HOST:PORT of a board or running emulator")
    g.add_argument("--board", choices=BOARD_CHOICES,
                   help="start this board for the command (QEMU mps2-an386 or netduinoplus2, or host)")
    group.add_argument("--timeout", type=float, default=10.0, metavar="S",
                       help="seconds to wait for each answer from the device (default 10)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """--json: one JSON object on stdout instead of the human table."""
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout (for scripts) instead of a table")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """--threads: CPU threads for torch (the small SNNs here train fastest on one)."""
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: small SNNs run fastest on one)")


def open_device_from_args(args: argparse.Namespace):
    """A connected :class:`~edgespike.device.Device` for --port or --board (default board)."""
    from edgespike.device import open_device

    return open_device(port=args.port, board=args.board, timeout=args.timeout)


def jsonable(obj: Any) -> Any:
    """Numpy scalars/arrays, dataclass-like objects and paths made JSON-ready."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return {k: jsonable(getattr(obj, k)) for k in obj.__dataclass_fields__}
    return obj


def emit(args: argparse.Namespace, obj: dict[str, Any], human: Callable[[], None]) -> None:
    """Print ``obj`` as one JSON line with --json, else call ``human()``."""
    if getattr(args, "json", False):
        print(json.dumps(jsonable(obj)))
    else:
        human()


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_inputs(path: str | Path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Read run inputs: ``.npy`` with one (timesteps, input_size) input or a batch
    (n, timesteps, input_size) of integers, or ``.npz`` with ``inputs`` and optional ``labels``.

    Returns ``(inputs as n x timesteps x input_size, labels or None)``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} not found")
    labels = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "inputs" not in z:
                    raise InputError(f"{path}: an .npz input needs an array named 'inputs' "
                                     f"(found: {', '.join(z.files) or 'none'})")
                x = z["inputs"]
                labels = z["labels"] if "labels" in z else None
        else:
            x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a numpy .npy/.npz file ({exc})") from exc
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError(f"{path}: inputs of shape {x.shape}; expected (timesteps, input_size) "
                         "or (n, timesteps, input_size)")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(x):
            raise InputError(f"{path}: {len(labels)} labels for {len(x)} inputs")
    return x, labels


def state_dir() -> Path:
    """Where detached emulators leave their pid files and logs (``~/.cache/edgespike``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgespike"
    base.mkdir(parents=True, exist_ok=True)
    return base


def progress_printer(what: str, enabled: bool) -> Optional[Callable[[int, int], None]]:
    """A ``progress(done, total)`` that rewrites one stderr line, or None when disabled."""
    if not enabled or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\r{what}: {done}/{total}", end="\n" if done >= total else "", file=sys.stderr,
              flush=True)

    return show
