"""``edgespike run MODEL INPUT``: inference on a device or a host back-end."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgespike.commands._common import (
    DEVICE_HELP, HelpFormatter, add_device_options, add_json_option, emit, load_inputs,
    open_device_from_args, progress_printer, table,
)
from edgespike.errors import BlobError, EdgeSpikeError, InputError, ModelError
from edgespike.model import Model, load
from edgespike.sim.checks import as_int64
from edgespike.sim.reference import check_input

BACKEND_CHOICES = ("device", "batch", "reference", "core", "lava", "pynn")

DESCRIPTION = """\
Run a quantized model on inputs and print the predictions and what they cost (spikes, SynOps,
cycles per layer).

INPUT is a .npy file holding one input (timesteps, input_size) or a batch
(n, timesteps, input_size) of integers (0/1 spikes, or values for direct-encoding models), or
an .npz file with an array 'inputs' and optionally 'labels' (then the accuracy is printed).

Where it runs (--backend):
  device     a board: --port or --board (the default when either is given); the model is
             uploaded first unless the board already holds it
  batch      the batched exact simulator: whole batches and all steps through one exact
             matrix product per layer (default without a device; fastest on the host)
  reference  the numpy integer reference, the executable spec (slow; the readable definition)
  core       the C core on this machine through ctypes (needs bash firmware/build.sh)
  lava       Lava's bit-accurate Loihi 2 models (needs the Lava environment)
  pynn       a PyNN simulator (needs pyNN and a simulator such as NEST)
All of them must give identical integer results; a difference is a bug.

""" + DEVICE_HELP

EPILOG = """\
examples:
  edgespike run model.bin test.npz                          # batched simulator, with accuracy
  edgespike run model.bin one.npy --board mps2-an386        # on the emulated Cortex-M4
  edgespike run model.bin test.npz --port socket://127.0.0.1:5555 --limit 20 --json
  edgespike run model.bin test.npz --backend core
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` verb."""
    p = sub.add_parser("run", help="run a model on inputs (device or host back-end)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("model", metavar="MODEL", help="model blob (.bin)")
    p.add_argument("input", metavar="INPUT", help=".npy input(s) or .npz with inputs/labels")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default=None,
                   help="where to run (default: device with --port/--board, else batch)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="run only the first N inputs")
    p.add_argument("--record-spikes", action="store_true",
                   help="(device) also return the output layer's spikes; --json prints them")
    add_device_options(p)
    add_json_option(p)
    p.set_defaults(func=main)


def _counters(out: Any) -> list[dict[str, int]]:
    return [{"input_events": c.input_events, "synops": int(c.synops),
             "neuron_updates": c.neuron_updates, "spikes": c.spikes, "cycles": int(c.cycles)}
            for c in out.counters]


def load_model(path: str | Path) -> Model:
    """The model blob at ``path``; :class:`BlobError` (one line, no traceback) for a missing or
    unreadable file and for any blob the loader cannot take."""
    p = Path(path)
    if not p.is_file():
        raise BlobError(f"model file {p} not found (give a model blob written by "
                        "'edgespike quantize' or edgespike.model.save)")
    try:
        return load(p)
    except ModelError as exc:
        raise BlobError(f"{p}: {exc}") from exc
    except EdgeSpikeError:
        raise
    except Exception as exc:  # an unreadable file or a blob the parser chokes on
        raise BlobError(f"{p}: not a usable EdgeSpike model blob ({type(exc).__name__}: "
                        f"{exc}); write it again with 'edgespike quantize'") from exc


def check_inputs(model: Model, inputs: np.ndarray, labels: Optional[np.ndarray], input_path: str,
                 model_path: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Every input and label checked before anything runs (and before a device is opened):
    exact integers in the model's range (:func:`edgespike.sim.reference.check_input`), labels
    exact ints in ``0..output_size - 1``. Messages name the file."""
    if inputs.shape[1:] != (model.timesteps, model.input_size):
        raise InputError(f"{input_path}: inputs are {inputs.shape[1:]} per item; {model_path} "
                         f"takes (timesteps, input_size) = ({model.timesteps}, {model.input_size})")
    try:
        inputs = check_input(model, inputs)
        if labels is not None:
            labels = as_int64(labels, what="label", lo=0, hi=model.output_size - 1,
                              rule=f"{model_path} has {model.output_size} outputs (classes "
                                   f"0..{model.output_size - 1})",
                              float_hint="labels are class indices")
    except InputError as exc:
        raise InputError(f"{input_path}: {exc}") from exc
    except ModelError as exc:
        raise ModelError(f"{model_path}: {exc}") from exc
    return inputs, labels


def main(args: argparse.Namespace) -> int:
    """Load model and inputs, run them on the chosen back-end, report."""
    model = load_model(args.model)
    inputs, labels = load_inputs(args.input)
    if args.limit is not None:
        if args.limit < 0:
            raise InputError(f"--limit {args.limit}: give a number of inputs >= 0")
        inputs = inputs[: args.limit]
        labels = labels[: args.limit] if labels is not None else None
    inputs, labels = check_inputs(model, inputs, labels, args.input, args.model)
    backend = args.backend or ("device" if (args.port or args.board) else "batch")
    if backend != "device" and (args.port or args.board):
        raise InputError(f"--port/--board need --backend device (got --backend {backend})")
    t0 = time.perf_counter()
    board = None
    if backend == "device":
        from edgespike.backends import DeviceBackend

        with open_device_from_args(args) as dev:
            board = dev.hello().board
            runner = DeviceBackend(dev, progress=progress_printer("run", not args.json),
                                   record_spikes=args.record_spikes)
            outputs = runner.run_batch(model, inputs)
    else:
        from edgespike.backends import get_backend

        outputs = get_backend(backend).run_batch(model, inputs)
    seconds = time.perf_counter() - t0

    preds = np.array([o.prediction for o in outputs], dtype=np.int64)
    accuracy = float((preds == labels).mean()) if labels is not None and len(preds) else None
    items = []
    for o in outputs:
        item: dict[str, Any] = {"prediction": o.prediction, "scores": [int(s) for s in o.scores],
                                "cycles": int(o.cycles), "cycle_source": o.cycle_source,
                                "layers": _counters(o)}
        if args.record_spikes and getattr(o, "output_events", None) is not None:
            item["output_spikes"] = [int(e) for e in o.output_events]
        items.append(item)
    obj = {"model": args.model, "input": args.input, "backend": backend, "board": board,
           "n": len(outputs), "accuracy": accuracy, "seconds": round(seconds, 4),
           "results": items}

    def human() -> None:
        where = f"{backend} ({board})" if board else backend
        print(f"{args.model} on {where}: {len(outputs)} input(s) in {seconds:.2f} s")
        if len(outputs) == 1:
            o = outputs[0]
            print(f"prediction {o.prediction}   scores {[int(s) for s in o.scores]}")
        else:
            head = ", ".join(str(int(p)) for p in preds[:20])
            print(f"predictions {head}{' ...' if len(preds) > 20 else ''}")
        if accuracy is not None:
            print(f"accuracy {accuracy:.4f} ({int((preds == labels).sum())}/{len(preds)})")
        n = len(outputs)
        src = outputs[0].cycle_source if outputs else "none"
        rows = []
        for li in range(len(model.layers)):
            cs = [o.counters[li] for o in outputs if li < len(o.counters)]
            if not cs:
                continue
            rows.append((model.layers[li].name or f"layer {li}",
                         f"{sum(c.input_events for c in cs) / n:.1f}",
                         f"{sum(int(c.synops) for c in cs) / n:.1f}",
                         f"{sum(c.spikes for c in cs) / n:.1f}",
                         f"{sum(int(c.cycles) for c in cs) / n:.0f}" if src != "none" else "-"))
        print("per inference (mean):")
        print(table(rows, ("layer", "input events", "synops", "spikes", "cycles")))
        if src != "none":
            print(f"cycles per inference: {np.mean([int(o.cycles) for o in outputs]):.0f} ({src})")

    emit(args, obj, human)
    return 0
