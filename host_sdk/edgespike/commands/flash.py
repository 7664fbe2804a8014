"""``edgespike flash``: write a firmware image onto a board, verify it, reset and run it."""
from __future__ import annotations

import argparse

from edgespike.commands._common import HelpFormatter, add_json_option, emit, progress_printer, table


def _servers() -> str:
    from edgespike.device.flashing import GDB_SERVERS

    return "\n".join(f"      {k.name:<9} {k.what + ',':<36} port {k.default_port:<5} "
                     f"reset: monitor {k.reset}"
                     for k in GDB_SERVERS.values())


DESCRIPTION = """\
Flash a firmware image (an ELF: build/<board>/*.elf, or 'edgespike firmware build') onto a
board: write its loadable segments, read every byte back and compare, reset the target and let
it run. With --port (the board's link), say Hello afterwards and check that the board runs the
image just flashed (the link reports its GNU build id).

Two ways to reach the board:
  --gdb HOST:PORT   any gdbserver, through the GDB remote protocol (no GDB needed):
{servers}
      auto      (the default) qemu when the server publishes no memory map, else openocd
                    Flash regions of the server's memory map are programmed with
                    vFlashErase/vFlashWrite/vFlashDone, the rest of memory with X/M writes.
  --probe [UID]     a debug probe on USB through pyOCD (pip install 'edgespike[pyocd]'):
                    CMSIS-DAP (DAPLink), ST-Link, J-Link. --target names the part
                    (stm32f405rg, stm32f446re, nrf51...; 'pyocd list --targets'); parts
                    outside pyOCD's built-in list need a CMSIS-Pack ('pyocd pack install').

Add a gdbserver: a line in GDB_SERVERS (edgespike/device/flashing.py) with its monitor
command that resets and halts the target. Add a board: see 'edgespike firmware --help'.
"""

EPILOG = """\
examples:
  # the emulated board, halted with its gdbstub, flashed like a real one:
  qemu-system-arm -M mps2-an386 -nographic -S -gdb tcp::1234 \\
      -serial tcp:127.0.0.1:5555,server=on,wait=off -semihosting-config enable=on,target=native
  edgespike flash build/mps2-an386/edgespike-mps2-an386.elf --gdb :1234 --port socket://127.0.0.1:5555

  edgespike flash build/stm32f4/edgespike-stm32f4.elf --gdb localhost:3333 --server openocd
  edgespike flash build/stm32f4/edgespike-stm32f4.elf --gdb :4242 --server stutil --port /dev/ttyACM0
  edgespike flash build/stm32f4/edgespike-stm32f4.elf --probe --target stm32f405rg
  edgespike flash --list-probes
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``flash`` verb."""
    p = sub.add_parser("flash", help="flash a firmware image (ELF) through a gdbserver or a "
                                     "debug probe, verify it, run it",
                       description=DESCRIPTION.format(servers=_servers()), epilog=EPILOG,
                       formatter_class=HelpFormatter)
    p.add_argument("firmware", nargs="?", help="the ELF image to flash")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--gdb", metavar="HOST:PORT", help="a gdbserver's address")
    how.add_argument("--probe", nargs="?", const="auto", metavar="UID",
                     help="a debug probe through pyOCD (default: the only one connected)")
    how.add_argument("--list-probes", action="store_true",
                     help="list the debug probes pyOCD sees, and exit")
    from edgespike.device.flashing import GDB_SERVERS

    p.add_argument("--server", default="auto", choices=("auto",) + tuple(GDB_SERVERS),
                   help="which gdbserver --gdb names (default auto)")
    p.add_argument("--target", metavar="PART", help="pyOCD target type (with --probe)")
    p.add_argument("--port", metavar="PORT",
                   help="the board's link port: after flashing, check it runs the new image")
    p.add_argument("--no-verify", action="store_true", help="skip the read-back")
    p.add_argument("--no-run", action="store_true", help="leave the target halted")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for each answer (default 10)")
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Flash, then print what was done."""
    from edgespike.device import flashing
    from edgespike.errors import FlashError

    if args.list_probes:
        probes = flashing.list_probes()
        emit(args, {"probes": probes}, lambda: print(
            table([(p["unique_id"], p["description"]) for p in probes], ("unique id", "probe"))
            if probes else "no debug probe found (CMSIS-DAP, ST-Link, J-Link over USB)"))
        return 0
    if not args.firmware:
        raise FlashError("name the firmware image to flash (an .elf), e.g. "
                         "build/mps2-an386/edgespike-mps2-an386.elf")
    if args.gdb is None and args.probe is None:
        raise FlashError("say how to reach the board: --gdb HOST:PORT (a gdbserver: QEMU, "
                         "OpenOCD, pyOCD, J-Link, st-util) or --probe (a USB probe via pyOCD)")
    result = flashing.flash(args.firmware, gdb=args.gdb, server=args.server, probe=args.probe,
                            target=args.target, verify=not args.no_verify, run=not args.no_run,
                            port=args.port, timeout=args.timeout,
                            progress=progress_printer("flash", not args.json))

    def human() -> None:
        rate = result.bytes_written / result.write_s / 1024 if result.write_s > 0 else 0.0
        print(f"flashed {result.firmware}: {result.bytes_written} bytes in {result.segments} "
              f"segment(s) through {result.method} ({result.server} at {result.target}), "
              f"{result.write_s * 1000:.0f} ms ({rate:.0f} KiB/s)")
        if result.verified:
            print(f"verified: every byte read back equal ({result.verify_s * 1000:.0f} ms)")
        print(f"build id {result.build_id or '(none in the image)'}")
        if result.device_build_id:
            print(f"running: {args.port} answers Hello with build id {result.device_build_id}")
        elif result.running:
            print("running")

    emit(args, result.as_dict(), human)
    return 0
