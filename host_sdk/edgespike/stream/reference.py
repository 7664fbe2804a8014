"""The numpy reference of streaming (docs/streaming.md): what a device's stream must decide.

Windows (``window`` steps per decision, one every ``hop`` steps):

- per-window (``hop == window``): the network restarts from reset at every window; the
  decision after a window is :func:`edgespike.sim.reference.run` on those ``window`` steps
  (with ``timesteps = window``), so a stream of whole samples gives the batch run's results;
- sliding (``hop < window``): the network runs on from reset at the first step without ever
  resetting; after step ``t`` with ``t + 1 >= window`` and ``(t + 1 - window) % hop == 0`` the
  scores are the output spikes of the last ``window`` steps (spike-count decoding) or the
  output voltages after step ``t`` (membrane-last decoding).

The integer delta encoder (:func:`delta_encode`) is the one the firmware runs on raw samples.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from edgespike.errors import InputError
from edgespike.model import Model
from edgespike.sim import reference
from edgespike.sim.checks import INT32_MAX, INT32_MIN, INT64_MIN, as_array, as_int64


@dataclass
class RefDecision:
    """One decision of the reference stream."""

    index: int
    end_step: int
    prediction: int
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def resolve_window(model: Model, window: Optional[int] = None,
                   hop: Optional[int] = None) -> tuple[int, int]:
    """The effective ``(window, hop)``: arguments first, then the model's stream fields, then
    ``window = timesteps`` and ``hop = window`` (the firmware's rule)."""
    w = window or getattr(model, "stream_window", 0) or model.timesteps
    h = hop or getattr(model, "stream_hop", 0) or w
    if h > w:
        raise InputError(f"stream hop {h} is larger than the window {w}")
    return int(w), int(h)


def delta_encode(samples: np.ndarray, thresholds: Sequence[int],
                 reset_every: Optional[int] = None) -> np.ndarray:
    """Integer delta modulation of raw samples ``(T, C)`` into UP/DOWN spikes ``(T, 2C)``.

    ``ref`` starts at the first sample (and again every ``reset_every`` steps, the per-window
    rule); at each step ``d = sample - ref``: ``d >= th`` gives UP (channel ``c``) and
    ``ref += th``; else ``d <= -th`` gives DOWN (channel ``C + c``) and ``ref -= th``.
    """
    s = as_array(samples, "raw samples")
    if s.ndim != 2:
        raise InputError(f"raw samples are (steps, channels), got shape {s.shape}")
    # exact (never wrapped or truncated), int32 as the device takes them (EventBatch.samples)
    s = as_int64(s, what="raw samples", lo=INT32_MIN, hi=INT32_MAX, axes=("step", "channel"),
                 rule="raw samples are int32")
    th = as_int64(as_array(thresholds, "delta thresholds").reshape(-1), what="delta thresholds",
                  lo=INT64_MIN, hi=INT32_MAX, rule="thresholds are int32")
    steps, c = s.shape
    if th.size != c or (th < 1).any():
        raise InputError(f"need one delta threshold >= 1 per channel ({c}), got {th.tolist()}")
    out = np.zeros((steps, 2 * c), dtype=np.uint8)
    ref = s[0].copy() if steps else np.zeros(c, dtype=np.int64)
    for t in range(steps):
        if reset_every and t % reset_every == 0:
            ref = s[t].copy()
        d = s[t] - ref
        up = d >= th
        ref = ref + np.where(up, th, 0)
        d = s[t] - ref
        down = d <= -th
        ref = ref - np.where(down, th, 0)
        out[t, :c] = up
        out[t, c:] = down
    return out


def stream(model: Model, x: np.ndarray, *, window: Optional[int] = None,
           hop: Optional[int] = None, raw_thresholds: Optional[Sequence[int]] = None
           ) -> list[RefDecision]:
    """Every decision a device makes streaming ``x`` (``(steps, input_size)``, or raw samples
    ``(steps, channels)`` with ``raw_thresholds``)."""
    w, h = resolve_window(model, window, hop)
    x = as_array(x, "stream")
    if x.ndim != 2:
        raise InputError(f"a stream is (steps, width), got shape {x.shape}")
    if raw_thresholds is not None:
        x = delta_encode(x, raw_thresholds, reset_every=w if h == w else None)
    steps = x.shape[0]
    out: list[RefDecision] = []
    if h == w:
        n = steps // w
        if n == 0:
            return out
        m = dataclasses.replace(model, timesteps=w)
        batch = x[: n * w].reshape(n, w, x.shape[1])
        for k, r in enumerate(reference.run_batch(m, batch)):
            out.append(RefDecision(k, (k + 1) * w - 1, r.prediction, r.scores.copy()))
        return out
    ends = [t for t in range(w - 1, steps, h)]
    if not ends:
        return out
    if model.decoding == "spike_count":
        m = dataclasses.replace(model, timesteps=steps)
        raster = reference.run(m, x).spikes[-1].astype(np.int64)  # (steps, outputs)
        for k, t in enumerate(ends):
            sc = raster[t - w + 1: t + 1].sum(axis=0)
            out.append(RefDecision(k, t, int(np.argmax(sc)), sc))
    elif model.decoding == "membrane_last":
        for k, t in enumerate(ends):
            r = reference.run(dataclasses.replace(model, timesteps=t + 1), x[: t + 1])
            out.append(RefDecision(k, t, r.prediction, r.scores.copy()))
    else:
        raise InputError("sliding windows take spike_count or membrane_last decoding")
    return out


__all__ = ["RefDecision", "delta_encode", "resolve_window", "stream"]
