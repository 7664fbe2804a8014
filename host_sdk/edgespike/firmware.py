"""Build the link firmware for a named board: the CMake build of ``firmware/`` behind one call,
giving an ``.elf`` (to flash with :func:`edgespike.device.flash` or a debugger), a raw ``.bin``
(for st-flash, drag-and-drop probes: load it at the board's flash base) and an Intel ``.hex``.

    from edgespike.firmware import build_firmware
    fw = build_firmware("nucleo-f446re")
    fw.elf, fw.bin, fw.hex, fw.flash_bytes, fw.ram_bytes

A board is a row of :data:`BOARDS`: which port of ``firmware/ports`` it uses (CMake's
``ES_BOARD``), the cache settings that make it that board (linker script, UART...), and the
build tree. Adding a board: write the port (``firmware/ports/<port>/``: startup, linker script,
UART, cycle counter, a ``main.c`` feeding the link; see ``firmware/ports/stm32f4``), list it in
``firmware/CMakeLists.txt``, and add its row here.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgespike import paths
from edgespike.device.image import read_elf
from edgespike.errors import FirmwareBuildError, ToolMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoardBuild:
    """How to build the link firmware for one board.

    Attributes:
        name: the board's name on the command line.
        port: the port (``ES_BOARD`` of firmware/CMakeLists.txt).
        what: the board, its core and memory, where the link's UART is.
        flash_base: where the raw .bin goes.
        cache: extra CMake cache settings (``-Dkey=value``) that make it this board.
        tree: build folder under the build directory (boards with the port's defaults share
            firmware/build.sh's tree).
    """

    name: str
    port: str
    what: str
    flash_base: int
    cache: dict[str, str] = field(default_factory=dict)
    tree: str = ""

    @property
    def target(self) -> str:
        """The CMake target (and ELF name) of the port's link firmware."""
        return f"edgespike-{self.port}"

    @property
    def folder(self) -> str:
        return self.tree or self.port


#: The boards ``edgespike firmware build`` knows.
BOARDS: dict[str, BoardBuild] = {b.name: b for b in (
    BoardBuild("mps2-an386", "mps2-an386", "Arm MPS2+ AN386 (Cortex-M4F), QEMU -M mps2-an386: "
               "the default emulated board", 0x00000000),
    BoardBuild("stm32f4", "stm32f4", "STM32F405/F407 (1 MB flash, 128 KB SRAM), link on "
               "USART1 PA9/PA10", 0x08000000),
    BoardBuild("netduinoplus2", "stm32f4", "the stm32f4 image, as QEMU -M netduinoplus2 "
               "runs it", 0x08000000),
    BoardBuild("nucleo-f446re", "stm32f4", "ST Nucleo-F446RE (512 KB flash, 128 KB SRAM), "
               "link on the ST-LINK's VCP (USART2)", 0x08000000,
               cache={"ES_STM32_LD": "stm32f446.ld", "ES_STM32_USART": "2"},
               tree="nucleo-f446re"),
)}


@dataclass
class FirmwareBuild:
    """What :func:`build_firmware` produced. Sizes in bytes.

    Attributes:
        board: the board's name.
        elf / bin / hex: the images (the .bin is loaded at ``flash_base``).
        flash_base: address of the .bin's first byte.
        flash_bytes: the image in flash (loadable segments).
        ram_bytes: static RAM (data + bss), stack not included.
        build_id: the GNU build id the link reports in DeviceInfo.build_id.
    """

    board: str
    elf: Path
    bin: Path
    hex: Path
    flash_base: int
    flash_bytes: int
    ram_bytes: int
    build_id: str

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("elf", "bin", "hex"):
            d[k] = str(d[k])
        return d


def _tool(name: str, install: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ToolMissing(f"{name} not found; install it: {install}")
    return exe


def _run(argv: list[str], what: str) -> None:
    log.info("%s: %s", what, " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        raise FirmwareBuildError(f"{what} failed (exit {proc.returncode}):\n{out[-4000:]}")


def _ram_bytes(elf: Path) -> int:
    """data + bss from arm-none-eabi-size (Berkeley format)."""
    size = shutil.which("arm-none-eabi-size")
    if size is None:
        return 0
    out = subprocess.run([size, str(elf)], capture_output=True, text=True, check=True).stdout
    _, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return data + bss


def build_firmware(board: str, *, build_dir: Optional[Path] = None,
                   out_dir: Optional[Path] = None, jobs: Optional[int] = None) -> FirmwareBuild:
    """Configure (once) and build the link firmware for ``board``; write the .bin and .hex.

    Args:
        board: a name of :data:`BOARDS`.
        build_dir: the build folder (default :func:`edgespike.paths.build_dir`); the board's
            tree is a folder in it, configured on first use and rebuilt incrementally.
        out_dir: where to put ``edgespike-<board>.elf/.bin/.hex`` (default: the tree).
        jobs: parallel compile jobs (default: the CPU count).
    """
    if board not in BOARDS:
        raise FirmwareBuildError(f"unknown board {board!r}; boards: {', '.join(BOARDS)} "
                                 "(adding one: edgespike firmware --help)")
    spec = BOARDS[board]
    cmake = _tool("cmake", "apt-get install cmake")
    _tool("arm-none-eabi-gcc", "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    objcopy = _tool("arm-none-eabi-objcopy", "apt-get install binutils-arm-none-eabi")
    root = Path(build_dir) if build_dir else paths.build_dir()
    tree = root / spec.folder
    fw = paths.REPO_ROOT / "firmware"
    if not (tree / "CMakeCache.txt").is_file():
        args = [cmake, "-S", str(fw), "-B", str(tree), f"-DES_BOARD={spec.port}",
                f"-DNANOPB_DIR={root / '_deps' / 'nanopb'}",
                f"-DCMAKE_TOOLCHAIN_FILE={fw / 'cmake' / 'arm-none-eabi.cmake'}",
                "-DCMAKE_BUILD_TYPE=Release"]
        args += [f"-D{k}={v}" for k, v in spec.cache.items()]
        _run(args, f"configure {board}")
    _run([cmake, "--build", str(tree), "--target", spec.target, "-j",
          str(jobs or os.cpu_count() or 2)], f"build {board}")
    built = tree / f"{spec.target}.elf"
    out = Path(out_dir) if out_dir else tree
    out.mkdir(parents=True, exist_ok=True)
    elf = out / f"edgespike-{board}.elf"
    if elf.resolve() != built.resolve():
        shutil.copyfile(built, elf)
    binary, ihex = elf.with_suffix(".bin"), elf.with_suffix(".hex")
    _run([objcopy, "-O", "binary", str(elf), str(binary)], "objcopy .bin")
    _run([objcopy, "-O", "ihex", str(elf), str(ihex)], "objcopy .hex")
    image = read_elf(elf)
    return FirmwareBuild(board=board, elf=elf, bin=binary, hex=ihex,
                         flash_base=image.segments[0].address, flash_bytes=image.size,
                         ram_bytes=_ram_bytes(elf), build_id=image.build_id)
