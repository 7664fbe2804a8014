"""An Arm ELF image's functions and instructions, read with GNU binutils (``arm-none-eabi-nm``,
``arm-none-eabi-objdump``): what the block trace and the cycle model need to name and classify
the instructions the emulator ran.
"""
from __future__ import annotations

import bisect
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

from edgespike.errors import ToolMissing

_INSN = re.compile(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{4}\s?){1,2})\s+(\S+)\s*(.*)$")


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ToolMissing(f"{name} not found: apt-get install binutils-arm-none-eabi "
                          "(it comes with gcc-arm-none-eabi)")
    return exe


@dataclass(frozen=True)
class Line:
    """One disassembled Thumb instruction: address, size in bytes, mnemonic and operands as
    objdump prints them (``ldr.w``, ``r9, [r0]``)."""

    addr: int
    size: int
    mnemonic: str
    operands: str


@dataclass
class ElfImage:
    """Functions (sorted by address) and the disassembly of an image's code.

    Attributes:
        path: the ELF file.
        functions: ``(start, size, name)`` of every function symbol, sorted by start.
        lines: address -> :class:`Line`.
    """

    path: Path
    functions: list[tuple[int, int, str]] = field(default_factory=list)
    lines: dict[int, Line] = field(default_factory=dict)

    def symbol(self, name: str) -> Optional[int]:
        """The address of function ``name`` (Thumb bit cleared), or None."""
        for start, _, fname in self.functions:
            if fname == name:
                return start
        return None

    def function_at(self, addr: int) -> str:
        """``name+0xoff`` of the function holding ``addr`` (``?`` when none does)."""
        starts = [f[0] for f in self.functions]
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0:
            start, size, name = self.functions[i]
            if addr < start + max(size, 1):
                return name if addr == start else f"{name}+0x{addr - start:x}"
        return "?"

    def function_name(self, addr: int) -> str:
        """The name of the function holding ``addr`` (``?`` when none does)."""
        return self.function_at(addr).split("+", 1)[0]

    def call_returns(self, callee: str) -> list[int]:
        """Return addresses of the direct calls (``bl``) to ``callee``: the address after each
        call site."""
        target = self.symbol(callee)
        if target is None:
            return []
        out = []
        for line in self.lines.values():
            if line.mnemonic in ("bl", "blx") and line.operands.split()[0] == f"{target:x}":
                out.append(line.addr + line.size)
        return sorted(out)


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> ElfImage:
    image = ElfImage(Path(path))
    nm = subprocess.run([_tool("arm-none-eabi-nm"), "-S", "--defined-only", path],
                        capture_output=True, text=True, check=True).stdout
    funcs = {}
    for row in nm.splitlines():
        parts = row.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start = int(parts[0], 16) & ~1
            funcs[start] = (start, int(parts[1], 16), parts[3])
    image.functions = sorted(funcs.values())
    dump = subprocess.run([_tool("arm-none-eabi-objdump"), "-d", path], capture_output=True,
                          text=True, check=True).stdout
    for row in dump.splitlines():
        m = _INSN.match(row)
        if m is None:
            continue
        addr = int(m.group(1), 16)
        size = 2 * len(m.group(2).split())
        ops = m.group(4).split("@", 1)[0].split(";", 1)[0].strip()
        image.lines[addr] = Line(addr, size, m.group(3).lower(), ops)
    return image


def load(path: Path) -> ElfImage:
    """Read (and cache, until the file changes) the functions and disassembly of ``path``."""
    p = Path(path)
    if not p.is_file():
        raise ToolMissing(f"{p} not found; build it with: bash firmware/build.sh")
    return _load(str(p.resolve()), p.stat().st_mtime)
