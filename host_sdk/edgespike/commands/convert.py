"""``edgespike convert``: between the model blob (.esm/.bin) and NIR (.nir)."""
from __future__ import annotations

import argparse
import zlib
from pathlib import Path

from edgespike.commands._common import HelpFormatter, add_json_option, emit, table
from edgespike.errors import ModelError

DESCRIPTION = """\
Convert a model between EdgeSpike's blob and NIR; the direction comes from the extensions.

  blob (.esm, .bin) -> NIR (.nir): weights as floats plus an integer sidecar in the graph's
      metadata; reading it back gives the same blob, byte for byte.
  NIR -> blob: a graph written by EdgeSpike is rebuilt exactly from its sidecar; a graph from
      snnTorch or Norse (Input, Affine/Linear, LIF/CubaLIF, Output) is quantized to int8.
      Give --dt (the exporter's step: snnTorch 1e-4 s, Norse 1e-3 s) and --timesteps.
"""

EPILOG = """\
examples:
  edgespike convert model.esm model.nir
  edgespike convert model.nir back.esm --json
  edgespike convert snntorch.nir digits.esm --dt 1e-4 --timesteps 16 --reset subtract
  edgespike convert norse.nir model.esm --dt 1e-3 --source norse
"""

BLOB_SUFFIXES = (".esm", ".bin")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``convert`` verb."""
    p = sub.add_parser("convert", help="convert a model between the blob (.esm) and NIR (.nir)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("input", type=Path, help="model to read (.esm/.bin or .nir)")
    p.add_argument("output", type=Path, help="file to write (.nir or .esm/.bin)")
    p.add_argument("--dt", type=float, default=None,
                   help="NIR without EdgeSpike sidecar: the exporter's time step in seconds")
    p.add_argument("--timesteps", type=int, default=16,
                   help="NIR without sidecar: steps per inference (default 16)")
    p.add_argument("--reset", choices=("zero", "subtract"), default="zero",
                   help="NIR without sidecar: reset mode (snnTorch default: subtract)")
    p.add_argument("--decoding", default="spike_count",
                   choices=("spike_count", "membrane_last", "membrane_sum", "first_spike"),
                   help="NIR without sidecar: output decoding (default spike_count)")
    p.add_argument("--source", choices=("nir", "norse"), default="nir",
                   help="NIR without sidecar: how to read time constants ('norse' for graphs "
                        "written by Norse 1.1, which stores dt * tau)")
    p.add_argument("--ignore-sidecar", action="store_true",
                   help="quantize the NIR float parameters even if an EdgeSpike sidecar exists")
    add_json_option(p)
    p.set_defaults(func=run)


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in BLOB_SUFFIXES:
        return "blob"
    if suffix == ".nir":
        return "nir"
    raise ModelError(f"cannot tell the format of {path} from its extension; use .esm/.bin for "
                     "the model blob or .nir for NIR")


def run(args: argparse.Namespace) -> int:
    """Read, convert, write, summarize."""
    from edgespike.model import load, save, to_bytes
    from edgespike.model import nir as enir

    src, dst = _kind(args.input), _kind(args.output)
    if src == dst:
        raise ModelError(f"{args.input} and {args.output} are both {src}: nothing to convert")
    if not args.input.exists():
        raise ModelError(f"input file not found: {args.input}")
    if src == "blob":
        model = load(args.input)
        enir.save_nir(model, args.output)
        exact = True
    else:
        model = enir.load_nir(args.input, use_sidecar=not args.ignore_sidecar, dt=args.dt,
                              timesteps=args.timesteps, reset=args.reset,
                              decoding=args.decoding, name=args.input.stem,
                              source=args.source)
        save(model, args.output)
        exact = _has_sidecar(args.input) and not args.ignore_sidecar
    blob = to_bytes(model)
    summary = {
        "input": str(args.input), "output": str(args.output), "direction": f"{src}->{dst}",
        "exact": exact, "name": model.name, "input_size": model.input_size,
        "layers": [layer.size for layer in model.layers], "timesteps": model.timesteps,
        "weight_bytes": model.weight_bytes(), "blob_bytes": len(blob),
        "blob_crc32": f"{zlib.crc32(blob) & 0xFFFFFFFF:08x}",
        "output_bytes": args.output.stat().st_size,
    }

    def human() -> None:
        print(table([(k, v) for k, v in summary.items()], ("field", "value")))

    emit(args, summary, human)
    return 0


def _has_sidecar(path: Path) -> bool:
    from edgespike.model import nir as enir

    graph = enir._nir().read(path)
    return enir.SIDECAR_KEY in (getattr(graph, "metadata", None) or {})
