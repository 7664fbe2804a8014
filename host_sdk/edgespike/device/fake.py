"""An in-process device that speaks the link protocol, for tests of the host side.

:class:`FakeDevice` serves one TCP connection at a time on 127.0.0.1 from a thread and answers
like the link firmware (protocol/FRAMING.md): chunked upload into a staging buffer that only
replaces the active model on a valid commit, runs computed by the numpy reference
(:mod:`edgespike.sim.reference`), Error frames for everything it rejects. It is NOT a
substitute for the firmware (the hil/ suite runs the real one); it lets the client's seq and
session matching, timeouts, retries and error paths be tested in milliseconds, and it can
misbehave on purpose (``delay_s``, ``drop_after``, ``stale_before_reply``,
``ghost_before_reply``, ``chatter_s``, ``mute``). Like the firmware it echoes each request's
link session, and an upload belongs to the session that began it (FRAMING.md "Sessions").
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from edgespike.errors import EdgeSpikeError, FramingError
from edgespike.model import Model, from_bytes
from edgespike.protocol import pb
from edgespike.protocol.framing import FrameDecoder, crc32, encode_frame
from edgespike.sim import reference

log = logging.getLogger(__name__)


@dataclass
class FakeConfig:
    """Limits and misbehaviour of a :class:`FakeDevice` (sizes in bytes, times in s)."""

    model_capacity_bytes: int = 16384
    max_frame_bytes: int = 2048
    max_chunk_bytes: int = 256
    max_input_items: int = 4096
    max_outputs: int = 512
    delay_s: float = 0.0             # wait before every reply
    drop_after: Optional[int] = None  # close the connection after this many requests
    stale_before_reply: bool = False  # send a frame with a wrong seq before each reply
    # before each reply, an OutputBatch with the reply's seq from an earlier session (as a
    # board sends one left from a host that vanished mid-stream)
    ghost_before_reply: bool = False
    chatter_s: float = 0.0           # > 0: send such an OutputBatch this often, for ever
    sessions: bool = True            # protocol 2 (echo Frame.session); False: protocol 1
    mute: bool = False               # read requests, never answer
    log: list[str] = field(default_factory=list)  # bodies received, in order


class FakeDevice:
    """A protocol-level device simulator on a loopback TCP port; use as a context manager."""

    def __init__(self, config: Optional[FakeConfig] = None) -> None:
        self.config = config or FakeConfig()
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(1)
        self._srv.settimeout(0.1)
        self.port = int(self._srv.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-device", daemon=True)
        self.model: Optional[Model] = None
        self.model_blob = b""
        self._staging: Optional[bytearray] = None
        self._staging_total = 0
        self._staging_crc = 0
        self.stats = pb.Stats()
        self.requests = 0
        self.session = 0          # session of the last request
        self.ghost_session = 0x0BAD5E55

    @property
    def url(self) -> str:
        """``socket://127.0.0.1:PORT``."""
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> "FakeDevice":
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._srv.close()

    def __enter__(self) -> "FakeDevice":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(0.1)
                self._session(conn)

    def _ghost(self, seq: int) -> Any:
        return pb.Frame(seq=seq, session=self.ghost_session,
                        output_batch=pb.OutputBatch(out_seq=7, acked_seq=3, credit_limit=11))

    def _session(self, conn: socket.socket) -> None:
        decoder = FrameDecoder()
        chatter = self.config.chatter_s
        if chatter:
            conn.settimeout(min(0.1, chatter))
        next_chatter = time.monotonic()
        while not self._stop.is_set():
            if chatter and time.monotonic() >= next_chatter:
                next_chatter = time.monotonic() + chatter
                try:
                    conn.sendall(encode_frame(self._ghost(1).SerializeToString()))
                except OSError:
                    return
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            for item in decoder.feed(data):
                replies = self._handle(item)
                if self.config.sessions:
                    for frame in replies:
                        if not frame.HasField("output_batch"):
                            frame.session = self.session
                if self.config.mute:
                    continue
                if self.config.delay_s:
                    time.sleep(self.config.delay_s)
                try:
                    for frame in replies:
                        conn.sendall(encode_frame(frame.SerializeToString(deterministic=True)))
                except OSError:
                    return
                if self.config.drop_after is not None and self.requests >= self.config.drop_after:
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def _error(self, seq: int, code: str, message: str, detail: int = 0) -> Any:
        self.stats.errors_sent += 1
        return pb.Frame(seq=seq, error=pb.Error(code=pb.ErrorCode.Value(code), message=message,
                                                detail=detail))

    def _handle(self, item: bytes | FramingError) -> list[Any]:
        if isinstance(item, FramingError):
            code = getattr(item, "code", "ERR_BAD_FRAME")
            if code == "ERR_BAD_CRC":
                self.stats.frames_bad_crc += 1
            else:
                self.stats.frames_bad_cobs += 1
            return [self._error(0, code, str(item))]
        req = pb.Frame()
        try:
            req.ParseFromString(item)
        except Exception as exc:  # protobuf's DecodeError
            return [self._error(0, "ERR_DECODE", f"frame does not decode: {exc}")]
        self.stats.frames_ok += 1
        self.requests += 1
        if self.config.sessions and req.session != self.session:
            self.session = req.session
            self._staging = None  # an upload belongs to the session that began it
        kind = req.WhichOneof("body")
        self.config.log.append(kind or "")
        reply = self._answer(req, kind)
        out = []
        if self.config.stale_before_reply:
            out.append(pb.Frame(seq=(req.seq + 1000) & 0xFFFFFFFF, ack=pb.Ack(value=99)))
        if self.config.ghost_before_reply:
            out.append(self._ghost(req.seq))
        out.append(reply)
        return out

    def _info(self) -> Any:
        c = self.config
        return pb.DeviceInfo(
            protocol_version=2 if c.sessions else 1, firmware_version="fake-0", board="fake",
            core="python",
            cycle_source=pb.CycleSource.Value("CYCLES_NONE"),
            model_capacity_bytes=c.model_capacity_bytes, state_capacity_bytes=1 << 20,
            max_layers=8, max_frame_bytes=c.max_frame_bytes, max_chunk_bytes=c.max_chunk_bytes,
            max_input_items=c.max_input_items, max_outputs=c.max_outputs,
            model_loaded=self.model is not None,
            model_crc32=int.from_bytes(self.model_blob[-4:], "little") if self.model else 0,
            model_bytes=len(self.model_blob))

    def _answer(self, req: Any, kind: Optional[str]) -> Any:
        seq = req.seq
        if kind == "hello":
            return pb.Frame(seq=seq, device_info=self._info())
        if kind == "stats_request":
            return pb.Frame(seq=seq, stats=self.stats)
        if kind == "reset":
            self._staging = None
            return pb.Frame(seq=seq, ack=pb.Ack())
        if kind == "model_begin":
            total = req.model_begin.total_bytes
            self._staging = None
            if total > self.config.model_capacity_bytes:
                self.stats.uploads_rejected += 1
                return self._error(seq, "ERR_MODEL_TOO_LARGE",
                                   f"{total} bytes > capacity {self.config.model_capacity_bytes}",
                                   self.config.model_capacity_bytes)
            self._staging = bytearray()
            self._staging_total, self._staging_crc = total, req.model_begin.crc32
            return pb.Frame(seq=seq, ack=pb.Ack(value=0))
        if kind == "model_chunk":
            if self._staging is None:
                return self._error(seq, "ERR_UPLOAD_NOT_STARTED", "chunk without ModelBegin")
            ch = req.model_chunk
            if ch.offset != len(self._staging):
                return self._error(seq, "ERR_UPLOAD_OFFSET",
                                   f"chunk at {ch.offset}, expected {len(self._staging)}",
                                   len(self._staging))
            if len(self._staging) + len(ch.data) > self._staging_total:
                return self._error(seq, "ERR_UPLOAD_OFFSET", "chunk past total_bytes",
                                   len(self._staging))
            self._staging += ch.data
            return pb.Frame(seq=seq, ack=pb.Ack(value=len(self._staging)))
        if kind == "model_commit":
            if self._staging is None:
                return self._error(seq, "ERR_UPLOAD_NOT_STARTED", "commit without ModelBegin")
            blob = bytes(self._staging)
            if len(blob) != self._staging_total:
                return self._error(seq, "ERR_UPLOAD_INCOMPLETE",
                                   f"{len(blob)} of {self._staging_total} bytes", len(blob))
            self._staging = None
            if crc32(blob) != self._staging_crc:
                self.stats.uploads_rejected += 1
                return self._error(seq, "ERR_MODEL_CRC", "blob CRC differs from ModelBegin")
            try:
                model = from_bytes(blob)
            except EdgeSpikeError as exc:
                self.stats.uploads_rejected += 1
                return self._error(seq, "ERR_MODEL_INVALID", str(exc)[:90])
            self.model, self.model_blob = model, blob
            self.stats.uploads_committed += 1
            return pb.Frame(seq=seq, ack=pb.Ack(value=len(blob)))
        if kind == "run":
            return self._run(seq, req.run)
        return self._error(seq, "ERR_UNKNOWN_MESSAGE", f"no handler for {kind or 'an empty frame'}")

    def _run(self, seq: int, run: Any) -> Any:
        m = self.model
        if m is None:
            return self._error(seq, "ERR_NO_MODEL", "no model committed")
        if m.input_kind == "spikes":
            ev = np.array(list(run.events), dtype=np.uint32)
            try:
                x = reference.spikes_from_events(ev, m.timesteps, m.input_size)
            except EdgeSpikeError as exc:
                return self._error(seq, "ERR_BAD_INPUT", str(exc))
        else:
            vals = np.array(list(run.values), dtype=np.int64)
            if vals.size != m.timesteps * m.input_size:
                return self._error(seq, "ERR_BAD_INPUT", f"{vals.size} values", int(vals.size))
            if vals.size and np.abs(vals).max() > m.input_max_abs:
                return self._error(seq, "ERR_BAD_INPUT", "value out of range")
            x = vals.reshape(m.timesteps, m.input_size)
        out = reference.run(m, x)
        self.stats.runs += 1
        res = pb.RunResult(prediction=out.prediction, scores=[int(s) for s in out.scores],
                           cycle_source=pb.CycleSource.Value("CYCLES_NONE"))
        for c in out.counters:
            res.layers.add(input_events=c.input_events, synops=c.synops,
                           neuron_updates=c.neuron_updates, spikes=c.spikes)
        if run.record_spikes:
            ev = reference.events_from_spikes(out.spikes[-1])
            res.output_spikes.extend(int(e) for e in ev[: self.config.max_outputs])
            res.spikes_truncated = len(ev) > self.config.max_outputs
        return pb.Frame(seq=seq, run_result=res)
