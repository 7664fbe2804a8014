"""A firmware image as a flasher sees it: the loadable segments of an Arm ELF file.

Pure Python (the ELF32 headers are a few fixed structs), so flashing needs no binutils:

    image = read_elf("build/mps2-an386/edgespike-mps2-an386.elf")
    for seg in image.segments:          # what a flasher writes: bytes at their load address
        print(hex(seg.address), len(seg.data))
    image.build_id                      # the GNU build id (hex), as DeviceInfo.build_id says

Only the file bytes of each ``PT_LOAD`` segment are written, at its physical (load) address:
``.data``'s initial values go to flash where the startup code copies them from, and ``.bss``
(memory size beyond the file size) is zeroed by the startup code, never written.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from edgespike.errors import FlashError

#: e_machine of 32-bit Arm.
EM_ARM = 40
PT_LOAD = 1
SHT_NOTE = 7
NT_GNU_BUILD_ID = 3


@dataclass(frozen=True)
class Segment:
    """Bytes to write at ``address`` (the segment's physical, i.e. load, address)."""

    address: int
    data: bytes

    @property
    def end(self) -> int:
        """First address after the segment."""
        return self.address + len(self.data)


@dataclass
class FirmwareImage:
    """The loadable content of an ELF file.

    Attributes:
        path: the ELF file.
        segments: non-empty ``PT_LOAD`` file contents, sorted by address.
        entry: the entry point (Thumb bit included, as the ELF says).
        build_id: the GNU build id as hex (``ld --build-id``), or ``""``.
    """

    path: Path
    segments: list[Segment] = field(default_factory=list)
    entry: int = 0
    build_id: str = ""

    @property
    def size(self) -> int:
        """Bytes to write (flash use of the image)."""
        return sum(len(s.data) for s in self.segments)

    def vector_table(self) -> tuple[int, int]:
        """(initial stack pointer, reset handler) from the first 8 bytes of the lowest segment:
        a Cortex-M image starts with its vector table."""
        first = self.segments[0]
        if len(first.data) < 8:
            raise FlashError(f"{self.path}: the first segment is too short for a vector table")
        return struct.unpack_from("<II", first.data, 0)


def read_elf(path: str | Path) -> FirmwareImage:
    """Read an ELF32 little-endian Arm executable; raises :class:`FlashError` saying why a file
    is not one (not found, not ELF, 64-bit, big-endian, another architecture, no segment)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FlashError(f"cannot read the firmware image {path}: {exc.strerror or exc}") from exc
    if raw[:4] != b"\x7fELF":
        hint = " (a raw .bin has no addresses: flash the .elf the build wrote beside it)" \
            if path.suffix in (".bin", ".hex") else ""
        raise FlashError(f"{path} is not an ELF file{hint}")
    if raw[4] != 1 or raw[5] != 1:
        raise FlashError(f"{path}: only 32-bit little-endian ELF files are Cortex-M images")
    try:
        (e_type, e_machine, _, e_entry, e_phoff, e_shoff, _, _, e_phentsize, e_phnum,
         e_shentsize, e_shnum, _) = struct.unpack_from("<HHIIIIIHHHHHH", raw, 16)
        if e_machine != EM_ARM:
            raise FlashError(f"{path} is built for ELF machine {e_machine}, not Arm (40): is it "
                             "the host build? Flash build/<board>/*.elf")
        segments = []
        for i in range(e_phnum):
            p_type, p_offset, _, p_paddr, p_filesz, _, _, _ = struct.unpack_from(
                "<IIIIIIII", raw, e_phoff + i * e_phentsize)
            if p_type == PT_LOAD and p_filesz > 0:
                data = raw[p_offset:p_offset + p_filesz]
                if len(data) != p_filesz:
                    raise FlashError(f"{path}: segment {i} runs past the end of the file")
                segments.append(Segment(p_paddr, bytes(data)))
        build_id = _build_id(raw, e_shoff, e_shentsize, e_shnum)
    except struct.error as exc:
        raise FlashError(f"{path}: truncated ELF headers ({exc})") from exc
    if not segments:
        raise FlashError(f"{path} has no loadable segment: nothing to flash")
    segments.sort(key=lambda s: s.address)
    for a, b in zip(segments, segments[1:]):
        if b.address < a.end:
            raise FlashError(f"{path}: segments at {a.address:#x} and {b.address:#x} overlap")
    return FirmwareImage(path=path, segments=segments, entry=e_entry, build_id=build_id)


def _build_id(raw: bytes, shoff: int, shentsize: int, shnum: int) -> str:
    """The NT_GNU_BUILD_ID note's descriptor as hex, from the SHT_NOTE sections; "" if none."""
    for i in range(shnum if shoff else 0):
        _, sh_type, _, _, sh_offset, sh_size = struct.unpack_from("<IIIIII", raw,
                                                                   shoff + i * shentsize)
        if sh_type != SHT_NOTE:
            continue
        pos, end = sh_offset, sh_offset + sh_size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", raw, pos)
            name_at = pos + 12
            desc_at = name_at + ((namesz + 3) & ~3)
            if ntype == NT_GNU_BUILD_ID and raw[name_at:name_at + namesz] == b"GNU\x00":
                return raw[desc_at:desc_at + descsz].hex()
            pos = desc_at + ((descsz + 3) & ~3)
    return ""
