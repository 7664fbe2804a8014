"""Where a stream's steps come from: one row per model time step.

A source is an iterable of rows, one per step, plus two facts the stream needs:

- ``step_s``: seconds between steps for paced (real-time) replay, or ``None`` (send as fast
  as the device takes them; a live sensor paces itself);
- ``raw``: the rows are raw integer sensor samples the device delta-encodes itself, not the
  model's input.

Rows are integer arrays: ``input_size`` values (direct encoding), ``input_size`` 0/1 spikes
(spike models), or ``channels`` raw samples (``raw``).
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from edgespike.errors import InputError


def parse_speed(text: str | float | int | None) -> float:
    """``"10x"``, ``"10"``, ``2.5`` -> the replay speed factor; ``"max"``/``"inf"``/0 -> inf."""
    if text is None:
        return 1.0
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = text.strip().lower()
        if t in ("max", "inf", "fast", "0", "0x"):
            return math.inf
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*x?", t)
        if not m:
            raise InputError(f"speed {text!r}: write it as 10x, 0.5x, 1 or max")
        value = float(m.group(1))
    if value <= 0:
        return math.inf
    return value


class Source:
    """Base class: an iterable of per-step rows with pacing facts."""

    #: rows come when they come (a sensor, a queue): send each step at once, never wait to
    #: fill a batch. Arrays are not live.
    live = False

    def __init__(self, step_s: Optional[float] = None, raw: bool = False) -> None:
        self.step_s = step_s
        self.raw = raw

    def __iter__(self) -> Iterator[np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> str:
        """One line for displays."""
        pace = "unpaced" if self.step_s is None else f"{self.step_s * 1000:.3g} ms/step"
        return f"{type(self).__name__} ({pace}{', raw samples' if self.raw else ''})"


class ArraySource(Source):
    """A numpy array of steps: ``(steps, width)`` or a batch ``(n, steps, width)`` whose
    samples are streamed one after the other."""

    def __init__(self, x: Any, step_s: Optional[float] = None, raw: bool = False) -> None:
        super().__init__(step_s, raw)
        a = np.asarray(x)
        if a.ndim == 3:
            a = a.reshape(-1, a.shape[-1])
        if a.ndim != 2:
            raise InputError(f"a stream array is (steps, width) or (n, steps, width), got {a.shape}")
        if a.size and not np.issubdtype(a.dtype, np.integer):
            if not np.array_equal(a, np.round(a)):
                raise InputError("stream rows must be integers (quantize the input first, e.g. "
                                 "QuantizedSNN.integer_input)")
        self.x = a.astype(np.int64)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.x)


class ReplaySource(ArraySource):
    """A recorded dataset replayed at ``speed`` times real time (``dt_s`` per step).

    ``speed=math.inf`` (or ``"max"``) sends as fast as the device takes the steps.
    """

    def __init__(self, x: Any, dt_s: float, speed: float | str = 1.0, raw: bool = False) -> None:
        sp = parse_speed(speed)
        super().__init__(x, None if math.isinf(sp) else dt_s / sp, raw)
        self.speed = sp
        self.dt_s = dt_s


class EventArraySource(Source):
    """Timestamped events: an ``(n, 2)`` integer array of ``(step, index)``, or a structured
    array with fields ``t`` (step) and ``x`` (index) (edgespike.encode.EVENT_DTYPE), into
    0/1 rows of ``width``. ``steps`` (default: last step + 1) fixes the stream's length."""

    def __init__(self, events: Any, width: int, steps: Optional[int] = None,
                 step_s: Optional[float] = None) -> None:
        super().__init__(step_s, False)
        ev = np.asarray(events)
        if ev.dtype.names:
            t = np.asarray(ev["t"], dtype=np.int64)
            i = np.asarray(ev["x"], dtype=np.int64)
        else:
            ev = ev.reshape(-1, 2).astype(np.int64)
            t, i = ev[:, 0], ev[:, 1]
        if t.size and (t.min() < 0 or i.min() < 0 or i.max() >= width):
            raise InputError(f"events need step >= 0 and 0 <= index < {width}")
        self.width = int(width)
        self.steps = int(steps if steps is not None else (t.max() + 1 if t.size else 0))
        order = np.lexsort((i, t))
        self.t, self.i = t[order], i[order]

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[np.ndarray]:
        k = 0
        for step in range(self.steps):
            row = np.zeros(self.width, dtype=np.int64)
            while k < self.t.size and self.t[k] == step:
                row[self.i[k]] = 1
                k += 1
            yield row


class IterableSource(Source):
    """Any iterable of rows (a generator reading a sensor, a queue...). ``live`` (default
    True): send every step as soon as it comes; False: fill batches (a fast producer)."""

    def __init__(self, rows: Iterable[Any], step_s: Optional[float] = None,
                 raw: bool = False, live: bool = True) -> None:
        super().__init__(step_s, raw)
        self.rows = rows
        self.live = live

    def __iter__(self) -> Iterator[np.ndarray]:
        for r in self.rows:
            yield np.asarray(r, dtype=np.int64).reshape(-1)


class SerialSensorSource(Source):
    """A sensor on a serial port (or any pyserial URL) printing one step per line: integers
    separated by commas, spaces or tabs. Lines that do not parse are skipped. The sensor
    paces the stream; by default its samples are raw (the device delta-encodes them).

    Args:
        url: ``/dev/ttyUSB0``, ``socket://host:port``, ``loop://``...
        channels: integers expected per line (others are skipped); None: any.
        limit: stop after this many steps (None: until the port closes).
    """

    live = True

    def __init__(self, url: str, channels: Optional[int] = None, baudrate: int = 115200,
                 raw: bool = True, limit: Optional[int] = None, timeout: float = 5.0) -> None:
        super().__init__(None, raw)
        self.url, self.channels, self.baudrate = url, channels, baudrate
        self.limit, self.timeout = limit, timeout

    def __iter__(self) -> Iterator[np.ndarray]:
        import serial

        n = 0
        with serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=self.timeout) as ser:
            while self.limit is None or n < self.limit:
                line = ser.readline()
                if not line:
                    return  # quiet for `timeout` s, or closed
                row = parse_line(line.decode(errors="replace"))
                if row is None or (self.channels is not None and row.size != self.channels):
                    continue
                n += 1
                yield row


def parse_line(line: str) -> Optional[np.ndarray]:
    """Integers of one text line (``"12, -3, 7"``), or None if it holds none or junk."""
    parts = [p for p in re.split(r"[,\s;]+", line.strip()) if p]
    if not parts:
        return None
    try:
        return np.array([int(p) for p in parts], dtype=np.int64)
    except ValueError:
        return None


def as_source(obj: Any, step_s: Optional[float] = None, raw: bool = False) -> Source:
    """A :class:`Source` for ``obj``: a Source as is, a numpy array, or any iterable."""
    if isinstance(obj, Source):
        return obj
    if isinstance(obj, np.ndarray):
        return ArraySource(obj, step_s, raw)
    if isinstance(obj, (list, tuple)) and obj and np.ndim(obj[0]) >= 1:
        return ArraySource(np.asarray(obj), step_s, raw)
    return IterableSource(obj, step_s, raw)


__all__ = ["ArraySource", "EventArraySource", "IterableSource", "ReplaySource",
           "SerialSensorSource", "Source", "as_source", "parse_line", "parse_speed"]
