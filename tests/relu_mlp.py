"""A small ReLU MLP on digits with data-based threshold balancing: the ANN that the back-end and
NIR tests convert to spiking networks."""
from __future__ import annotations

import numpy as np


def train_relu_mlp(x: np.ndarray, y: np.ndarray, train: np.ndarray, hidden: int, epochs: int):
    """Train ``64 -> hidden -> 10`` (no biases) on ``x / 16`` with Adam; full-batch, seeded by the caller.

    Returns ``(mlp, lam1, lam2)``: the network and the 99th percentiles of its hidden and output
    activations on the training rows (the normalisation factors of ANN-to-SNN conversion).
    """
    import torch

    mlp = torch.nn.Sequential(torch.nn.Linear(64, hidden, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, 10, bias=False))
    xt, yt = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(mlp(xt[train]), yt[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        lam1 = float(torch.relu(mlp[0](xt[train])).quantile(0.99))
        lam2 = float(mlp(xt[train]).quantile(0.99))
    return mlp, lam1, lam2
