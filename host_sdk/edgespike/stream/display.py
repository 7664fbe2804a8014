"""The live terminal display of ``edgespike stream``: one status line, rewritten in place on a
terminal (a new line per decision otherwise), plus JSON lines for scripts."""
from __future__ import annotations

import json
import sys
import time
from typing import IO, Optional

import numpy as np

from edgespike.stream.session import StreamDecision, StreamStats


def percentile_ms(values: list[float], q: float) -> Optional[float]:
    """The ``q``-th percentile of seconds, in ms (None when empty)."""
    return float(np.percentile(np.array(values) * 1000.0, q)) if values else None


class LiveDisplay:
    """Shows the current decision, events/s and latency while a stream runs.

    Args:
        stats: the session's :class:`StreamStats` (read, never written).
        out: where to write (default stderr... stdout for --json lines is separate).
        interval: seconds between redraws on a terminal.
    """

    def __init__(self, stats: StreamStats, out: Optional[IO[str]] = None,
                 interval: float = 0.1) -> None:
        self.stats = stats
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.interval = interval
        self._last_draw = 0.0
        self._width = 0

    def line(self, d: StreamDecision) -> str:
        """The status line for the latest decision."""
        st = self.stats
        lat = st.latencies_s[-200:]
        med, p99 = percentile_ms(lat, 50), percentile_ms(lat, 99)
        what = f"{d.prediction}" + (f" ({d.label})" if d.label else "")
        parts = [f"decision #{d.index}: {what}", f"step {d.end_step}",
                 f"{st.events_per_s:,.0f} events/s",
                 f"latency {d.latency_s * 1000:.1f} ms" +
                 (f" (median {med:.1f}, p99 {p99:.1f})" if med is not None else "")]
        if st.credit_waits:
            parts.append(f"held back {st.credit_wait_s:.2f} s by credit")
        return " | ".join(parts)

    def update(self, d: StreamDecision) -> None:
        """Show a new decision (throttled to ``interval`` on a terminal)."""
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw < self.interval:
                return
            text = self.line(d)
            pad = max(self._width - len(text), 0)
            self.out.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.out.write(self.line(d) + "\n")
        self.out.flush()
        self._last_draw = now

    def close(self) -> None:
        if self.tty and self._width:
            self.out.write("\n")
            self.out.flush()


def json_line(d: StreamDecision, out: Optional[IO[str]] = None) -> None:
    """One decision as one JSON line."""
    out = out or sys.stdout
    out.write(json.dumps(d.as_dict()) + "\n")
    out.flush()


def summary(stats: StreamStats) -> str:
    """A few lines about the whole stream."""
    med, p99 = percentile_ms(stats.latencies_s, 50), percentile_ms(stats.latencies_s, 99)
    lines = [
        f"{stats.decisions} decisions over {stats.device_steps} steps in {stats.seconds:.2f} s "
        f"(window {stats.window}, hop {stats.hop}, "
        f"{'free-running' if not stats.step_us else f'{stats.step_us} us per step'})",
        f"sent {stats.batches_sent} batches, {stats.items_sent} items ({stats.events_per_s:,.0f} "
        f"events/s); the device took {stats.device_batches} batches, {stats.device_items} items",
    ]
    if med is not None:
        lines.append(f"event-to-decision latency: median {med:.2f} ms, p99 {p99:.2f} ms (host clock)")
    lines.append(f"flow control: waited for credit {stats.credit_waits} times, "
                 f"{stats.credit_wait_s:.2f} s in all; at most {stats.max_in_flight} batches in flight")
    return "\n".join(lines)


__all__ = ["LiveDisplay", "json_line", "percentile_ms", "summary"]
