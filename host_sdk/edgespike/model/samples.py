"""Small ready-made models on real data, for the main job, examples and benchmarks.

No training framework is needed: :func:`digits_templates` builds a nearest-template spiking
classifier from scikit-learn's 8x8 digits in closed form (class means minus the grand mean,
quantized), so the firmware, the link and the profiler can be exercised on real data from a
bare install. The trained pipeline lives in :mod:`edgespike.train` and :mod:`edgespike.quant`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgespike.errors import ToolMissing
from edgespike.model.quantized import Layer, Model, Neurons, Weights


@dataclass
class Sample:
    """A model with its encoded test inputs and their labels."""

    model: Model
    inputs: np.ndarray   # n x timesteps x input_size, integers
    labels: np.ndarray   # n


def rate_code(values: np.ndarray, levels: int, timesteps: int) -> np.ndarray:
    """Deterministic rate code: a value ``p`` in 0..levels spikes ``round(p/levels*T)`` times,
    evenly spread (an integer Bresenham pattern, no randomness)."""
    t = np.arange(1, timesteps + 1)[:, None]
    p = np.asarray(values, dtype=np.int64)[..., None, :]
    return ((t * p) // levels - ((t - 1) * p) // levels > 0).astype(np.uint8)


def digits_templates(timesteps: int = 16, weights: str = "int8", seed: int = 0) -> Sample:
    """A one-layer spiking nearest-template classifier of the 8x8 digits (64 -> 10).

    Returns the model and the encoded test half of the data set (899 samples).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ToolMissing("scikit-learn is needed for the digits sample: pip install scikit-learn") from exc
    data = load_digits()
    x, y = data.data.astype(np.int64), data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    half = len(x) // 2
    train, test = order[:half], order[half:]
    means = np.stack([x[train][y[train] == c].mean(axis=0) for c in range(10)])
    template = (means - means.mean(axis=0)).T  # 64 x 10
    if weights == "ternary":
        band = 0.35 * np.abs(template).max()
        codes = np.where(template > band, 1, np.where(template < -band, -1, 0)).astype(np.int8)
        w = Weights(codes, encoding="ternary", a_pos=24, a_neg=24, exp=0)
    else:
        w = Weights(np.round(template / np.abs(template).max() * 127).astype(np.int8), exp=-2)
    model = Model(
        input_size=64, timesteps=timesteps, name=f"digits-templates-{weights}",
        decoding="spike_count", labels=[str(c) for c in range(10)],
        layers=[Layer(w, Neurons(du=4096, dv=256, vth=60), name="templates")],
    ).validate()
    return Sample(model=model, inputs=rate_code(x[test], 16, timesteps), labels=y[test])
