"""``edgespike export``: a model blob as a C header, to compile into your own firmware."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgespike.commands._common import HelpFormatter, add_json_option, emit, load_inputs, table
from edgespike.errors import InputError, ModelError

DESCRIPTION = """\
Write a model blob (.esm/.bin, from 'edgespike quantize' or model.save) as a C header for your
own firmware: the blob's bytes as an 8-byte aligned const array (it stays in flash and the
runtime reads it in place, no copy), its size, its content hash and CRC-32, the RAM the
runtime will ask for (es_engine_arena_bytes), its input and output sizes and labels, and,
with --input, one input to classify.

Names come from the header's file name (model.h: model_data, MODEL_SIZE, MODEL_ARENA_BYTES,
model_labels, model_input_events / model_input_values) or --symbol. Build it with the runtime
library (firmware/core: add_subdirectory or find_package(edgespike)); a complete application is
firmware/examples/hello_spikes (README, "Embed the runtime").
"""

EPILOG = """\
examples:
  edgespike export digits.esm --c model.h
  edgespike export digits.esm --c model.h --input test.npz --index 3   # + one test input
  edgespike export kws.esm --c kws_model.h --symbol kws --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` verb."""
    p = sub.add_parser("export", help="write a model blob as a C header (aligned const array) "
                                      "for your own firmware",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("model", type=Path, help="model blob (.esm or .bin)")
    p.add_argument("--c", dest="c_header", type=Path, required=True, metavar="HEADER",
                   help="the C header to write (e.g. model.h)")
    p.add_argument("--symbol", default=None,
                   help="C name prefix (default: the header's file name)")
    p.add_argument("--input", type=Path, default=None, metavar="NPY",
                   help="also compile in one input: .npy (timesteps, input_size) or a batch, "
                        "or .npz with 'inputs' (and 'labels')")
    p.add_argument("--index", type=int, default=0,
                   help="which input of a batch (default 0)")
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the blob, write the header, summarize."""
    from edgespike.model.c_array import write_c_header

    if not args.model.is_file():
        raise ModelError(f"model file {args.model} not found")
    blob = args.model.read_bytes()
    x = label = None
    if args.input is not None:
        inputs, labels = load_inputs(args.input)
        if not 0 <= args.index < len(inputs):
            raise InputError(f"{args.input} holds {len(inputs)} input(s); --index {args.index} "
                             f"is not one of 0..{len(inputs) - 1}")
        x = inputs[args.index]
        label = int(labels[args.index]) if labels is not None else None
    header = write_c_header(blob, args.c_header, symbol=args.symbol, x=x, label=label,
                            source=args.model.name)
    d = header.as_dict()

    def human() -> None:
        rows = [(k, f"{v:#010x}" if k.endswith("crc32") else v) for k, v in d.items()
                if v is not None]
        print(table(rows, ("field", "value")))

    emit(args, d, human)
    return 0
