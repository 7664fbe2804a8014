"""``edgespike emulator start|stop``: an emulated board on a local TCP port."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from edgespike.commands._common import (
    BOARD_CHOICES, HelpFormatter, add_json_option, emit, state_dir,
)
from edgespike.errors import EmulatorError

DESCRIPTION = """\
Start an emulated board running the EdgeSpike link firmware, its UART on a local TCP port, and
print the URL to pass as --port to the other verbs. The board keeps its model between commands
for as long as it runs.

  mps2-an386  QEMU, Arm Cortex-M4F at 25 MHz (cycles are counted as instructions:
              -icount shift=0, deterministic)
  netduinoplus2  QEMU, STM32F405 (Cortex-M4F, 168 MHz) running the stm32f4 port, the same
              image as for a real STM32F4 board; 128 KB RAM, so models up to 6 KB
  host        the same link firmware compiled for this machine (fast, for tests)

By default 'start' stays in the foreground until Ctrl-C. With --detach it prints the URL and
returns, leaving the board running; 'edgespike emulator stop' ends it.

With --gdb a QEMU board starts empty and halted, with QEMU's gdbstub on a local port (printed
after the URL): flash it as a real board, 'edgespike flash ELF --gdb ADDRESS --port URL'.
"""

EPILOG = """\
examples:
  edgespike emulator start                      # foreground; Ctrl-C stops it
  edgespike emulator start --detach             # prints socket://127.0.0.1:PORT, returns
  edgespike info --port socket://127.0.0.1:PORT
  edgespike emulator stop
  edgespike emulator start --board host --detach --json
  edgespike emulator start --gdb --detach       # prints the URL, then 127.0.0.1:GDBPORT
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``emulator`` verb with ``start`` and ``stop``."""
    p = sub.add_parser("emulator", help="start or stop an emulated board (QEMU) on a local port",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = actions.add_parser("start", help="start a board and print its socket:// URL",
                           description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    s.add_argument("--board", choices=BOARD_CHOICES, default="mps2-an386",
                   help="which board (default mps2-an386)")
    s.add_argument("--firmware", metavar="ELF", default=None,
                   help="firmware image (default build/<board>/edgespike-<board>.elf)")
    s.add_argument("--tcp-port", type=int, default=0, metavar="N",
                   help="TCP port for the board's UART (default: a free one)")
    s.add_argument("--gdb", action="store_true",
                   help="QEMU boards: start empty and halted with the gdbstub, to be flashed")
    s.add_argument("--detach", action="store_true",
                   help="leave the board running in the background; write a pid file")
    s.add_argument("--pid-file", metavar="FILE", default=None,
                   help="where --detach records the board (default ~/.cache/edgespike/"
                        "emulator-<board>.json)")
    add_json_option(s)
    s.set_defaults(func=start)
    t = actions.add_parser("stop", help="stop a board started with --detach",
                           description="Stop a board started with 'edgespike emulator start "
                                       "--detach'.", epilog="example:\n  edgespike emulator stop",
                           formatter_class=HelpFormatter)
    t.add_argument("--board", choices=BOARD_CHOICES, default="mps2-an386",
                   help="which board's pid file (default mps2-an386)")
    t.add_argument("--pid-file", metavar="FILE", default=None, help="pid file written by start")
    add_json_option(t)
    t.set_defaults(func=stop)


def _pid_file(args: argparse.Namespace) -> Path:
    return Path(args.pid_file) if args.pid_file else state_dir() / f"emulator-{args.board}.json"


def _make(args: argparse.Namespace, detach: bool, log_path: Path | None):
    from edgespike.device.emulator import make_board

    kw: dict = {"port": args.tcp_port, "detach": detach, "log_path": log_path}
    if args.board == "host":
        if args.gdb:
            raise EmulatorError("--gdb needs a QEMU board (mps2-an386, netduinoplus2), not host")
        if args.firmware:
            kw["executable"] = args.firmware
    else:
        if args.firmware:
            kw["firmware"] = args.firmware
        if args.gdb:
            kw.update(gdb=True, load=False)
    return make_board(args.board, **kw)


def _record(args: argparse.Namespace, board) -> dict:
    record = {"board": args.board, "url": board.url, "pid": board.pid}
    if getattr(args, "gdb", False):
        record["gdb"] = board.gdb_address
    return record


def _show(record: dict) -> None:
    print(record["url"])
    if "gdb" in record:
        print(record["gdb"])


def start(args: argparse.Namespace) -> int:
    """Start the board; foreground until Ctrl-C, or detached with a pid file."""
    if args.detach:
        pid_file = _pid_file(args)
        if pid_file.exists():
            old = json.loads(pid_file.read_text())
            if _running(old.get("pid", 0)):
                raise EmulatorError(f"a {args.board} board already runs at {old.get('url')} "
                                    f"(pid {old.get('pid')}); stop it first: edgespike emulator "
                                    f"stop --board {args.board}")
        log_path = pid_file.with_suffix(".log")
        board = _make(args, True, log_path)
        board.start()
        if args.board == "host":
            time.sleep(0.05)
        board.alive()
        record = {**_record(args, board), "log": str(log_path)}
        board.release()
        pid_file.write_text(json.dumps(record) + "\n")
        emit(args, {**record, "pid_file": str(pid_file)}, lambda: _show(record))
        return 0
    board = _make(args, False, None)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # leave the with-block below, which stops the board

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    with board:
        record = _record(args, board)
        emit(args, record, lambda: _show(record))
        if not args.json:
            print(f"{args.board} running (pid {board.pid}); Ctrl-C stops it", file=sys.stderr)
        sys.stdout.flush()
        try:
            while True:
                board.alive()
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


def _running(pid: int) -> bool:
    """True if ``pid`` is a live board process (QEMU or hostdev), never anything else."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"qemu-system-arm" in cmd or b"edgespike-hostdev" in cmd


def stop(args: argparse.Namespace) -> int:
    """Stop the board recorded in the pid file."""
    from edgespike.device.emulator import stop_pid

    pid_file = _pid_file(args)
    if not pid_file.exists():
        raise EmulatorError(f"no running {args.board} board recorded in {pid_file}; start one "
                            "with: edgespike emulator start --detach")
    record = json.loads(pid_file.read_text())
    pid = int(record.get("pid", 0))
    stopped = _running(pid) and stop_pid(pid)
    pid_file.unlink()
    emit(args, {**record, "stopped": stopped},
         lambda: print(f"stopped {record.get('board')} at {record.get('url')} (pid {pid})"
                       if stopped else f"{record.get('board')} (pid {pid}) was not running"))
    return 0
