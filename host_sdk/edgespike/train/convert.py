"""ANN-to-SNN conversion of a ReLU network with data-based threshold balancing.

Rate-coded IF neurons (no leak, reset by subtraction) approximate ReLU activations. Each
layer's weights are rescaled by ``lambda_{l-1} / lambda_l`` where ``lambda_l`` is a high
percentile of layer ``l``'s ReLU activations on calibration data (Rueckauer et al. 2017), so a
threshold of 1 fits every layer.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgespike.errors import ModelError
from edgespike.nn.layers import Dense
from edgespike.nn.network import SNN
from edgespike.nn.neurons import NeuronConfig


@torch.no_grad()
def convert_ann(ann: nn.Sequential, x_calib: torch.Tensor, percentile: float = 99.9,
                decoding: str = "membrane_sum") -> SNN:
    """A float :class:`SNN` equivalent of ``ann`` (``Linear``/``ReLU``/``Flatten`` only).

    The SNN takes the ANN's input repeated over time (direct encoding, ``(B, T, features)``);
    its output layer integrates without spiking and decodes by ``decoding``.
    """
    linears = [m for m in ann if isinstance(m, nn.Linear)]
    for m in ann:
        if not isinstance(m, (nn.Linear, nn.ReLU, nn.Flatten)):
            raise ModelError(f"cannot convert {type(m).__name__}: only Linear, ReLU and Flatten are supported")
    if not linears:
        raise ModelError("the ANN has no Linear layer to convert")
    ann.eval()
    h = x_calib.flatten(1)
    scales = [1.0]
    for i, lin in enumerate(linears):
        h = lin(h)
        if i < len(linears) - 1:
            h = torch.relu(h)
            lam = float(np.percentile(h.numpy(), percentile))
            scales.append(max(lam, 1e-6))
    layers = []
    for i, lin in enumerate(linears):
        last = i == len(linears) - 1
        prev, cur = scales[i], (1.0 if last else scales[i + 1])
        cfg = NeuronConfig(du=4096, dv=0, threshold=1.0, reset="subtract", spiking=not last)
        d = Dense(lin.in_features, lin.out_features, cfg, bias=lin.bias is not None)
        d.fc.weight.copy_(lin.weight * prev / cur)
        if lin.bias is not None:
            d.bias.copy_(lin.bias / cur)
        layers.append(d)
    return SNN(layers, decoding)
