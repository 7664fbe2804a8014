"""Dataset + encoder + network from a few names: what the CLI and the benchmarks share."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch

from edgespike import data as D
from edgespike import encode as E
from edgespike.errors import EdgeSpikeError
from edgespike.model.quantized import EncoderSpec
from edgespike.nn.network import SNN, mlp
from edgespike.nn.neurons import NeuronConfig

SERIES = ("basic_motions", "japanese_vowels", "fsdd")
IMAGES = ("digits", "mnist", "fashion_mnist")
SERIES_ENCODERS = ("direct", "delta")
IMAGE_ENCODERS = ("direct", "rate", "latency", "phase", "hybrid", "dvs")


@dataclass
class Prepared:
    """Encoded tensors ready for training: inputs ``(N, T, C)`` float32, labels int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_kind: str
    labels: list[str]
    encoder: EncoderSpec = field(default_factory=EncoderSpec)

    @property
    def timesteps(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[2])


def validation_split(x: torch.Tensor, y: torch.Tensor, seed: int = 0, fraction: float = 0.15
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_val, y_val)``: a seeded ``fraction`` of the training set held out.

    Model selection (best epoch, early stopping) uses this split, never the test set, so the test
    accuracy a command reports is not chosen on the test set. The same seed gives the same split
    in ``edgespike train``, ``edgespike quantize``, the demo and the benchmarks (at least 4 held out).
    """
    if not 0.0 < fraction < 1.0:
        raise EdgeSpikeError(f"validation fraction must be in (0, 1), got {fraction}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = max(4, int(fraction * len(perm)))
    if n_val >= len(perm):
        raise EdgeSpikeError(f"{len(perm)} training samples are too few to hold {n_val} out for validation")
    return x[perm[n_val:]], y[perm[n_val:]], x[perm[:n_val]], y[perm[:n_val]]


def _limit(x: np.ndarray, y: np.ndarray, n: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples spread evenly over the split: loaders that list files class by class (FSDD)
    would otherwise give only the first classes."""
    if not n or n >= len(x):
        return x, y
    idx = np.linspace(0, len(x) - 1, n).round().astype(np.int64)
    return x[idx], y[idx]


def prepare(dataset: str, encoder: str = "direct", timesteps: int = 8, seed: int = 0,
            limit: Optional[int] = None, delta_factor: float = 0.35) -> Prepared:
    """Load ``dataset``, encode it with ``encoder`` and return tensors.

    Series (BasicMotions, JapaneseVowels, FSDD as log-mel frames) keep their own length as the
    time axis: ``direct`` feeds the standardised values, ``delta`` UP/DOWN spikes. Images use
    ``timesteps`` steps with any image encoder; ``dvs`` turns each image into saccade events
    binned into ``timesteps`` frames. ``limit`` keeps that many samples of each split, spread
    evenly over it (tests, quick runs).
    """
    if dataset in SERIES:
        if encoder not in SERIES_ENCODERS:
            raise EdgeSpikeError(f"{dataset} is a time series: choose an encoder of {SERIES_ENCODERS}")
        ds = D.load_fsdd(features=D.mel_filterbank) if dataset == "fsdd" else D.load(dataset)
        xtr, ytr = _limit(ds.x_train, ds.y_train, limit)
        xte, yte = _limit(ds.x_test, ds.y_test, limit)
        mean = ds.x_train.reshape(-1, ds.x_train.shape[-1]).mean(0)
        std = ds.x_train.reshape(-1, ds.x_train.shape[-1]).std(0) + 1e-6
        if encoder == "direct":
            f = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
            spec = E.spec("direct", ds.x_train.shape[-1])
            kind = "values"
        else:
            th = E.delta_thresholds(ds.x_train, delta_factor)
            f = lambda a: E.delta(a, th)  # noqa: E731
            spec = E.spec("delta", ds.x_train.shape[-1], th, scale=1000.0, factor=delta_factor)
            kind = "spikes"
        xtr, xte = f(xtr), f(xte)
    elif dataset in IMAGES:
        if encoder not in IMAGE_ENCODERS:
            raise EdgeSpikeError(f"{dataset} holds images: choose an encoder of {IMAGE_ENCODERS}")
        ds = D.load(dataset)
        xtr, ytr = _limit(ds.x_train, ds.y_train, limit)
        xte, yte = _limit(ds.x_test, ds.y_test, limit)
        kind = "spikes"
        if encoder == "direct":
            f = lambda a, s: E.direct(a, timesteps)  # noqa: E731
            kind = "values"
        elif encoder == "rate":
            f = lambda a, s: E.rate(a, timesteps, "poisson", seed=s)  # noqa: E731
        elif encoder in ("latency", "phase"):
            fn = getattr(E, encoder)
            f = lambda a, s: fn(a, timesteps)  # noqa: E731
        elif encoder == "hybrid":
            f = lambda a, s: E.hybrid(a, timesteps, seed=s)  # noqa: E731
        else:
            h, w = ds.x_train.shape[1] + 4, ds.x_train.shape[2] + 4
            f = lambda a, s: np.stack([E.events_to_frames(ev, timesteps, w, h, 300_000)  # noqa: E731
                                       for ev in E.dvs_saccades(a, pad=2, seed=s)])
        xtr, xte = f(xtr, seed), f(xte, seed + 1)
        spec = E.spec(encoder, int(np.prod(ds.x_train.shape[1:])), timesteps=timesteps)
    else:
        raise EdgeSpikeError(f"unknown dataset {dataset!r}; choose one of {SERIES + IMAGES}")
    return Prepared(torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr),
                    torch.tensor(xte, dtype=torch.float32), torch.tensor(yte), kind, list(ds.labels), spec)


@dataclass
class Architecture:
    """What rebuilds a network from a checkpoint: layer sizes, neuron settings, recurrence, decoding."""

    sizes: list[int]
    neuron: dict
    recurrent: bool = False
    decoding: str = "membrane_sum"

    def build(self) -> SNN:
        return mlp(self.sizes, NeuronConfig(**self.neuron), self.recurrent, self.decoding)

    def to_dict(self) -> dict:
        return asdict(self)
