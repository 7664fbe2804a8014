"""``edgespike deploy MODEL``: upload a model blob to a device."""
from __future__ import annotations

import argparse

from edgespike.commands._common import (
    DEVICE_HELP, HelpFormatter, add_device_options, add_json_option, emit, open_device_from_args,
    progress_printer,
)
from edgespike.model import load

DESCRIPTION = """\
Upload a quantized model (a .bin blob written by 'edgespike quantize' or edgespike.model.save)
to a device, in chunks the device acknowledges one by one. The device checks the blob's size,
hash and every index before it switches; until then it keeps running its previous model. If the
device already holds the same blob the upload is skipped (--force uploads anyway).

""" + DEVICE_HELP + """
With --board the board stops after the command, so deploying there only checks that the model
is accepted; to keep it, start an emulator first and pass its --port.
"""

EPILOG = """\
examples:
  edgespike emulator start --detach          # prints socket://127.0.0.1:PORT
  edgespike deploy model.bin --port socket://127.0.0.1:PORT
  edgespike deploy model.bin --board mps2-an386 --json   # does the device accept it?
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``deploy`` verb."""
    p = sub.add_parser("deploy", help="upload a model blob to a device",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("model", metavar="MODEL", help="model blob (.bin)")
    p.add_argument("--force", action="store_true",
                   help="upload even if the device already holds this blob")
    p.add_argument("--chunk-bytes", type=int, default=None, metavar="N",
                   help="bytes per chunk (default: the device's max_chunk_bytes)")
    add_device_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, connect, upload; print what happened."""
    model = load(args.model)
    with open_device_from_args(args) as dev:
        info = dev.hello()
        res = dev.deploy(model, force=args.force, chunk_bytes=args.chunk_bytes,
                         progress=progress_printer("upload", not args.json))
        after = dev.hello()
    rate = res.blob_bytes / res.seconds if res.seconds > 0 and not res.skipped else 0.0
    obj = {"model": args.model, "board": info.board, "blob_bytes": res.blob_bytes,
           "crc32": f"{res.crc32:08x}", "chunks": res.chunks, "seconds": round(res.seconds, 4),
           "bytes_per_s": round(rate, 1), "skipped": res.skipped,
           "model_loaded": after.model_loaded, "state_bytes_used": after.state_bytes_used}

    def human() -> None:
        if res.skipped:
            print(f"{args.model}: already on {info.board} (crc32 {res.crc32:08x}); not uploaded")
        else:
            print(f"{args.model}: {res.blob_bytes} bytes in {res.chunks} chunks to {info.board} "
                  f"in {res.seconds:.2f} s ({rate / 1024:.1f} KiB/s), crc32 {res.crc32:08x}; "
                  f"state {after.state_bytes_used} bytes")

    emit(args, obj, human)
    return 0
