"""Encoders: turn data into what the first layer takes, ``(N, T, channels)``.

Spike encoders return 0/1 float32 arrays; :func:`direct` returns the analog values repeated
over time (the model quantizes them to integers). Event streams use the common structured
layout :data:`EVENT_DTYPE` (``t`` in microseconds, ``x``, ``y``, ``p``), the layout tonic uses,
so recordings users bring work unchanged with :func:`events_to_frames`.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

import numpy as np

from edgespike.errors import EdgeSpikeError, InputError
from edgespike.model.quantized import EncoderSpec

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "<i1")])
ENCODERS = ("direct", "rate", "latency", "phase", "delta", "hybrid", "dvs")


def _flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1:
        raise InputError("encoders take a batch of samples (N, ...)")
    return x.reshape(x.shape[0], -1)


def _unit(x: np.ndarray) -> np.ndarray:
    if x.size and (x.min() < 0 or x.max() > 1):
        raise InputError(f"values must lie in 0..1 for this encoder (got {x.min():.3g}..{x.max():.3g}); "
                         "scale them first, e.g. x / x.max()")
    return x


def direct(x: np.ndarray, timesteps: int) -> np.ndarray:
    """Analog values into the first layer at every step: ``(N, ...) -> (N, T, features)``."""
    f = _flat(x)
    return np.repeat(f[:, None, :], timesteps, axis=1)


def rate(x: np.ndarray, timesteps: int, mode: str = "poisson", gain: float = 1.0,
         seed: int = 0) -> np.ndarray:
    """Rate code of values in 0..1: spike probability (``poisson``) or regular spikes (``deterministic``).

    ``deterministic`` integrates ``gain * x`` each step and spikes on crossing 1 (subtracting 1),
    so a value's spike count is ``floor(T * gain * x)`` and needs no random numbers.
    """
    f = _unit(_flat(x)) * gain
    if mode == "poisson":
        rng = np.random.default_rng(seed)
        return (rng.random((f.shape[0], timesteps, f.shape[1])) < f[:, None, :]).astype(np.float32)
    if mode != "deterministic":
        raise EdgeSpikeError("rate mode must be 'poisson' or 'deterministic'")
    acc = np.zeros_like(f)
    out = np.zeros((f.shape[0], timesteps, f.shape[1]), dtype=np.float32)
    for t in range(timesteps):
        acc = acc + f
        s = acc >= 1.0 - 1e-6
        out[:, t] = s
        acc = acc - s
    return out


def latency(x: np.ndarray, timesteps: int, threshold: float = 0.01) -> np.ndarray:
    """Time-to-first-spike: one spike at step ``round((1 - x) * (T - 1))``; none for ``x <= threshold``."""
    f = _unit(_flat(x))
    t = np.round((1.0 - f) * (timesteps - 1)).astype(np.int64)
    out = np.zeros((f.shape[0], timesteps, f.shape[1]), dtype=np.float32)
    n, c = np.nonzero(f > threshold)
    out[n, t[n, c], c] = 1.0
    return out


def phase(x: np.ndarray, timesteps: int, bits: int = 8) -> np.ndarray:
    """Phase code: the value as a ``bits``-bit fraction, most significant bit first, repeated every ``bits`` steps."""
    f = _unit(_flat(x))
    q = np.round(f * (2 ** bits - 1)).astype(np.int64)
    out = np.zeros((f.shape[0], timesteps, f.shape[1]), dtype=np.float32)
    for t in range(timesteps):
        bit = bits - 1 - (t % bits)
        out[:, t] = (q >> bit) & 1
    return out


def delta_thresholds(series: np.ndarray, factor: float = 0.35) -> np.ndarray:
    """Per-channel delta thresholds: ``factor`` x the channel's standard deviation (``(N, T, C)`` input)."""
    s = np.asarray(series, dtype=np.float32)
    return np.maximum(factor * s.reshape(-1, s.shape[-1]).std(axis=0), 1e-6).astype(np.float32)


def delta(series: np.ndarray, thresholds: Optional[np.ndarray | float] = None,
          factor: float = 0.35) -> np.ndarray:
    """Delta modulation of sensor series ``(N, T, C)`` into UP/DOWN spikes ``(N, T, 2C)``.

    Channel ``c`` emits on UP channel ``c`` (or DOWN channel ``C + c``) when the signal has moved
    at least its threshold from its last reference; the reference then moves one threshold
    that way (classic delta modulation: at most one spike per channel per step, so the spikes
    alone rebuild the reference, ``x[0] + th * (cumsum(UP) - cumsum(DOWN))``). ``thresholds``
    default to :func:`delta_thresholds` of this batch (pass the training set's to reuse them).
    """
    s = np.asarray(series, dtype=np.float32)
    if s.ndim != 3:
        raise InputError(f"delta encoding takes series (N, T, C), got shape {s.shape}")
    th = delta_thresholds(s, factor) if thresholds is None else np.broadcast_to(
        np.asarray(thresholds, dtype=np.float32), (s.shape[2],))
    n, steps, c = s.shape
    out = np.zeros((n, steps, 2 * c), dtype=np.float32)
    ref = s[:, 0, :].copy()
    for t in range(steps):
        d = s[:, t, :] - ref
        k = np.floor(np.abs(d) / th)
        up, down = (d > 0) & (k >= 1), (d < 0) & (k >= 1)
        out[:, t, :c] = up
        out[:, t, c:] = down
        ref = ref + (up.astype(np.float32) - down.astype(np.float32)) * th
    return out


def hybrid(x: np.ndarray, timesteps: int, rate_fraction: float = 0.5,
           rate_channels: Optional[Sequence[int]] = None, seed: int = 0) -> np.ndarray:
    """Rate-plus-timing: the chosen channels are rate-coded (Poisson), the rest latency-coded.

    By default the first ``rate_fraction`` of the channels are rate-coded.
    """
    f = _unit(_flat(x))
    c = f.shape[1]
    mask = np.zeros(c, dtype=bool)
    if rate_channels is None:
        mask[: int(round(rate_fraction * c))] = True
    else:
        mask[np.asarray(rate_channels, dtype=np.int64)] = True
    return np.where(mask[None, None, :], rate(f, timesteps, "poisson", seed=seed),
                    latency(f, timesteps)).astype(np.float32)


def dvs_saccades(images: np.ndarray, threshold: float = 0.2, spread: float = 0.03, pad: int = 2,
                 saccade_us: int = 100_000, samples_per_saccade: int = 20, amplitude: float = 2.0,
                 seed: int = 0) -> list[np.ndarray]:
    """DVS-style events from still images, the way N-MNIST was recorded (DATA.md).

    Each (padded) image is moved through three saccades tracing a triangle (``amplitude``
    pixels, ``saccade_us`` microseconds each); every pixel keeps its own log-intensity
    reference and emits an ON (p=1) or OFF (p=0) event whenever the log intensity moves its
    threshold (``threshold`` plus a per-pixel spread of ``spread``) away from it.

    Returns one :data:`EVENT_DTYPE` array per image, sorted by time; ``x``/``y`` index the
    padded image (width ``W + 2 * pad``).
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3:
        raise InputError(f"dvs_saccades takes images (N, H, W), got {imgs.shape}")
    rng = np.random.default_rng(seed)
    n, h, w = imgs.shape
    H, W = h + 2 * pad, w + 2 * pad
    th = np.clip(threshold + spread * rng.standard_normal((H, W)), 0.05, None)
    corners = np.array([[0.0, 0.0], [amplitude, amplitude / 2], [0.0, amplitude], [0.0, 0.0]])
    path, times = [], []
    for k in range(3):
        for j in range(1, samples_per_saccade + 1):
            a = j / samples_per_saccade
            path.append(corners[k] * (1 - a) + corners[k + 1] * a)
            times.append(k * saccade_us + int(a * saccade_us))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for img in imgs:
        big = np.zeros((H, W), dtype=np.float32)
        big[pad:pad + h, pad:pad + w] = img

        def view(dx: float, dy: float) -> np.ndarray:
            # bilinear sample of the scene shifted by (dx, dy): the sensor's view during the saccade
            sx, sy = np.clip(xx - dx, 0, W - 1), np.clip(yy - dy, 0, H - 1)
            x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
            x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
            fx, fy = sx - x0, sy - y0
            v = (big[y0, x0] * (1 - fx) * (1 - fy) + big[y0, x1] * fx * (1 - fy)
                 + big[y1, x0] * (1 - fx) * fy + big[y1, x1] * fx * fy)
            return np.log(v + 0.1)

        ref = view(0.0, 0.0)
        evs = []
        for (dx, dy), t in zip(path, times):
            cur = view(dx, dy)
            d = cur - ref
            k = np.floor(np.abs(d) / th)
            ys, xs = np.nonzero(k >= 1)
            if len(ys):
                e = np.zeros(len(ys), dtype=EVENT_DTYPE)
                e["t"], e["x"], e["y"] = t, xs, ys
                e["p"] = (d[ys, xs] > 0).astype(np.int8)
                evs.append(e)
                ref[ys, xs] += np.sign(d[ys, xs]) * k[ys, xs] * th[ys, xs]
        out.append(np.concatenate(evs) if evs else np.zeros(0, dtype=EVENT_DTYPE))
    return out


def events_to_frames(events: np.ndarray, timesteps: int, width: int, height: int,
                     duration_us: Optional[int] = None) -> np.ndarray:
    """Bin one event array into ``(T, 2 * height * width)`` 0/1 spikes (OFF block, then ON block).

    Step ``t`` covers ``[t, t + 1) * duration_us / T``; several events of one pixel and polarity
    in a step make one spike.
    """
    ev = np.asarray(events)
    if ev.dtype.names is None or not {"t", "x", "y", "p"} <= set(ev.dtype.names):
        raise InputError("events must be a structured array with fields t, x, y, p")
    out = np.zeros((timesteps, 2, height, width), dtype=np.float32)
    if ev.size == 0:
        return out.reshape(timesteps, -1)
    if ((ev["x"] < 0) | (ev["x"] >= width) | (ev["y"] < 0) | (ev["y"] >= height)).any():
        raise InputError(f"event coordinates outside {width}x{height}")
    dur = int(duration_us) if duration_us else int(ev["t"].max()) + 1
    step = np.clip((ev["t"].astype(np.int64) * timesteps) // max(dur, 1), 0, timesteps - 1)
    out[step, (ev["p"] > 0).astype(np.int64), ev["y"], ev["x"]] = 1.0
    return out.reshape(timesteps, -1)


def spec(kind: str, channels: int, thresholds: Sequence[float] = (), scale: float = 1.0,
         **params) -> EncoderSpec:
    """The :class:`EncoderSpec` stored in a model: integer thresholds are ``round(th * scale)``."""
    if kind not in ENCODERS:
        raise EdgeSpikeError(f"unknown encoder {kind!r}; choose one of {', '.join(ENCODERS)}")
    return EncoderSpec(kind=kind, channels=int(channels),
                       thresholds=[int(round(float(t) * scale)) for t in thresholds],
                       params_json=json.dumps(dict(params, scale=scale), sort_keys=True))


__all__ = ["ENCODERS", "EVENT_DTYPE", "delta", "delta_thresholds", "direct", "dvs_saccades",
           "events_to_frames", "hybrid", "latency", "phase", "rate", "spec"]
