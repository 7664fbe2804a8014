"""The protocol client: one :class:`Device` per link (protocol/edgespike.proto, FRAMING.md).

Every request is a ``Frame`` with a fresh sequence number and this link session's number (a
random non-zero ``session`` picked per :class:`Device`); the device answers with a ``Frame``
carrying the same ``seq`` and ``session`` (FRAMING.md "Sessions"). Frames of another session
(left on the wire by an earlier host) and replies with another seq (stale answers to requests
that timed out, unsolicited frames) are logged and skipped. An ``Error`` reply raises
:class:`DeviceRejected`. Every wait has a deadline.

    with open_device(board="mps2-an386") as dev:      # edgespike.device.emulator.open_device
        print(dev.info())
        dev.deploy(model)
        out = dev.run(x)                                # x: (timesteps, input_size) integers
        for d in dev.stream(xs, speed="10x"):           # live streaming (docs/streaming.md)
            print(d.prediction, d.latency_s)
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from edgespike.errors import (
    DeviceBusy, DeviceRejected, DeviceTimeout, FramingError, InputError, ModelTooLarge,
)
from edgespike.model import Model, from_bytes, to_bytes
from edgespike.protocol import pb
from edgespike.protocol.framing import FrameDecoder, crc32, encode_frame
from edgespike.sim.reference import LayerCounters, RunOutput, check_input, events_from_spikes
from edgespike.sim.checks import check_events
from edgespike.device.transport import Transport

log = logging.getLogger(__name__)

#: 2: link sessions (Frame.session). Devices of protocol 1 are served too, without them.
PROTOCOL_VERSION = 3
#: The first protocol version whose devices take Run.static_input.
STATIC_INPUT_VERSION = 3
#: Seconds to wait for an answer unless told otherwise.
DEFAULT_TIMEOUT = 5.0
#: Seconds Device.open drains what an earlier session left on the link, at most.
RESYNC_LIMIT = 1.0
#: Chunk size used when the device reports none, in bytes.
FALLBACK_CHUNK_BYTES = 256
#: Bytes a ModelChunk frame needs beyond its data (seq, session, tags, offset, lengths).
_CHUNK_OVERHEAD = 32

_CYCLE_SOURCES = {
    "CYCLES_NONE": "none", "CYCLES_DWT": "dwt", "CYCLES_QEMU_ICOUNT": "qemu_icount",
    "CYCLES_HOST_NS": "host_ns",
}

ProgressFn = Callable[[int, int], None]


def cycle_source_name(value: int) -> str:
    """The protocol's CycleSource number as the SDK's short name (``"qemu_icount"``...)."""
    try:
        return _CYCLE_SOURCES.get(pb.CycleSource.Name(value), "unknown")
    except ValueError:
        return "unknown"


@dataclass
class DeviceInfo:
    """What a device says about itself (the ``DeviceInfo`` message). Sizes in bytes."""

    protocol_version: int = 0
    firmware_version: str = ""
    board: str = ""
    core: str = ""
    clock_hz: int = 0
    cycle_source: str = "none"
    model_capacity_bytes: int = 0
    state_capacity_bytes: int = 0
    max_layers: int = 0
    max_frame_bytes: int = 0
    max_chunk_bytes: int = 0
    max_input_items: int = 0
    max_outputs: int = 0
    model_loaded: bool = False
    model_crc32: int = 0
    model_bytes: int = 0
    state_bytes_used: int = 0
    flash_bytes: int = 0
    ram_bytes: int = 0
    #: the running image's GNU build id as hex ("" if the firmware reports none): what
    #: :func:`edgespike.device.flash` compares with the ELF it flashed
    build_id: str = ""

    @classmethod
    def from_pb(cls, msg: Any) -> "DeviceInfo":
        """Build from a protobuf ``DeviceInfo``."""
        special = ("cycle_source", "build_id")
        kw = {f.name: getattr(msg, f.name) for f in fields(cls) if f.name not in special}
        return cls(cycle_source=cycle_source_name(msg.cycle_source),
                   build_id=bytes(msg.build_id).hex(), **kw)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class DeviceStats:
    """The link's counters since the device booted (the ``Stats`` message)."""

    frames_ok: int = 0
    frames_bad_crc: int = 0
    frames_bad_cobs: int = 0
    frames_too_long: int = 0
    frames_stale: int = 0   # duplicated / late requests dropped (FRAMING.md "Sessions")
    errors_sent: int = 0
    runs: int = 0
    rx_overruns: int = 0
    uploads_committed: int = 0
    uploads_rejected: int = 0
    # streaming (docs/streaming.md)
    stream_batches: int = 0
    stream_items: int = 0
    stream_steps: int = 0
    stream_decisions: int = 0
    streams_started: int = 0
    streams_aborted: int = 0
    stream_gaps: int = 0

    @classmethod
    def from_pb(cls, msg: Any) -> "DeviceStats":
        """Build from a protobuf ``Stats`` (fields it lacks stay 0)."""
        return cls(**{f.name: getattr(msg, f.name, 0) for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class DeviceRunOutput(RunOutput):
    """A :class:`RunOutput` from a device.

    The device returns only the output layer's state: ``spikes`` holds one raster, the output
    layer's ``(timesteps, size)``, when spikes were recorded (so ``out.spikes[-1]`` means the
    same as for the reference), and is empty otherwise; ``u``/``v``/``th`` stay empty.
    ``counters[i].cycles`` and ``cycles`` are in units of ``cycle_source``.

    Attributes:
        output_events: the recorded output spikes as ``(step << 16) | index`` (uint32).
        spikes_truncated: the device had more output spikes than it could return.
    """

    output_events: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    spikes_truncated: bool = False


@dataclass
class DeployResult:
    """What :meth:`Device.deploy` did. ``skipped``: the device already held this blob."""

    blob_bytes: int
    crc32: int            # CRC-32 of the whole blob (ModelBegin.crc32)
    chunks: int
    seconds: float
    skipped: bool = False
    content_crc32: int = 0  # the blob's content hash (field 1000), as DeviceInfo.model_crc32


def content_hash(blob: bytes) -> int:
    """The blob's content hash: its last 4 bytes (docs/SEMANTICS.md, "Content hash").

    This is what a device reports as ``DeviceInfo.model_crc32`` for the model it holds.
    """
    return int.from_bytes(blob[-4:], "little")


def _rejected(err: Any) -> DeviceRejected:
    try:
        code = pb.ErrorCode.Name(err.code)
    except ValueError:
        code = f"ERR_{err.code}"
    if code == "ERR_BUSY":
        return DeviceBusy(err.message or "the device serves another host", err.detail)
    return DeviceRejected(code, err.message or "(no message)", err.detail)


def new_session() -> int:
    """A random link session number, 1..2^32-1 (FRAMING.md "Sessions")."""
    return secrets.randbelow(0xFFFFFFFF) + 1


class Device:
    """A connected device speaking the EdgeSpike link protocol; use as a context manager.

    Args:
        transport: an open :class:`Transport` (the device takes ownership).
        timeout: default seconds to wait for each answer.
        owner: an object with ``stop()`` (an emulator process) to stop when the device closes.

    Attributes:
        session: this link session's number, in every request frame.
        skipped_frames: frames read and dropped (bad, stale, unsolicited, another session's).
        foreign_frames: of those, frames of another session.
    """

    def __init__(self, transport: Transport, *, timeout: float = DEFAULT_TIMEOUT,
                 owner: Any = None) -> None:
        self.transport = transport
        self.timeout = timeout
        self.owner = owner
        self.model: Optional[Model] = None
        self.device_info: Optional[DeviceInfo] = None
        self._blob_crc: Optional[int] = None
        self._decoder = FrameDecoder()
        self._pending: list[bytes | FramingError] = []
        self._seq = 0
        self.session = new_session()
        self.skipped_frames = 0
        self.foreign_frames = 0

    @classmethod
    def open(cls, url: str, *, timeout: float = DEFAULT_TIMEOUT,
             connect_timeout: float = 5.0) -> "Device":
        """Connect to ``url`` (a serial port or ``socket://HOST:PORT``).

        A device that answers ``ERR_BUSY`` (the host device while another client holds it)
        is tried again until ``connect_timeout`` seconds have passed in all.

        Raises:
            LinkClosed: nothing to connect to (the message says why).
            DeviceBusy: the device stayed busy for ``connect_timeout`` seconds.
        """
        t0 = time.monotonic()
        deadline = t0 + connect_timeout
        delay = 0.05
        while True:
            dev = cls(Transport(url, connect_timeout=max(deadline - time.monotonic(), 0.0)),
                      timeout=timeout)
            try:
                dev.resync()
                return dev
            except DeviceBusy as exc:
                dev.close()
                if time.monotonic() >= deadline:
                    raise DeviceBusy(
                        f"{url} serves another client and stayed busy for "
                        f"{time.monotonic() - t0:.1f} s ({exc.device_message}); close the other "
                        "client or raise connect_timeout", exc.detail) from exc
                time.sleep(max(min(delay, deadline - time.monotonic()), 0.0))
                delay = min(delay * 1.5, 0.5)
            except BaseException:
                dev.close()
                raise

    def resync(self, quiet: float = 0.1, limit: float = RESYNC_LIMIT) -> None:
        """Send one 0x00 and drop what comes back until the link is quiet for ``quiet`` s, or
        for ``limit`` s at most.

        The 0x00 ends any partial frame a previous session (or a dropped connection) left in
        the device's receive buffer; an empty frame is skipped, but a cut frame is answered with
        an ``Error`` (seq 0), which must not be taken as the answer to the next request. Late
        frames of an old session (e.g. a stream's outputs) are dropped the same way, and those
        still coming after ``limit`` are told apart by their session. Raises
        :class:`DeviceBusy` if the device says it serves another host.
        """
        self.transport.write(b"\x00")
        self._decoder.reset()
        self._pending.clear()
        deadline = time.monotonic() + limit
        busy: Optional[DeviceBusy] = None
        while busy is None:
            left = deadline - time.monotonic()
            if left <= 0:
                log.info("%s: the device was still sending after %.1f s; its frames of an "
                         "earlier session are dropped by their session", self.transport.url, limit)
                return
            try:
                frame = self.read_frame(min(quiet, left))
            except DeviceTimeout:
                return
            if frame.WhichOneof("body") == "error" and frame.error.code == pb.ErrorCode.Value(
                    "ERR_BUSY"):
                busy = DeviceBusy(frame.error.message or "busy", frame.error.detail)
            else:
                self.skipped_frames += 1
        raise busy

    # -- life cycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the link, then stop the board process this device owns (if any)."""
        try:
            self.transport.close()
        finally:
            if self.owner is not None:
                owner, self.owner = self.owner, None
                owner.stop()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level ---------------------------------------------------------------------------
    def next_seq(self) -> int:
        """A fresh sequence number, 1..2^32-1 (0 is what the device uses for unreadable frames)."""
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    def send_raw(self, data: bytes) -> None:
        """Write bytes exactly as given (for tests of malformed input)."""
        self.transport.write(data)

    def send_frame(self, frame: Any) -> None:
        """Serialize, frame and send one ``Frame`` message (its seq as it is; its session
        this link's, unless it has one)."""
        if not frame.session:
            frame.session = self.session
        self.transport.write(encode_frame(frame.SerializeToString(deterministic=True)))

    def read_frame(self, timeout: Optional[float] = None) -> Any:
        """The next well-formed ``Frame`` of this session from the device, whatever its seq.

        Frames that fail CRC/COBS/protobuf, and frames of another session (left on the link
        by an earlier host), are logged and skipped; frames without a session (devices of
        protocol 1, answers to session-less requests) are returned. Raises
        :class:`DeviceTimeout` if none arrives in ``timeout`` seconds, :class:`LinkClosed`
        if the link drops.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                item = self._pending.pop(0)
                if isinstance(item, FramingError):
                    log.warning("skipping a bad frame from the device: %s", item)
                    self.skipped_frames += 1
                    continue
                msg = pb.Frame()
                try:
                    msg.ParseFromString(item)
                except Exception as exc:  # protobuf's DecodeError
                    log.warning("skipping a frame that does not decode: %s", exc)
                    self.skipped_frames += 1
                    continue
                if msg.session and msg.session != self.session:
                    log.info("skipping a frame of another session (%08x, seq %d, %s)",
                             msg.session, msg.seq, msg.WhichOneof("body"))
                    self.skipped_frames += 1
                    self.foreign_frames += 1
                    continue
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(
                    f"{self.transport.url}: no answer within {timeout:.1f} s; is the device "
                    "running the EdgeSpike link firmware (try 'edgespike info --port ...')?")
            data = self.transport.read(min(left, 0.5))
            if data:
                self._pending.extend(self._decoder.feed(data))

    def drain(self, quiet: float = 0.05, limit: float = 5.0) -> list[Any]:
        """Read and return every frame of this session that arrives until the link is quiet
        for ``quiet`` s, or for ``limit`` s at most (a device may never fall quiet)."""
        frames: list[Any] = []
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return frames
            try:
                frames.append(self.read_frame(min(quiet, left)))
            except DeviceTimeout:
                return frames

    def request_frame(self, frame: Any = None, *, timeout: Optional[float] = None,
                      raise_error: bool = True, **body: Any) -> Any:
        """Send a request and return the reply ``Frame`` with the same seq.

        Give either a ready ``Frame`` (its seq is replaced by a fresh one) or one body as a
        keyword: ``request_frame(hello=pb.Hello(protocol_version=1))``. An ``Error`` reply
        raises :class:`DeviceRejected` unless ``raise_error`` is False. An ``Error`` with seq 0
        (the device could not read a frame) also raises: it means our request was corrupted.
        """
        if frame is None:
            frame = pb.Frame()
            for name, msg in body.items():
                getattr(frame, name).CopyFrom(msg)
        elif body:
            raise TypeError("give a Frame or one body keyword, not both")
        seq = self.next_seq()
        frame.seq = seq
        self.send_frame(frame)
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                reply = self.read_frame(max(left, 0.0))
            except DeviceTimeout as exc:
                what = frame.WhichOneof("body") or "empty frame"
                raise DeviceTimeout(f"{self.transport.url}: no answer to {what} (seq {seq}) "
                                    f"within {timeout:.1f} s") from exc
            kind = reply.WhichOneof("body")
            if reply.seq == seq or (reply.seq == 0 and kind == "error"):
                if kind == "error" and raise_error:
                    raise _rejected(reply.error)
                return reply
            log.info("skipping a stale or unsolicited frame (seq %d, %s) while waiting for %d",
                     reply.seq, kind, seq)
            self.skipped_frames += 1

    def _expect(self, reply: Any, body: str) -> Any:
        kind = reply.WhichOneof("body")
        if kind != body:
            raise DeviceRejected("ERR_PROTOCOL", f"expected {body}, the device sent {kind}")
        return getattr(reply, body)

    # -- requests ----------------------------------------------------------------------------
    def hello(self) -> DeviceInfo:
        """Say hello; returns (and caches in :attr:`device_info`) the device's description."""
        reply = self.request_frame(hello=pb.Hello(protocol_version=PROTOCOL_VERSION))
        self.device_info = DeviceInfo.from_pb(self._expect(reply, "device_info"))
        version = self.device_info.protocol_version
        if version > PROTOCOL_VERSION:
            log.warning("device speaks protocol %d, this SDK %d: update the SDK", version,
                        PROTOCOL_VERSION)
        elif version < 2:
            log.info("device speaks protocol %d: no link sessions, so frames an earlier host "
                     "left on the link are told apart by seq only", version)
        return self.device_info

    info = hello

    def stats(self) -> DeviceStats:
        """The link's counters (frames good and bad, runs, uploads)."""
        return DeviceStats.from_pb(self._expect(self.request_frame(stats_request=pb.StatsRequest()),
                                                "stats"))

    def reset(self) -> None:
        """Ask the device to reset its link state (abandons an unfinished upload)."""
        self._expect(self.request_frame(reset=pb.Reset()), "ack")

    def _info(self) -> DeviceInfo:
        return self.device_info if self.device_info is not None else self.hello()

    def chunk_bytes(self) -> int:
        """Largest model chunk this device takes in one frame, in bytes."""
        info = self._info()
        size = info.max_chunk_bytes or FALLBACK_CHUNK_BYTES
        if info.max_frame_bytes:
            size = min(size, info.max_frame_bytes - _CHUNK_OVERHEAD)
        if size < 1:
            raise DeviceRejected("ERR_UNSUPPORTED", f"device frame limit {info.max_frame_bytes} "
                                 "bytes leaves no room for model chunks")
        return size

    def deploy(self, model: Model | bytes, *, chunk_bytes: Optional[int] = None,
               progress: Optional[ProgressFn] = None, force: bool = False,
               timeout: Optional[float] = None) -> DeployResult:
        """Upload a model (a :class:`Model` or blob bytes) with ModelBegin/Chunk/Commit.

        The device keeps running its previous model until the commit succeeds. Skips the
        upload when the device already holds the same blob (same CRC and size) unless
        ``force``. ``progress(bytes_sent, total_bytes)`` is called after every chunk.

        Raises:
            ModelTooLarge: the blob exceeds the device's model capacity.
            DeviceRejected: the device refused the model (code says why, e.g. ERR_MODEL_INVALID).
        """
        t0 = time.monotonic()
        if isinstance(model, Model):
            blob = to_bytes(model)
        else:
            blob = bytes(model)
            model = from_bytes(blob)
        info = self._info()
        crc = crc32(blob)
        chash = content_hash(blob)
        if info.model_capacity_bytes and len(blob) > info.model_capacity_bytes:
            raise ModelTooLarge(
                f"model blob is {len(blob)} bytes; {info.board or 'the device'} takes at most "
                f"{info.model_capacity_bytes} bytes. Use fewer or smaller layers, or ternary "
                "weights (edgespike quantize --weights ternary)")
        if (not force and info.model_loaded and info.model_crc32 == chash
                and info.model_bytes == len(blob)):
            self.model, self._blob_crc = model, crc
            return DeployResult(len(blob), crc, 0, time.monotonic() - t0, skipped=True,
                                content_crc32=chash)
        size = chunk_bytes or self.chunk_bytes()
        timeout = self.timeout if timeout is None else timeout
        # the device's copy is gone from here on if the upload fails half-way: forget it
        self.device_info = None
        self._expect(self.request_frame(model_begin=pb.ModelBegin(total_bytes=len(blob), crc32=crc),
                                        timeout=timeout), "ack")
        chunks = 0
        for off in range(0, len(blob), size):
            piece = blob[off:off + size]
            ack = self._expect(self.request_frame(
                model_chunk=pb.ModelChunk(offset=off, data=piece), timeout=timeout), "ack")
            chunks += 1
            if ack.value != off + len(piece):
                raise DeviceRejected("ERR_UPLOAD_OFFSET", f"device acknowledged {ack.value} bytes "
                                     f"after chunk at {off} (+{len(piece)})", off)
            if progress is not None:
                progress(off + len(piece), len(blob))
        self._expect(self.request_frame(model_commit=pb.ModelCommit(), timeout=timeout), "ack")
        self.model, self._blob_crc = model, crc
        return DeployResult(len(blob), crc, chunks, time.monotonic() - t0, content_crc32=chash)

    def encode_input(self, x: np.ndarray, model: Optional[Model] = None) -> Any:
        """One input as a ``Run`` message (spike raster to sorted events, values flattened).

        ``x`` is ``(timesteps, input_size)``; for spike models it may also be a 1-D array of
        ready events ``(step << 16) | index``. A direct-input model's input that is the same at
        every step (a still image) is sent once, as ``static_input``, when the device takes it
        (protocol 3): fewer bytes on the link, and the device computes the first layer once.
        Raises :class:`InputError` if it does not fit.
        """
        model = model or self.model
        if model is None:
            raise InputError("no model known for this device: deploy one first "
                             "(Device.deploy) or pass model=")
        x = np.asarray(x)
        msg = pb.Run()
        if model.input_kind == "spikes":
            if x.ndim == 1:
                ev = check_events(x, model.timesteps, model.input_size)
                ev = np.sort(ev)  # (step << 16) | index: numeric order is step order
            else:
                ev = events_from_spikes(check_input(model, x))
            msg.events.extend(int(e) for e in ev)
            items = len(msg.events)
        else:
            xv = check_input(model, x)
            still = xv.shape[0] > 1 and bool((xv == xv[:1]).all())
            info = self.device_info if self.device_info is not None or not still else self.hello()
            if still and info.protocol_version >= STATIC_INPUT_VERSION:
                msg.static_input = True
                xv = xv[:1]
            msg.values.extend(int(v) for v in xv.reshape(-1))
            items = len(msg.values)
        info = self.device_info
        if info is not None and info.max_input_items and items > info.max_input_items:
            raise InputError(f"input has {items} items; {info.board or 'the device'} takes at "
                             f"most {info.max_input_items} per run. Use fewer time steps or a "
                             "sparser encoding")
        return msg

    def run(self, x: np.ndarray, *, record_spikes: bool = False, model: Optional[Model] = None,
            timeout: Optional[float] = None) -> DeviceRunOutput:
        """One inference on the deployed model; returns a :class:`DeviceRunOutput`."""
        model = model or self.model
        if self.device_info is None:
            self.hello()  # its limits and protocol version shape the Run message
        msg = self.encode_input(x, model)
        msg.record_spikes = record_spikes
        info = self.device_info
        assert info is not None
        frame = pb.Frame(run=msg, session=self.session)
        if info.max_frame_bytes and frame.ByteSize() + 6 > info.max_frame_bytes:
            raise InputError(f"input needs a {frame.ByteSize()}-byte frame; the device takes "
                             f"{info.max_frame_bytes}. Use fewer time steps or fewer events")
        reply = self.request_frame(frame, timeout=timeout)
        return self._decode_result(self._expect(reply, "run_result"), model, record_spikes)

    @staticmethod
    def _decode_result(res: Any, model: Optional[Model], recorded: bool) -> DeviceRunOutput:
        src = cycle_source_name(res.cycle_source)
        counters = [LayerCounters(input_events=s.input_events, synops=s.synops,
                                  neuron_updates=s.neuron_updates, spikes=s.spikes,
                                  cycles=s.cycles) for s in res.layers]
        events = np.array(list(res.output_spikes), dtype=np.uint32)
        spikes: list[np.ndarray] = []
        if model is not None and (recorded or len(events)):
            raster = np.zeros((model.timesteps, model.output_size), dtype=np.uint8)
            t, i = events >> 16, events & 0xFFFF
            ok = (t < model.timesteps) & (i < model.output_size)
            raster[t[ok], i[ok]] = 1
            spikes = [raster]
        return DeviceRunOutput(
            prediction=int(res.prediction), scores=np.array(list(res.scores), dtype=np.int64),
            counters=counters, cycles=int(res.cycles), cycle_source=src, spikes=spikes,
            output_events=events, spikes_truncated=bool(res.spikes_truncated))

    def stream(self, source: Any, *, speed: Optional[float | str] = None, window: int = 0,
               hop: int = 0, step_us: Optional[int] = None, free_run: Optional[bool] = None,
               record_spikes: bool = False, raw: Optional[bool] = None,
               thresholds: Optional[Sequence[int]] = None, batch_steps: Optional[int] = None,
               idle_timeout_ms: int = 0, model: Optional[Model] = None,
               timeout: Optional[float] = None) -> Any:
        """Stream ``source`` through the deployed model; returns a
        :class:`edgespike.stream.StreamSession`: iterate it for decisions (docs/streaming.md).

        Args:
            source: an :mod:`edgespike.stream.sources` Source, a numpy array ``(steps, width)``
                or ``(n, steps, width)``, or any iterable of per-step rows.
            speed: for arrays: replay at ``speed`` x real time (the model's ``dt_us`` per
                step), e.g. ``10`` or ``"10x"``; None: as fast as the device takes them.
            window, hop: decision window and hop in steps (0: the model's / per-window).
            step_us: the device's step period (default: the source's pace, else dt_us).
            free_run: the device runs steps as soon as they arrive, unpaced (default: when
                the source is unpaced).
            raw: the rows are raw integer samples the device delta-encodes with
                ``thresholds`` (default: the model's encoder thresholds).
            batch_steps: steps per EventBatch (default: 1 for paced sources, else as many as
                fit a batch).
        """
        from edgespike.stream.session import StreamSession
        from edgespike.stream.sources import ReplaySource, Source, as_source

        if model is not None:
            self.model = model
        if self.model is None:
            raise InputError("no model known for this device: deploy one first (Device.deploy)")
        if self.device_info is None:
            self.hello()
        if isinstance(source, Source):
            src = source
            if raw is not None:
                src.raw = raw
        elif speed is not None and isinstance(source, np.ndarray):
            src = ReplaySource(source, self.model.dt_us / 1e6, speed, raw=bool(raw))
        else:
            src = as_source(source, raw=bool(raw))
        if step_us is None:
            step_us = int(round(src.step_s * 1e6)) if src.step_s is not None else 0
        if free_run is None:
            free_run = src.step_s is None
        return StreamSession(self, src, window=window, hop=hop, step_us=step_us,
                             free_run=free_run, record_spikes=record_spikes,
                             thresholds=list(thresholds) if thresholds is not None else None,
                             batch_steps=batch_steps, idle_timeout_ms=idle_timeout_ms,
                             timeout=timeout)

    def stream_stats(self) -> dict[str, int]:
        """The device's streaming counters (``Stats`` fields ``stream_*``/``streams_*``)."""
        msg = self._expect(self.request_frame(stats_request=pb.StatsRequest()), "stats")
        return {f.name: getattr(msg, f.name) for f in msg.DESCRIPTOR.fields
                if f.name.startswith("stream")}

    def run_batch(self, inputs: Iterable[np.ndarray] | np.ndarray, *, record_spikes: bool = False,
                  progress: Optional[ProgressFn] = None,
                  model: Optional[Model] = None) -> list[DeviceRunOutput]:
        """Run every input of a batch (``n x timesteps x input_size``) one after the other.

        ``progress(done, total)`` is called after every inference.
        """
        seq: Sequence[np.ndarray] = list(inputs)
        out = []
        for k, x in enumerate(seq):
            out.append(self.run(x, record_spikes=record_spikes, model=model))
            if progress is not None:
                progress(k + 1, len(seq))
        return out

