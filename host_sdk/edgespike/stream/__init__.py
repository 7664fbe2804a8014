"""Live streaming to a device (docs/streaming.md).

- :mod:`sources`: where steps come from (dataset replay at any speed, numpy arrays, event
  arrays, a serial sensor, any iterable).
- :mod:`session`: :class:`StreamSession`, what ``Device.stream(source)`` returns: an iterator of
  :class:`StreamDecision` with credit-based flow control and sequence checks.
- :mod:`reference`: the numpy reference of streaming (windows, the integer delta encoder).
- :mod:`display`: the live terminal display of ``edgespike stream``.
"""
from edgespike.stream.reference import RefDecision, delta_encode, resolve_window
from edgespike.stream.reference import stream as reference_stream
from edgespike.stream.session import StreamDecision, StreamSession, StreamStats
from edgespike.stream.sources import (
    ArraySource, EventArraySource, IterableSource, ReplaySource, SerialSensorSource, Source,
    as_source, parse_speed,
)

__all__ = [
    "ArraySource", "EventArraySource", "IterableSource", "RefDecision", "ReplaySource",
    "SerialSensorSource", "Source", "StreamDecision", "StreamSession", "StreamStats",
    "as_source", "delta_encode", "parse_speed", "reference_stream", "resolve_window",
]
