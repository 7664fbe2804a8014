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
from edgespike.sim.checks import as_array, as_int64

_EV_HINT = "steps and indices are integers"


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
        a = as_array(x, "stream array")
        if a.ndim == 3:
            a = a.reshape(-1, a.shape[-1])
        if a.ndim != 2:
            raise InputError(f"a stream array is (steps, width) or (n, steps, width), got {a.shape}")
        # exact integers (integral floats taken as they are, NaN/inf/0.5/beyond int64 refused);
        # the stream checks each row against the model when it sends it
        self.x = as_int64(a, what="stream array", axes=("step", "index"))

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
        ev = as_array(events, "events")
        if ev.dtype.names:
            if "t" not in ev.dtype.names or "x" not in ev.dtype.names:
                raise InputError(f"structured events need fields 't' (step) and 'x' (index), "
                                 f"got {ev.dtype.names}")
            t = as_int64(ev["t"], what="event steps", allow_float=False, float_hint=_EV_HINT)
            i = as_int64(ev["x"], what="event indices", allow_float=False, float_hint=_EV_HINT)
            t, i = t.reshape(-1), i.reshape(-1)
        else:
            if ev.size and (ev.ndim != 2 or ev.shape[1] != 2):
                # a flat array is ambiguous (packed codes or pairs?): never reshape it
                raise InputError(f"events are an (n, 2) array of (step, index), got shape "
                                 f"{ev.shape}")
            ev = as_int64(ev.reshape(-1, 2), what="events", allow_float=False,
                          float_hint=_EV_HINT)
            t, i = ev[:, 0], ev[:, 1]
        if t.size and (t.min() < 0 or i.min() < 0 or i.max() >= width):
            raise InputError(f"events need step >= 0 and 0 <= index < {width}")
        if steps is not None and t.size and t.max() >= steps:
            raise InputError(f"event at step {int(t.max())} is beyond the stream's {steps} steps")
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
        for k, r in enumerate(self.rows):
            yield as_int64(as_array(r, f"stream step {k}"), what=f"stream step {k}").reshape(-1)


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


def _stream_range(kind: str, max_abs: int) -> dict[str, Any]:
    """Bounds and rule text of one stream item: ``kind`` is ``"spikes"``, ``"values"`` or
    ``"raw"`` (raw samples the device delta-encodes: int32)."""
    if kind == "spikes":
        return {"lo": 0, "hi": 1, "rule": "spike input must be 0 or 1"}
    if kind == "values":
        return {"lo": -max_abs, "hi": max_abs,
                "rule": f"the model takes |x| <= input_max_abs {max_abs}; rescale or clip the input"}
    return {"lo": -(1 << 31), "hi": (1 << 31) - 1, "rule": "raw samples are int32"}


def check_row(row: Any, step: int, width: int, kind: str, max_abs: int = 1) -> np.ndarray:
    """One stream step as exact int64, ``width`` items, in the range the stream takes.

    ``kind``: ``"spikes"`` (0 or 1), ``"values"`` (``|x| <= max_abs``, the model's
    input_max_abs) or ``"raw"`` (raw samples the device delta-encodes: int32). Raises
    :class:`InputError` naming the step, the item and what to change; nothing is wrapped,
    truncated or rounded.
    """
    what = f"stream step {step}"
    r = as_array(row, what).reshape(-1)
    if r.size != width:
        raise InputError(f"{what} has {r.size} items; the stream takes {width} per step")
    axes = ("channel",) if kind == "raw" else ("index",)
    return as_int64(r, what=what, axes=axes, **_stream_range(kind, max_abs))


def check_rows(x: np.ndarray, width: int, kind: str, max_abs: int = 1) -> None:
    """:func:`check_row` for every row of a ``(steps, width)`` array at once (before a stream
    starts, so that a bad step is refused before anything is sent)."""
    if x.ndim != 2 or (x.size and x.shape[1] != width):
        raise InputError(f"stream array of shape {x.shape}; the stream takes {width} items per step")
    as_int64(x, what="stream", axes=("step", "channel" if kind == "raw" else "index"),
             **_stream_range(kind, max_abs))


def check_thresholds(thresholds: Any) -> list[int]:
    """Delta thresholds (one per raw channel) as exact ints in 1..2^31-1; :class:`InputError`
    otherwise."""
    th = as_int64(as_array(thresholds, "delta thresholds").reshape(-1), what="delta thresholds",
                  lo=1, hi=(1 << 31) - 1, rule="one threshold >= 1 per channel, within int32")
    return [int(t) for t in th]


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
           "SerialSensorSource", "Source", "as_source", "check_row", "check_rows",
           "check_thresholds",
           "parse_line", "parse_speed"]
