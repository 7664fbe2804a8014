"""Flashing (edgespike.device.flashing): the GDB remote protocol against QEMU's real gdbstub
(a board started halted and empty, flashed, verified by read-back, reset, then serving the link
with the build id of the image), corruption on the wire caught (by the checksum, or by the
read-back when the checksum was forged), the vFlash path of servers with a memory map, the ELF
reader against binutils, and pyOCD with no probe."""
from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgespike import cli, paths
from edgespike.device import Emulator, flash
from edgespike.device import gdbremote
from edgespike.device.flashing import check_running, verify_segments
from edgespike.device.gdbremote import GdbRemote
from edgespike.device.image import Segment, read_elf
from edgespike.errors import FlashError, FlashVerifyError, ProbeNotFound, ToolMissing
from qemu_marks import needs_qemu

REPO = Path(__file__).resolve().parents[1]


def _mps2() -> Path:
    return paths.firmware_image("mps2-an386")


def _stm32() -> Path:
    return paths.firmware_image("netduinoplus2")


def qemu_test(fn):
    """Marks of a test that flashes the emulated boards (qemu, skipped without the build)."""
    for mark in needs_qemu(_mps2, _stm32):
        fn = mark(fn)
    return fn


# ---- the ELF reader ---------------------------------------------------------------------------
def _objcopy_binary(elf: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "image.bin"
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(out)], check=True)
    return out.read_bytes()


@pytest.mark.skipif(shutil.which("arm-none-eabi-objcopy") is None, reason="no binutils")
@pytest.mark.parametrize("image", [_mps2, _stm32], ids=["mps2-an386", "stm32f4"])
def test_elf_segments_and_build_id_match_binutils(image, tmp_path):
    try:
        elf = image()
    except ToolMissing as exc:
        pytest.skip(str(exc))
    img = read_elf(elf)
    flat = _objcopy_binary(elf, tmp_path)
    base = img.segments[0].address
    for seg in img.segments:  # objcopy's flat image starts at the lowest load address
        assert flat[seg.address - base:seg.end - base] == seg.data
    assert img.size == len(flat)
    notes = subprocess.run(["arm-none-eabi-readelf", "-n", str(elf)], check=True,
                           capture_output=True, text=True).stdout
    assert f"Build ID: {img.build_id}" in notes and len(img.build_id) == 40
    sp, reset = img.vector_table()
    assert sp >= 0x20000000 and reset & 1 == 1  # a stack in SRAM, a Thumb reset handler


def _elf(segments: list[tuple[int, bytes, int]], machine: int = 40) -> bytes:
    """A minimal ELF32 LE executable: (paddr, file bytes, memsz) per PT_LOAD."""
    ph_off, n = 52, len(segments)
    data_off = ph_off + 32 * n
    head = b"\x7fELF\x01\x01\x01" + bytes(9) + struct.pack(
        "<HHIIIIIHHHHHH", 2, machine, 1, 0x08000001, ph_off, 0, 0, 52, 32, n, 40, 0, 0)
    phs, blobs, off = b"", b"", data_off
    for paddr, data, memsz in segments:
        phs += struct.pack("<IIIIIIII", 1, off, paddr, paddr, len(data), memsz, 5, 4)
        blobs += data
        off += len(data)
    return head + phs + blobs


def test_elf_reader_refuses_what_is_not_a_cortex_m_image(tmp_path):
    cases = {
        "firmware.bin": (b"\x00\x10\x00\x20" * 8, "not an ELF file (a raw .bin has no addresses"),
        "x86.elf": (_elf([(0, b"\x00" * 8, 8)], machine=62), "not Arm (40)"),
        "elf64.elf": (b"\x7fELF\x02\x01\x01" + bytes(60), "32-bit little-endian"),
        "empty.elf": (_elf([(0x20000000, b"", 64)]), "no loadable segment"),
        "cut.elf": (_elf([(0, b"\x01" * 64, 64)])[:100], "runs past the end"),
        "overlap.elf": (_elf([(0, b"\x01" * 16, 16), (8, b"\x02" * 16, 16)]), "overlap"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FlashError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_elf(tmp_path / name)
    with pytest.raises(FlashError, match="cannot read"):
        read_elf(tmp_path / "missing.elf")
    ok = read_elf(_write(tmp_path / "ok.elf", _elf([(0x20000000, b"\x05" * 4, 64),
                                                     (0x08000000, b"\x07" * 8, 8)])))
    # sorted by address; .bss-like tails (memsz > filesz) are not written
    assert [(s.address, s.data) for s in ok.segments] == [(0x08000000, b"\x07" * 8),
                                                          (0x20000000, b"\x05" * 4)]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- RSP encoding -------------------------------------------------------------------------------
def test_rsp_escape_checksum_and_run_length():
    data = bytes(range(256)) * 2
    assert gdbremote.decode(gdbremote.escape(data)) == data
    assert not set(gdbremote.escape(data)) & {ord("#"), ord("$"), ord("*")}
    assert gdbremote.frame(b"OK") == b"$OK#9a"            # 0x4f + 0x4b = 0x9a
    assert gdbremote.frame(b"m0,4") == b"$m0,4#fd"
    assert gdbremote.decode(b"0* ") == b"0" * 4             # ' ' = 32: 3 more repeats
    assert gdbremote.decode(b"ab*\"c") == b"abbbbbbc"       # '"' = 34: 5 more
    assert gdbremote.parse_address(":1234") == ("127.0.0.1", 1234)
    assert gdbremote.parse_address("tcp:localhost:3333") == ("localhost", 3333)
    assert gdbremote.parse_address("4242") == ("127.0.0.1", 4242)
    for bad in ("localhost", "host:0", "host:99999", ""):
        with pytest.raises(FlashError, match="HOST:PORT"):
            gdbremote.parse_address(bad)


def test_no_gdbserver_is_a_clear_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FlashError, match="no gdbserver answers at 127.0.0.1"):
        GdbRemote(f"127.0.0.1:{port}", connect_timeout=0.2).connect()


# ---- QEMU's gdbstub -----------------------------------------------------------------------------
class RspProxy:
    """A TCP proxy between a gdb client and QEMU's gdbstub that tampers with the first memory
    write packet (``M``) it sees: ``mode="data"`` changes one data byte and forges a matching
    checksum (the gdbstub accepts it: only the read-back can tell); ``mode="checksum"`` changes
    only the checksum (the gdbstub answers ``-`` and the client must send it again)."""

    def __init__(self, upstream: str, mode: str, byte_index: int = 100) -> None:
        self.upstream = gdbremote.parse_address(upstream)
        self.mode, self.byte_index = mode, byte_index
        self.tampered = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        client, _ = self.server.accept()
        for _ in range(100):  # QEMU may still be starting
            try:
                up = socket.create_connection(self.upstream)
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            client.close()
            return
        for sock in (client, up):  # forward each packet at once (no Nagle delay)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()
        self._pump(client, up, True)

    def _pump(self, src: socket.socket, dst: socket.socket, tamper: bool) -> None:
        buf = b""
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while buf:
                    if buf[:1] != b"$":
                        cut = buf.find(b"$")
                        cut = len(buf) if cut < 0 else cut
                        dst.sendall(buf[:cut])
                        buf = buf[cut:]
                        continue
                    end = buf.find(b"#")
                    if end < 0 or len(buf) < end + 3:
                        break
                    packet, buf = buf[:end + 3], buf[end + 3:]
                    if tamper and not self.tampered and packet.startswith(b"$M"):
                        packet = self._tamper(packet)
                    dst.sendall(packet)
        except OSError:
            pass
        finally:  # shutdown, not only close: the other pump is blocked in recv on it
            for sock in (dst, src):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            dst.close()

    def _tamper(self, packet: bytes) -> bytes:
        self.tampered += 1
        payload = packet[1:-3]
        if self.mode == "checksum":
            return b"$" + payload + b"#%02x" % ((gdbremote.checksum(payload) + 1) & 0xFF)
        head, hexdata = payload.split(b":", 1)
        i = 2 * self.byte_index
        byte = int(hexdata[i:i + 2], 16) ^ 0xFF
        payload = head + b":" + hexdata[:i] + b"%02x" % byte + hexdata[i + 2:]
        return gdbremote.frame(payload)


@pytest.fixture
def halted_board():
    """QEMU mps2-an386 started halted with its gdbstub and no image: a blank board."""
    with Emulator("mps2-an386", gdb=True, load=False) as emu:
        yield emu


@qemu_test
@pytest.mark.parametrize("board", ["mps2-an386", "netduinoplus2"])
def test_flash_through_qemu_gdbstub_runs_the_image(board):
    elf = paths.firmware_image(board)
    image = read_elf(elf)
    with Emulator(board, gdb=True, load=False) as emu:
        with GdbRemote(emu.gdb_address) as gdb:  # blank before: nothing at the vector table
            assert gdb.read_memory(image.segments[0].address, 8) == bytes(8)
        result = flash(elf, gdb=emu.gdb_address, port=emu.url)
    assert result.verified and result.running and result.server == "qemu"
    assert result.bytes_written == image.size == sum(len(s.data) for s in image.segments)
    assert result.device_build_id == image.build_id != ""
    assert result.retransmits == 0


@qemu_test
def test_cli_flash_then_hil_subset_on_the_flashed_board(halted_board, tmp_path):
    """edgespike flash through the gdbstub, then hil/ against the board it flashed."""
    elf = _mps2()
    code = cli.main(["flash", str(elf), "--gdb", halted_board.gdb_address, "--port",
                     halted_board.url, "--json"])
    assert code == 0
    env = {**os.environ, "PYTHONPATH": str(REPO / "host_sdk")}
    subset = ("info_fields_sane or deploy_and_run_equal_reference or redeploy or bad_crc or "
              "invalid_model_with_correct_hash or upload_never_committed or "
              "run_input_out_of_range")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "hil/test_device.py",
         "--port", halted_board.url, "-k", subset], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    # the board still runs the image flashed (and hil's models did not change its build id)
    assert check_running(read_elf(elf), halted_board.url) == read_elf(elf).build_id


@qemu_test
def test_cli_flash_json(halted_board, capsys):
    elf = _mps2()
    assert cli.main(["flash", str(elf), "--gdb", halted_board.gdb_address, "--port",
                     halted_board.url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] and out["running"] and out["method"] == "gdb"
    assert out["device_build_id"] == read_elf(elf).build_id


@qemu_test
def test_a_forged_write_is_caught_by_the_read_back(halted_board):
    proxy = RspProxy(halted_board.gdb_address, mode="data", byte_index=100)
    image = read_elf(_mps2())
    with pytest.raises(FlashVerifyError) as info:
        flash(_mps2(), gdb=proxy.address, run=False)
    assert proxy.tampered == 1
    first = image.segments[0]
    assert info.value.address == first.address + 100
    assert info.value.expected == first.data[100]
    assert info.value.got == first.data[100] ^ 0xFF
    assert f"{first.address + 100:#010x}" in str(info.value)
    # the board really holds the bad byte: read it straight from the gdbstub
    with GdbRemote(halted_board.gdb_address) as gdb:
        assert gdb.read_memory(first.address + 100, 1) == bytes([first.data[100] ^ 0xFF])


@qemu_test
def test_a_bad_checksum_is_refused_and_sent_again(halted_board):
    proxy = RspProxy(halted_board.gdb_address, mode="checksum")
    result = flash(_mps2(), gdb=proxy.address, port=halted_board.url)
    assert proxy.tampered == 1 and result.retransmits == 1
    assert result.verified and result.device_build_id == read_elf(_mps2()).build_id


@qemu_test
def test_verify_detects_a_byte_changed_after_flashing(halted_board):
    image = read_elf(_mps2())
    flash(_mps2(), gdb=halted_board.gdb_address, run=False)
    last = image.segments[-1]
    with GdbRemote(halted_board.gdb_address) as gdb:
        verify_segments(image, gdb.read_memory)  # as flashed
        gdb.write_memory(last.end - 1, bytes([last.data[-1] ^ 0x01]))
        with pytest.raises(FlashVerifyError) as info:
            verify_segments(image, gdb.read_memory)
    assert info.value.address == last.end - 1


@qemu_test
def test_build_id_of_another_image_is_refused(halted_board):
    flash(_mps2(), gdb=halted_board.gdb_address, port=halted_board.url)
    try:
        other = read_elf(_stm32())
    except ToolMissing as exc:
        pytest.skip(str(exc))
    with pytest.raises(FlashError, match="not the image just flashed"):
        check_running(other, halted_board.url)


@qemu_test
def test_unwritable_address_is_a_named_error(halted_board, tmp_path):
    # 0x60000000 is unmapped on mps2-an386: QEMU's gdbstub takes the write but answers the
    # read-back with an error
    elf = _write(tmp_path / "far.elf", _elf([(0x60000000, b"\x01" * 16, 16)]))
    with pytest.raises(FlashError, match="verify: .* refused to read 16 bytes at 0x60000000"):
        flash(elf, gdb=halted_board.gdb_address, run=False)


# ---- servers with a memory map: vFlashErase / vFlashWrite / vFlashDone -------------------------
class FlashStub:
    """An RSP server with a memory map, as OpenOCD, pyOCD and st-util publish one: flash
    (erased to 0xFF in whole blocks; programming only clears bits, and only at vFlashDone)
    and RAM. It answers ``-`` to a bad checksum, records every command, and has its own
    unescaping (independent of gdbremote.decode)."""

    FLASH, BLOCK, RAM = 0x08000000, 0x4000, 0x20000000

    def __init__(self) -> None:
        self.flash = bytearray(b"\xa5" * 0x10000)  # not erased: an erase is needed
        self.ram = bytearray(0x1000)
        self.pending: list[tuple[int, bytes]] = []
        self.log: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _unescape(data: bytes) -> bytes:
        out, it = bytearray(), iter(data)
        for b in it:
            out.append(next(it) ^ 0x20 if b == 0x7D else b)
        return bytes(out)

    def _mem(self, addr: int, n: int) -> tuple[bytearray, int]:
        if self.FLASH <= addr and addr + n <= self.FLASH + len(self.flash):
            return self.flash, addr - self.FLASH
        if self.RAM <= addr and addr + n <= self.RAM + len(self.ram):
            return self.ram, addr - self.RAM
        raise KeyError

    def _answer(self, p: bytes) -> bytes:
        xml = (b'<memory-map><memory type="flash" start="0x8000000" length="0x10000">'
               b'<property name="blocksize">0x4000</property></memory>'
               b'<memory type="ram" start="0x20000000" length="0x1000"/></memory-map>')
        self.log.append(p.split(b":")[0].split(b",")[0].decode(errors="replace")[:16])
        if p.startswith(b"qSupported"):
            return b"PacketSize=200;qXfer:memory-map:read+"
        if p == b"?":
            return b"S05"
        if p.startswith(b"qXfer:memory-map:read::"):
            off, n = (int(x, 16) for x in p.split(b"::")[1].split(b","))
            part = xml[off:off + n]
            return (b"l" if off + n >= len(xml) else b"m") + part
        if p.startswith(b"qRcmd,"):
            self.log.append("monitor " + bytes.fromhex(p[6:].decode()).decode())
            return b"OK"
        if p.startswith(b"vFlashErase:"):
            addr, n = (int(x, 16) for x in p[12:].split(b","))
            if addr % self.BLOCK or n % self.BLOCK:
                return b"E01"
            mem, at = self._mem(addr, n)
            mem[at:at + n] = b"\xff" * n
            return b"OK"
        if p.startswith(b"vFlashWrite:"):
            addr, data = p[12:].split(b":", 1)
            self.pending.append((int(addr, 16), self._unescape(data)))
            return b"OK"
        if p == b"vFlashDone":
            for addr, data in self.pending:
                mem, at = self._mem(addr, len(data))
                for i, b in enumerate(data):
                    mem[at + i] &= b
            self.pending.clear()
            return b"OK"
        if p[:1] in b"MX":
            head, data = p[1:].split(b":", 1)
            addr, n = (int(x, 16) for x in head.split(b","))
            data = bytes.fromhex(data.decode()) if p[:1] == b"M" else self._unescape(data)
            try:
                mem, at = self._mem(addr, n)
            except KeyError:
                return b"E0e"
            if mem is self.flash:
                return b"E0e"  # flash takes no plain writes (as OpenOCD)
            mem[at:at + n] = data[:n]
            return b"OK"
        if p[:1] == b"m":
            addr, n = (int(x, 16) for x in p[1:].split(b","))
            mem, at = self._mem(addr, n)
            return bytes(mem[at:at + n]).hex().encode()
        if p == b"c":
            return b""
        return b""

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                start = buf.find(b"$")
                end = buf.find(b"#", start)
                if start < 0 or end < 0 or len(buf) < end + 3:
                    break
                payload, cs = buf[start + 1:end], buf[end + 1:end + 3]
                buf = buf[end + 3:]
                if int(cs, 16) != sum(payload) & 0xFF:
                    conn.sendall(b"-")
                    continue
                conn.sendall(b"+")
                reply = self._answer(payload)
                if payload != b"c":
                    conn.sendall(b"$" + reply + b"#%02x" % (sum(reply) & 0xFF))


def test_vflash_path_of_a_server_with_a_memory_map(tmp_path):
    # 0x4100 bytes of flash from 0x08000100 (3 erase blocks, bytes the escape must carry),
    # and a RAM segment, as a .data/.ramfunc image would have
    code = bytes((i * 7 + 35) % 256 for i in range(0x4100))
    assert {ord(c) for c in "#$}*"} <= set(code)
    ramdata = b"}#$*" * 16
    elf = _write(tmp_path / "fw.elf", _elf([(0x08000100, code, len(code)),
                                             (0x20000040, ramdata, len(ramdata))]))
    stub = FlashStub()
    result = flash(elf, gdb=stub.address, server="auto")
    assert result.server == "openocd" and result.verified and result.running
    assert result.flash_regions == 1
    assert stub.flash[0x100:0x100 + len(code)] == code
    assert stub.flash[:0x100] == b"\xff" * 0x100                     # erased, not written
    assert stub.flash[0xC000:] == b"\xa5" * 0x4000                   # block 4 untouched
    assert stub.ram[0x40:0x40 + len(ramdata)] == ramdata
    assert stub.log.count("vFlashDone") == 1
    assert stub.log.count("monitor reset halt") == 2                 # before load, to run
    assert stub.log[-1] == "c"


def test_server_kind_is_checked():
    stub = FlashStub()
    with pytest.raises(FlashError, match="unknown gdbserver kind 'gdb'"):
        flash(_write_tmp_elf(), gdb=stub.address, server="gdb")


def _write_tmp_elf() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "t.elf"
    return _write(path, _elf([(0x20000000, b"\x01\x02", 2)]))


# ---- pyOCD ----------------------------------------------------------------------------------------
def test_pyocd_without_a_probe_says_so(tmp_path):
    pytest.importorskip("pyocd")
    elf = _write(tmp_path / "fw.elf", _elf([(0x08000000, b"\x01" * 8, 8)]))
    from edgespike.device import flashing

    if flashing.list_probes():
        pytest.skip("a debug probe is connected to this machine")
    with pytest.raises(ProbeNotFound, match="no debug probe found"):
        flash(elf, probe="auto", target="stm32f405rg")
    assert cli.main(["flash", str(elf), "--probe"]) == 1


def test_pyocd_missing_names_the_extra(tmp_path, monkeypatch):
    elf = _write(tmp_path / "fw.elf", _elf([(0x08000000, b"\x01" * 8, 8)]))
    monkeypatch.setitem(sys.modules, "pyocd.core.helpers", None)  # import fails
    with pytest.raises(ToolMissing, match=r"pip install 'edgespike\[pyocd\]'"):
        flash(elf, probe="auto")


def test_flash_needs_exactly_one_way(tmp_path):
    elf = _write(tmp_path / "fw.elf", _elf([(0x08000000, b"\x01" * 8, 8)]))
    with pytest.raises(FlashError, match="say how to reach the board"):
        flash(elf)
    with pytest.raises(FlashError, match="not both"):
        flash(elf, gdb=":1234", probe="auto")
    assert cli.main(["flash", str(elf)]) == 1
    assert cli.main(["flash", "--gdb", ":1"]) == 1  # no image named


def test_split_and_erase_ranges():
    from edgespike.device.flashing import _erase_range, _split
    from edgespike.device.gdbremote import MemoryRegion

    regions = [MemoryRegion("flash", 0x1000, 0x3000, 0x1000), MemoryRegion("ram", 0x8000, 0x100)]
    seg = Segment(0x800, bytes(range(256)) * 16)  # 0x800..0x1800: RAM-ish part, then flash
    parts = _split(seg, regions)
    assert [(p.address, len(p.data), r is not None) for p, r in parts] == [
        (0x800, 0x800, False), (0x1000, 0x800, True)]
    assert b"".join(p.data for p, _ in parts) == seg.data
    assert _erase_range(parts[1][0], regions[0]) == (0x1000, 0x1000)
    assert _erase_range(Segment(0x1fff, b"ab"), regions[0]) == (0x1000, 0x2000)


@qemu_test
def test_cli_emulator_start_gdb_then_flash(tmp_path, capsys):
    """edgespike emulator start --gdb --detach: an empty halted board to flash like a real one."""
    pid_file = tmp_path / "emu.json"
    assert cli.main(["emulator", "start", "--gdb", "--detach", "--pid-file", str(pid_file),
                     "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    try:
        assert record["gdb"].startswith("127.0.0.1:") and record["url"].startswith("socket://")
        assert cli.main(["flash", str(_mps2()), "--gdb", record["gdb"], "--port",
                         record["url"]]) == 0
        assert "answers Hello with build id " + read_elf(_mps2()).build_id in \
            capsys.readouterr().out
    finally:
        assert cli.main(["emulator", "stop", "--pid-file", str(pid_file)]) == 0
