"""``edgespike firmware build|boards``: the link firmware for a named board, as .elf/.bin/.hex."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgespike.commands._common import HelpFormatter, add_json_option, emit, table


def _boards() -> str:
    from edgespike.firmware import BOARDS

    return "\n".join(f"  {b.name:<14} {b.what}" for b in BOARDS.values())


DESCRIPTION = """\
Build the EdgeSpike link firmware (the image that answers 'edgespike info/deploy/run' over a
UART) for a board, without learning the tree: configures CMake once (build/<board>, with the
arm-none-eabi toolchain), builds incrementally, and writes edgespike-<board>.elf (for
'edgespike flash' or a debugger), .bin (raw, load at the flash base) and .hex (Intel HEX).

Boards:
{boards}

Add a board: a port under firmware/ports/<port>/ (startup, linker script, UART with an RX
interrupt, cycle counter, main.c feeding es_link_rx; copy firmware/ports/stm32f4), its name in
firmware/CMakeLists.txt, and a row in BOARDS (edgespike/firmware.py) with the CMake settings
that make it the board (linker script, UART). To put the runtime in your own application
instead, see firmware/examples/hello_spikes and 'edgespike export --help'.
"""

EPILOG = """\
examples:
  edgespike firmware boards
  edgespike firmware build --board nucleo-f446re --out fw/
  edgespike flash fw/edgespike-nucleo-f446re.elf --probe --target stm32f446re --port /dev/ttyACM0
  edgespike firmware build --board mps2-an386 --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``firmware`` verb with ``build`` and ``boards``."""
    desc = DESCRIPTION.format(boards=_boards())
    p = sub.add_parser("firmware", help="build the link firmware for a board (.elf/.bin/.hex)",
                       description=desc, epilog=EPILOG, formatter_class=HelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="build the link firmware for --board",
                           description=desc, epilog=EPILOG, formatter_class=HelpFormatter)
    from edgespike.firmware import BOARDS

    b.add_argument("--board", required=True, choices=tuple(BOARDS), help="which board")
    b.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="copy edgespike-<board>.elf/.bin/.hex here (default: the build tree)")
    b.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                   help="build folder (default: build/, or $EDGESPIKE_BUILD)")
    b.add_argument("--jobs", type=int, default=None, help="parallel compile jobs")
    add_json_option(b)
    b.set_defaults(func=build)
    ls = actions.add_parser("boards", help="list the boards", description=desc,
                            formatter_class=HelpFormatter)
    add_json_option(ls)
    ls.set_defaults(func=boards)


def build(args: argparse.Namespace) -> int:
    """Build and print where the images are."""
    from edgespike.firmware import build_firmware

    fw = build_firmware(args.board, build_dir=args.build_dir, out_dir=args.out, jobs=args.jobs)

    def human() -> None:
        print(f"{fw.board}: flash {fw.flash_bytes} bytes at {fw.flash_base:#010x}, static RAM "
              f"{fw.ram_bytes} bytes, build id {fw.build_id}")
        for kind in ("elf", "bin", "hex"):
            print(f"  {kind}  {getattr(fw, kind)}")

    emit(args, fw.as_dict(), human)
    return 0


def boards(args: argparse.Namespace) -> int:
    """List the boards."""
    from edgespike.firmware import BOARDS

    rows = [{"board": b.name, "port": b.port, "flash_base": b.flash_base, "what": b.what}
            for b in BOARDS.values()]
    emit(args, {"boards": rows}, lambda: print(table(
        [(r["board"], r["port"], f"{r['flash_base']:#010x}", r["what"]) for r in rows],
        ("board", "port", "flash at", "what"))))
    return 0
