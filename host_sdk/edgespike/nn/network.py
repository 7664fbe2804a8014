"""A feed-forward stack of spiking layers with a decoding rule: the float SNN that gets trained."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
from torch import nn

from edgespike.errors import EdgeSpikeError
from edgespike.nn.layers import Dense, RecurrentDense
from edgespike.nn.neurons import CUBALIF, NeuronConfig

DECODINGS = ("spike_count", "membrane_last", "membrane_sum", "first_spike")


class SNN(nn.Module):
    """Layers applied in order to an input of shape ``(B, T, ...)``; returns ``(B, classes)`` scores.

    Decodings (those of :class:`edgespike.model.Model`): ``membrane_sum`` scores are the mean
    over steps of the last layer's membrane; ``spike_count`` the spike counts; ``membrane_last``
    the final membrane; ``first_spike`` is trained on spike counts and decoded by latency.
    """

    def __init__(self, layers: Iterable[nn.Module], decoding: str = "membrane_sum") -> None:
        super().__init__()
        if decoding not in DECODINGS:
            raise EdgeSpikeError(f"unknown decoding {decoding!r}; choose one of {DECODINGS}")
        self.layers = nn.ModuleList(layers)
        self.decoding = decoding

    def neurons(self) -> list[CUBALIF]:
        """The neuron modules, first to last."""
        return [m for m in self.modules() if isinstance(m, CUBALIF)]

    def clear_records(self) -> None:
        """Drop the membranes and rasters kept from the last forward (e.g. before deepcopy)."""
        for n in self.neurons():
            n.last_v = n.last_spikes = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(0, 1)  # (T, B, ...)
        for layer in self.layers:
            h = layer(h)
        out = self.neurons()[-1]
        return decode(self.decoding, out.last_spikes, out.last_v, self.training)

    def spike_rates(self) -> list[torch.Tensor]:
        """Per spiking layer, the mean spike rate of each neuron over the last forward ``(B, N)``."""
        return [n.last_spikes.mean(0).flatten(1) for n in self.neurons() if n.config.spiking]


def decode(decoding: str, spikes: torch.Tensor, v: torch.Tensor, training: bool) -> torch.Tensor:
    """Scores ``(B, N)`` from the last layer's raster and membranes ``(T, B, N)``."""
    if decoding == "membrane_sum":
        return v.mean(0)
    if decoding == "membrane_last":
        return v[-1]
    if decoding == "spike_count" or training:
        return spikes.sum(0)
    steps = spikes.shape[0]
    fired = spikes.sum(0) > 0
    first = torch.argmax((spikes > 0).to(torch.int64), dim=0)
    return torch.where(fired, steps - first, torch.zeros_like(first)).to(spikes.dtype)


def mlp(sizes: Sequence[int], neuron: Optional[NeuronConfig] = None, recurrent: bool = False,
        decoding: str = "membrane_sum", readout: Optional[NeuronConfig] = None) -> SNN:
    """A dense SNN ``sizes[0] -> ... -> sizes[-1]``.

    Hidden layers use ``neuron`` (recurrent if asked); the output layer uses ``readout``, by default a
    non-spiking integrator for ``membrane_sum`` / ``membrane_last`` and a spiking layer otherwise.
    """
    neuron = neuron or NeuronConfig()
    if readout is None:
        spiking = decoding in ("spike_count", "first_spike")
        readout = NeuronConfig(du=neuron.du, dv=neuron.dv, spiking=spiking,
                               surrogate=neuron.surrogate, slope=neuron.slope)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 2):
        cls = RecurrentDense if recurrent else Dense
        layers.append(cls(sizes[i], sizes[i + 1], neuron))
    layers.append(Dense(sizes[-2], sizes[-1], readout))
    return SNN(layers, decoding)
