"""``edgespike firmware build --board B``: the link firmware of a named board as .elf, .bin and
.hex that agree byte for byte, and an image built this way flashes and runs (QEMU's gdbstub)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgespike import cli, paths
from edgespike.device import Emulator, flash
from edgespike.device.image import read_elf
from edgespike.firmware import BOARDS, FirmwareBuildError, build_firmware
from qemu_marks import needs_qemu


def read_ihex(path: Path) -> dict[int, int]:
    """Intel HEX records (data, extended linear address, EOF) as address -> byte."""
    mem: dict[int, int] = {}
    base = 0
    for line in path.read_text().split():
        raw = bytes.fromhex(line[1:])
        assert line[0] == ":" and sum(raw) & 0xFF == 0, line  # the record checksum
        n, addr, kind, data = raw[0], int.from_bytes(raw[1:3], "big"), raw[3], raw[4:4 + raw[0]]
        assert len(data) == n
        if kind == 0:
            mem.update({base + addr + i: b for i, b in enumerate(data)})
        elif kind == 4:
            base = int.from_bytes(data, "big") << 16
        elif kind == 1:
            break
    return mem


def _built(board: str) -> None:
    for mark in needs_qemu(lambda: paths.firmware_image(board)):
        if mark.name == "skipif" and mark.args[0]:
            pytest.skip(mark.kwargs["reason"])


@pytest.mark.qemu
def test_elf_bin_hex_agree(tmp_path, capsys):
    _built("mps2-an386")
    assert cli.main(["firmware", "build", "--board", "mps2-an386", "--out", str(tmp_path),
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    elf, binary, ihex = (Path(out[k]) for k in ("elf", "bin", "hex"))
    assert elf.parent == tmp_path and elf.name == "edgespike-mps2-an386.elf"
    image = read_elf(elf)
    flat = binary.read_bytes()
    base = out["flash_base"]
    assert base == image.segments[0].address == BOARDS["mps2-an386"].flash_base
    hexmem = read_ihex(ihex)
    for seg in image.segments:
        assert flat[seg.address - base:seg.end - base] == seg.data
        assert bytes(hexmem[a] for a in range(seg.address, seg.end)) == seg.data
    assert len(hexmem) == image.size == out["flash_bytes"]
    assert out["build_id"] == image.build_id and out["ram_bytes"] > 0


@pytest.mark.qemu
def test_built_image_flashes_and_runs(tmp_path):
    _built("netduinoplus2")
    fw = build_firmware("netduinoplus2", out_dir=tmp_path)
    with Emulator("netduinoplus2", gdb=True, load=False) as emu:
        result = flash(fw.elf, gdb=emu.gdb_address, port=emu.url)
    assert result.verified and result.device_build_id == fw.build_id
    assert fw.flash_base == 0x08000000 and 0 < fw.ram_bytes <= 128 * 1024


def test_unknown_board_is_named():
    with pytest.raises(FirmwareBuildError, match="unknown board 'stm32f9'; boards: mps2-an386"):
        build_firmware("stm32f9")
    with pytest.raises(SystemExit):  # argparse: invalid choice, with the list
        cli.main(["firmware", "build", "--board", "stm32f9"])


def test_boards_listing(capsys):
    assert cli.main(["firmware", "boards", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["boards"]
    assert {r["board"] for r in rows} == set(BOARDS)
    ports = {p.name for p in (paths.REPO_ROOT / "firmware" / "ports").iterdir()}
    assert {r["port"] for r in rows} <= ports  # every board names a port that exists
