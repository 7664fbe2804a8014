"""The host side of a live stream (protocol/FRAMING.md, "Streaming"): :class:`StreamSession`.

``Device.stream(source)`` returns one; iterate it for :class:`StreamDecision` objects. The
session batches the source's steps into ``EventBatch`` frames, never sends a batch beyond
the device's credit (it reads ``OutputBatch`` frames until credit comes back; the time spent
waiting is ``stats.credit_wait_s``), checks every sequence number, and at the end of the
source waits for the last batch to be acknowledged, then stops the stream.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional

import numpy as np

from edgespike.errors import (
    DeviceRejected, DeviceTimeout, InputError, LinkClosed, StreamGap, StreamInterrupted,
)
from edgespike.protocol import pb
from edgespike.stream.sources import ArraySource, Source, check_row, check_rows, check_thresholds

if TYPE_CHECKING:  # pragma: no cover
    from edgespike.device.client import Device

log = logging.getLogger(__name__)

#: Bytes an EventBatch frame needs beyond its items (tags, seq, counts, COBS, CRC).
_BATCH_OVERHEAD = 64


@dataclass
class StreamDecision:
    """One decision of a live stream.

    Attributes:
        index: decisions since the stream started (0, 1, ...).
        end_step: the stream step that closed the window.
        prediction, scores: as :class:`edgespike.sim.reference.RunOutput`.
        label: the model's label for ``prediction`` ("" when it has none).
        device_time: the device clock when it decided (``cycle_source`` units: ns on the
            host device and under QEMU -icount).
        device_latency: device clock from the arrival of the batch holding ``end_step`` to
            the decision (same units).
        latency_s: host clock from sending that batch to receiving the decision.
        received: host monotonic time (s) when the decision arrived.
    """

    index: int
    end_step: int
    prediction: int
    scores: np.ndarray
    label: str = ""
    device_time: int = 0
    device_latency: int = 0
    latency_s: float = 0.0
    received: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"index": self.index, "end_step": self.end_step, "prediction": self.prediction,
                "label": self.label, "scores": [int(s) for s in self.scores],
                "device_time": self.device_time, "device_latency": self.device_latency,
                "latency_ms": round(self.latency_s * 1000.0, 3)}


@dataclass
class StreamStats:
    """What a stream did, host side, plus the device's last counters."""

    steps_sent: int = 0
    items_sent: int = 0           # events / values / samples in the batches sent
    events_sent: int = 0          # non-zero input items (spikes, non-zero values / samples)
    batches_sent: int = 0
    last_sent_seq: int = 0
    last_acked_seq: int = 0
    credit_limit: int = 0
    credit_waits: int = 0         # times a batch was ready but had no credit
    credit_wait_s: float = 0.0    # host time held back by flow control
    max_in_flight: int = 0        # most batches sent but not yet acknowledged
    pace_wait_s: float = 0.0      # host time sleeping for real-time pacing
    outputs: int = 0              # OutputBatch frames received
    decisions: int = 0
    device_steps: int = 0         # the device's own counters, from its last OutputBatch
    device_items: int = 0
    device_batches: int = 0
    device_stalls: int = 0
    window: int = 0
    hop: int = 0
    step_us: int = 0
    started: float = 0.0          # host monotonic time at StreamStart
    ended: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started if self.started else 0.0

    @property
    def events_per_s(self) -> float:
        s = self.seconds
        return self.events_sent / s if s > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        s = self.seconds
        return self.items_sent / s if s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "latencies_s"}
        lat = np.array(self.latencies_s) * 1000.0
        d.update(seconds=round(self.seconds, 4), events_per_s=round(self.events_per_s, 1),
                 latency_ms_median=round(float(np.median(lat)), 3) if lat.size else None,
                 latency_ms_p99=round(float(np.percentile(lat, 99)), 3) if lat.size else None)
        return d


class StreamSession:
    """One live stream on a device; iterate it for decisions (see module docstring).

    Raises (while iterating): :class:`StreamInterrupted` (link dropped or device silent,
    with the last acknowledged batch), :class:`StreamGap` (a sequence gap either way),
    :class:`DeviceRejected` (the device refused the stream or a batch).
    """

    def __init__(self, device: "Device", source: Source, *, window: int = 0, hop: int = 0,
                 step_us: int = 0, free_run: bool = False, record_spikes: bool = False,
                 thresholds: Optional[list[int]] = None, batch_steps: Optional[int] = None,
                 idle_timeout_ms: int = 0, timeout: Optional[float] = None,
                 credit_limit: Optional[int] = None) -> None:
        model = device.model
        if model is None:
            raise InputError("no model known for this device: deploy one first (Device.deploy)")
        self.dev = device
        self.model = model
        self.source = source
        self.raw = bool(source.raw)
        self.thresholds = check_thresholds(thresholds) if thresholds is not None else (
            [int(t) for t in model.encoder.thresholds] if self.raw else [])
        if self.raw and not self.thresholds:
            raise InputError("raw samples need delta thresholds: the model's encoder has none; "
                             "pass thresholds=")
        self.width = len(self.thresholds) if self.raw else model.input_size
        if isinstance(source, ArraySource):  # known rows: refuse a bad one before starting
            check_rows(source.x, self.width, "raw" if self.raw else model.input_kind,
                       int(model.input_max_abs))
        self.window, self.hop, self.step_us = window, hop, step_us
        self.free_run, self.record_spikes = free_run, record_spikes
        self.batch_steps = batch_steps
        self.idle_timeout_ms = idle_timeout_ms
        self.timeout = timeout if timeout is not None else max(device.timeout, 5.0)
        self.host_credit_cap = credit_limit  # tests: send less than the device grants
        self.stats = StreamStats()
        self.spikes: list[tuple[int, int]] = []   # (stream step, output index), record_spikes
        self.spikes_truncated = False
        self._ready: list[StreamDecision] = []
        self._start_seq = 0
        self._frame_seqs: set[int] = set()
        self._out_seq = 0
        self._final = False
        self._sent_at: dict[int, float] = {}
        self._progress_timeout = self.timeout

    # -- frames ------------------------------------------------------------------------------
    def _interrupted(self, why: str, exc: Optional[BaseException] = None) -> StreamInterrupted:
        err = StreamInterrupted(why, self.stats.last_acked_seq, self.stats.last_sent_seq)
        if exc is not None:
            err.__cause__ = exc
        return err

    def _send(self, **body: Any) -> int:
        frame = pb.Frame()
        for name, msg in body.items():
            getattr(frame, name).CopyFrom(msg)
        frame.seq = self.dev.next_seq()
        self._frame_seqs.add(frame.seq)
        if len(self._frame_seqs) > 4096:  # bounded: the start and the latest batches
            keep = sorted(self._frame_seqs)[-1024:]
            self._frame_seqs = set(keep) | {self._start_seq}
        try:
            self.dev.send_frame(frame)
        except (LinkClosed, DeviceTimeout, OSError) as exc:
            raise self._interrupted(f"link lost while sending: {exc}", exc) from exc
        return frame.seq

    def _read(self, timeout: float) -> bool:
        """Read one frame (up to ``timeout`` s) and handle it; False if none came."""
        try:
            reply = self.dev.read_frame(timeout)
        except DeviceTimeout:
            return False
        except (LinkClosed, OSError) as exc:
            raise self._interrupted(f"link lost while streaming: {exc}", exc) from exc
        kind = reply.WhichOneof("body")
        if kind == "error" and (reply.seq in self._frame_seqs or reply.seq == 0):
            e = reply.error
            name = pb.ErrorCode.Name(e.code) if e.code in pb.ErrorCode.values() else str(e.code)
            if name == "ERR_STREAM_GAP":
                raise StreamGap(f"the device saw a sequence gap: {e.message}", e.detail)
            if name == "ERR_NOT_STREAMING" and self._out_seq:
                raise self._interrupted("the device had ended the stream (stall timeout: "
                                        "raise idle_timeout_ms for sources that pause)")
            raise DeviceRejected(name, e.message or "(no message)", e.detail)
        if kind != "output_batch" or reply.seq not in self._frame_seqs:
            log.info("stream: skipping a frame (seq %d, %s)", reply.seq, kind)
            self.dev.skipped_frames += 1
            return True
        self._on_output(reply.output_batch)
        return True

    def _on_output(self, o: Any) -> None:
        now = time.monotonic()
        if o.out_seq <= self._out_seq:
            # a copy of one already taken (the wire duplicated it): counted once, not twice
            log.info("stream: skipping a repeated OutputBatch (out_seq %d)", o.out_seq)
            self.dev.skipped_frames += 1
            return
        if o.out_seq != self._out_seq + 1:
            raise StreamGap("an OutputBatch from the device was lost", self._out_seq + 1,
                            o.out_seq)
        self._out_seq = o.out_seq
        st = self.stats
        st.outputs += 1
        st.last_acked_seq = max(st.last_acked_seq, o.acked_seq)
        st.credit_limit = o.credit_limit
        st.device_steps, st.device_items = o.steps_run, o.items_received
        st.device_batches, st.device_stalls = o.batches_received, o.stalls
        if o.max_batch_steps:
            self.max_batch_steps, self.max_batch_items = o.max_batch_steps, o.max_batch_items
            st.window, st.hop, st.step_us = o.window, o.hop, o.step_us
        labels = self.model.labels
        for d in o.decisions:
            sent = self._sent_at.get(d.host_time_us)
            lat = now - sent if sent is not None else 0.0
            pred = int(d.prediction)
            self._ready.append(StreamDecision(
                index=d.index, end_step=d.end_step, prediction=pred,
                scores=np.array(list(d.scores), dtype=np.int64),
                label=labels[pred] if 0 <= pred < len(labels) else "",
                device_time=int(d.device_time),
                device_latency=int(d.device_time - d.input_time), latency_s=lat, received=now))
            st.decisions += 1
            if sent is not None:
                st.latencies_s.append(lat)
        for ev in o.output_spikes:
            self.spikes.append((o.spikes_first_step + (ev >> 16), ev & 0xFFFF))
        self.spikes_truncated |= bool(o.spikes_truncated)
        if o.final:
            self._final = True

    # -- the stream --------------------------------------------------------------------------
    def _per_batch(self, max_steps: int = 256) -> int:
        paced_or_live = self.source.step_s is not None or getattr(self.source, "live", False)
        n = self.batch_steps or (1 if paced_or_live else max_steps)
        return max(1, min(n, max_steps))

    def _start(self) -> None:
        idle = self.idle_timeout_ms
        if not idle and not self.free_run:
            # a paced batch of k steps is followed by the next about k periods later: leave
            # the device's stall timeout well above that
            step_us = self.step_us or self.model.dt_us
            idle = max(2000, int(4 * self._per_batch() * step_us / 1000))
        msg = pb.StreamStart(window=self.window, hop=self.hop, step_us=self.step_us,
                             free_run=self.free_run, record_spikes=self.record_spikes,
                             raw_samples=self.raw, idle_timeout_ms=idle)
        msg.delta_thresholds.extend(self.thresholds if self.raw else [])
        self.stats.started = time.monotonic()
        self._start_seq = self._send(stream_start=msg)
        deadline = time.monotonic() + self.timeout
        while self._out_seq == 0:
            if time.monotonic() > deadline:
                raise self._interrupted("no answer to StreamStart")
            self._read(max(deadline - time.monotonic(), 0.01))

    def _credit(self) -> int:
        c = self.stats.credit_limit
        if self.host_credit_cap is not None:
            c = min(c, self.stats.last_acked_seq + self.host_credit_cap)
        return c

    def _wait_credit(self, seq: int) -> None:
        if seq <= self._credit():
            return
        self.stats.credit_waits += 1
        t0 = time.monotonic()
        last_progress = t0
        acked = self.stats.last_acked_seq
        while seq > self._credit():
            if self._final:
                raise self._interrupted("the device ended the stream")
            self._read(0.5)
            if self.stats.last_acked_seq != acked:
                acked, last_progress = self.stats.last_acked_seq, time.monotonic()
            elif time.monotonic() - last_progress > self._progress_timeout:
                raise self._interrupted(f"no credit from the device for "
                                        f"{self._progress_timeout:.1f} s")
        self.stats.credit_wait_s += time.monotonic() - t0

    def _send_batch(self, rows: list[np.ndarray], first_step: int) -> None:
        if self._final:
            raise self._interrupted("the device ended the stream (stall timeout: raise "
                                    "idle_timeout_ms for sources that pause)")
        seq = self.stats.last_sent_seq + 1
        self._wait_credit(seq)
        x = np.stack(rows).astype(np.int64)
        b = pb.EventBatch(batch_seq=seq, first_step=first_step, n_steps=len(rows))
        if self.raw:
            b.samples.extend(int(v) for v in x.reshape(-1))
            items = x.size
        elif self.model.input_kind == "values":
            b.values.extend(int(v) for v in x.reshape(-1))
            items = x.size
        else:
            t, i = np.nonzero(x)
            b.events.extend(int(e) for e in ((t.astype(np.uint32) << 16) | i.astype(np.uint32)))
            items = int(t.size)
        now = time.monotonic()
        b.host_time_us = int(now * 1e6)
        self._sent_at[b.host_time_us] = now
        self._send(event_batch=b)
        st = self.stats
        st.last_sent_seq = seq
        st.max_in_flight = max(st.max_in_flight, seq - st.last_acked_seq)
        st.batches_sent += 1
        st.steps_sent += len(rows)
        st.items_sent += items
        st.events_sent += int(np.count_nonzero(x))
        if len(self._sent_at) > 4096:  # keep the map bounded: drop the oldest
            for k in sorted(self._sent_at)[:2048]:
                del self._sent_at[k]

    def _drain_ready(self) -> Iterator[StreamDecision]:
        while self._ready:
            yield self._ready.pop(0)

    def __iter__(self) -> Iterator[StreamDecision]:
        self._start()
        try:
            yield from self._run()
        except GeneratorExit:
            self.abort()
            raise
        except (KeyboardInterrupt, InputError):  # a bad row of a live source: stop the stream
            self.abort()
            raise

    def abort(self) -> None:
        """Stop an unfinished stream without waiting (best effort: the device also ends it
        by itself after its stall timeout)."""
        if self._out_seq and not self._final:
            try:
                self._send(stream_stop=pb.StreamStop())
            except Exception:  # the link may be gone already
                pass
            self._final = True

    def _run(self) -> Iterator[StreamDecision]:
        max_steps = getattr(self, "max_batch_steps", 256) or 256
        max_items = getattr(self, "max_batch_items", 1024) or 1024
        info = self.dev.device_info
        if info is not None and info.max_frame_bytes:
            # 5 bytes per item at worst (varints), within the frame limit
            max_items = min(max_items, (info.max_frame_bytes - _BATCH_OVERHEAD) // 5)
        per_batch = self._per_batch(max_steps)
        # waits for progress: the usual answer time plus two batches' worth of device steps
        self._progress_timeout = self.timeout + 2.0 * per_batch * self.stats.step_us / 1e6
        spikes = not self.raw and self.model.input_kind == "spikes"
        pending_items = 0
        step_s = self.source.step_s
        rows: list[np.ndarray] = []
        first = 0
        step = 0
        t_start = time.monotonic()
        for row in self.source:
            r = check_row(row, step, self.width, "raw" if self.raw else self.model.input_kind,
                          int(self.model.input_max_abs))
            if step_s is not None:
                # real-time replay: step k has happened at t_start + (k + 1) * step_s
                due = t_start + (step + 1) * step_s
                while True:
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    t0 = time.monotonic()
                    if not self._read(min(left, 0.05)):
                        pass
                    self.stats.pace_wait_s += time.monotonic() - t0
                    yield from self._drain_ready()
            n_items = int(np.count_nonzero(r)) if spikes else r.size
            if n_items > max_items:
                raise InputError(f"stream step {step} has {n_items} items; a batch takes "
                                 f"{max_items}")
            if rows and pending_items + n_items > max_items:
                self._send_batch(rows, first)
                first += len(rows)
                rows, pending_items = [], 0
            rows.append(r)
            pending_items += n_items
            step += 1
            if len(rows) >= per_batch:
                pending_items = 0
                self._send_batch(rows, first)
                first += len(rows)
                rows = []
                # pick up whatever the device sent meanwhile, hardly waiting
                while self._read(0.0005):
                    pass
                yield from self._drain_ready()
        if rows:
            self._send_batch(rows, first)
        # wait for every batch to run, then stop
        last_progress = time.monotonic()
        acked = self.stats.last_acked_seq
        while self.stats.last_acked_seq < self.stats.last_sent_seq:
            if self._final:
                raise self._interrupted("the device ended the stream early")
            self._read(0.5)
            yield from self._drain_ready()
            if self.stats.last_acked_seq != acked:
                acked, last_progress = self.stats.last_acked_seq, time.monotonic()
            elif time.monotonic() - last_progress > self._progress_timeout:
                raise self._interrupted(f"the device acknowledged nothing for "
                                        f"{self._progress_timeout:.1f} s")
        self._send(stream_stop=pb.StreamStop())
        deadline = time.monotonic() + self.timeout
        while not self._final:
            if time.monotonic() > deadline:
                raise self._interrupted("no answer to StreamStop")
            self._read(0.5)
        self.stats.ended = time.monotonic()
        yield from self._drain_ready()


__all__ = ["StreamDecision", "StreamSession", "StreamStats"]
