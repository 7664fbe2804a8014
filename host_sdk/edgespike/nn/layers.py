"""Spiking layers over time: tensors are ``(T, B, ...)`` (time first) inside the network.

Every layer evaluates its whole sequence before the next layer runs. Because a spike crosses
every feed-forward layer in the step it is emitted (docs/SEMANTICS.md), this equals running
all layers step by step; only the recurrent path needs the step loop inside the layer.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from edgespike.nn.neurons import CUBALIF, NeuronConfig


class Dense(nn.Module):
    """Fully connected synapses into a layer of CUBA-LIF neurons: ``(T,B,in) -> (T,B,out)``."""

    def __init__(self, in_features: int, out_features: int, neuron: Optional[NeuronConfig] = None,
                 bias: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.lif = CUBALIF(out_features, neuron)

    @property
    def in_features(self) -> int:
        return self.fc.in_features

    @property
    def out_features(self) -> int:
        return self.fc.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.fc(x), self.bias)


class RecurrentDense(Dense):
    """Dense layer with all-to-all recurrent synapses (one step of delay)."""

    def __init__(self, in_features: int, out_features: int, neuron: Optional[NeuronConfig] = None,
                 bias: bool = False) -> None:
        super().__init__(in_features, out_features, neuron, bias)
        self.rec = nn.Linear(out_features, out_features, bias=False)
        nn.init.normal_(self.rec.weight, std=0.5 / out_features ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ff = self.fc(x)
        state = self.lif.init_state(ff[0])
        prev = torch.zeros_like(ff[0])
        vth = self.lif.vth()
        spikes, vs = [], []
        for t in range(ff.shape[0]):
            prev, state = self.lif.step(ff[t] + self.rec(prev), state, self.bias, vth)
            spikes.append(prev)
            vs.append(state["v"])
        self.lif.last_v = torch.stack(vs)
        self.lif.last_spikes = torch.stack(spikes)
        return self.lif.last_spikes


class Conv2d(nn.Module):
    """2-D convolution into CUBA-LIF neurons: ``(T,B,C,H,W) -> (T,B,C',H',W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, neuron: Optional[NeuronConfig] = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.lif = CUBALIF((out_channels,), neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        cur = self.conv(x.flatten(0, 1))
        return self.lif(cur.view(t, b, *cur.shape[1:]))


class Pool2d(nn.Module):
    """Spatial pooling of spike maps (``"max"`` or ``"avg"``), applied at every step."""

    def __init__(self, kernel_size: int, kind: str = "max") -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size) if kind == "max" else nn.AvgPool2d(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.pool(x.flatten(0, 1))
        return y.view(t, b, *y.shape[1:])


class Flatten(nn.Module):
    """``(T, B, ...) -> (T, B, features)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)
