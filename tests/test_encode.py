"""Encoders: rate, latency, phase, delta, hybrid, DVS saccades and event frames."""
from __future__ import annotations

import numpy as np
import pytest

from edgespike import encode as E
from edgespike.errors import InputError


def test_direct_repeats_values():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = E.direct(x, 4)
    assert out.shape == (2, 4, 3) and np.array_equal(out[:, 2], x)


def test_rate_deterministic_counts_and_poisson_mean():
    x = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    det = E.rate(x, 16, "deterministic")
    assert det.sum(1)[0].tolist() == [0, 4, 8, 16]
    p = E.rate(np.full((200, 3), 0.3, np.float32), 50, "poisson", seed=1)
    assert abs(p.mean() - 0.3) < 0.01 and set(np.unique(p)) <= {0.0, 1.0}
    assert np.array_equal(p, E.rate(np.full((200, 3), 0.3, np.float32), 50, "poisson", seed=1))
    with pytest.raises(InputError, match="0..1"):
        E.rate(np.array([[1.5]]), 4)


def test_latency_one_spike_earlier_for_larger_values():
    x = np.array([[1.0, 0.5, 0.0]], dtype=np.float32)
    out = E.latency(x, 11)
    assert out.sum(1)[0].tolist() == [1, 1, 0]
    assert np.argmax(out[0, :, 0]) == 0 and np.argmax(out[0, :, 1]) == 5


def test_phase_bits_reconstruct_the_value():
    x = np.array([[0.0, 0.5, 1.0, 0.3]], dtype=np.float32)
    out = E.phase(x, 8, bits=8)
    weights = 2 ** np.arange(7, -1, -1)
    recon = (out[0] * weights[:, None]).sum(0)
    assert np.array_equal(recon, np.round(x[0] * 255))


def test_delta_tracks_the_signal_within_a_threshold():
    t = np.linspace(0, 4 * np.pi, 200)
    s = np.stack([np.sin(t), 3 * np.cos(t)], axis=-1)[None].astype(np.float32)
    th = np.array([0.1, 0.3], np.float32)
    out = E.delta(s, th)
    assert out.shape == (1, 200, 4)
    assert out[0, :, 0].sum() > 0 and out[0, :, 2].sum() > 0  # UP and DOWN of channel 0
    assert not np.any(out[0, :, :2] * out[0, :, 2:])  # never UP and DOWN at once
    recon = s[0, 0] + th * np.cumsum(out[0, :, :2] - out[0, :, 2:], axis=0)
    # the slope stays under a threshold per step, so the rebuilt signal tracks within one threshold
    assert np.all(np.abs(recon - s[0]) <= th + 1e-5)
    auto = E.delta_thresholds(s, 0.5)
    assert np.allclose(auto, 0.5 * s[0].std(0), rtol=1e-4)
    with pytest.raises(InputError):
        E.delta(s[0], th)


def test_hybrid_splits_channels():
    x = np.full((1, 10), 0.8, np.float32)
    out = E.hybrid(x, 20, rate_channels=[0, 1, 2])
    assert out[0, :, 3:].sum(0).tolist() == [1.0] * 7  # latency: one spike each
    assert (out[0, :, :3].sum(0) > 5).all()  # rate: many spikes


def test_dvs_saccades_make_sorted_events_of_both_polarities():
    img = np.zeros((1, 8, 8), np.float32)
    img[0, 2:6, 3:5] = 1.0
    ev = E.dvs_saccades(img, seed=0)[0]
    assert ev.dtype == E.EVENT_DTYPE and len(ev) > 20
    assert np.all(np.diff(ev["t"]) >= 0) and set(np.unique(ev["p"])) == {0, 1}
    assert ev["t"].max() <= 300_000 and ev["x"].max() < 12 and ev["y"].max() < 12
    assert len(E.dvs_saccades(np.zeros((1, 8, 8), np.float32))[0]) == 0
    frames = E.events_to_frames(ev, 10, 12, 12, 300_000)
    assert frames.shape == (10, 2 * 144) and frames.max() == 1 and frames.sum() > 10


def test_events_to_frames_rejects_bad_events():
    bad = np.zeros(1, dtype=E.EVENT_DTYPE)
    bad["x"] = 50
    with pytest.raises(InputError, match="outside"):
        E.events_to_frames(bad, 4, 10, 10)
    with pytest.raises(InputError, match="fields"):
        E.events_to_frames(np.zeros(3), 4, 10, 10)


def test_spec_names_a_known_encoder():
    s = E.spec("delta", 6, [0.25, 0.5], scale=1000)
    assert s.kind == "delta" and list(s.thresholds) == [250, 500]
    with pytest.raises(Exception, match="unknown encoder"):
        E.spec("morse", 1)
