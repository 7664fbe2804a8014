"""Float CUBA-LIF neurons, surrogates and layers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgespike.errors import EdgeSpikeError
from edgespike.nn import (CUBALIF, SNN, SURROGATES, Conv2d, Dense, Flatten, NeuronConfig, Pool2d,
                          RecurrentDense, mlp, spike_fn)


def _manual(current, du, dv, vth, reset="zero"):
    """The DESIGN section 3 equations, written out plainly, one neuron."""
    u = v = 0.0
    spikes, vs = [], []
    for i in current:
        u = u * (1 - du / 4096) + i
        v = v * (1 - dv / 4096) + u
        s = float(v > vth)
        if s:
            v = 0.0 if reset == "zero" else v - vth
        spikes.append(s)
        vs.append(v)
    return spikes, vs


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_follows_the_design_equations(reset):
    cur = [0.3, 0.5, 0.0, 0.9, 0.2, 0.0, 0.0, 1.5, 0.1, 0.4]
    lif = CUBALIF(1, NeuronConfig(du=1024, dv=410, threshold=1.0, reset=reset))
    s = lif(torch.tensor(cur).view(-1, 1, 1))
    exp_s, exp_v = _manual(cur, 1024, 410, 1.0, reset)
    assert s.view(-1).tolist() == exp_s
    assert torch.allclose(lif.last_v.view(-1), torch.tensor(exp_v), atol=1e-5)
    assert sum(exp_s) >= 2


def test_refractory_silences_the_neuron():
    cur = torch.full((12, 1, 1), 2.0)
    free = CUBALIF(1, NeuronConfig(dv=0, du=4096))(cur).view(-1)
    ref = CUBALIF(1, NeuronConfig(dv=0, du=4096, refractory=3))(cur).view(-1)
    assert free.sum() == 12
    idx = torch.nonzero(ref).view(-1).tolist()
    assert all(b - a >= 4 for a, b in zip(idx, idx[1:])) and len(idx) == 3


def test_adaptive_threshold_lowers_the_rate():
    cur = torch.full((40, 1, 1), 0.6)
    plain = CUBALIF(1, NeuronConfig(dv=200))(cur).sum()
    adaptive = CUBALIF(1, NeuronConfig(dv=200, adapt_step=1.0, adapt_decay=100))(cur).sum()
    assert 0 < adaptive < plain


@pytest.mark.parametrize("mode,shape", [("layer", ()), ("channel", (5,))])
def test_learnable_threshold_gets_gradients(mode, shape):
    lif = CUBALIF(5, NeuronConfig(learn_threshold=mode, dv=100))
    assert isinstance(lif.threshold, nn.Parameter) and tuple(lif.threshold.shape) == shape
    x = torch.rand(10, 3, 5) * 0.8
    lif(x).sum().backward()
    assert lif.threshold.grad is not None and lif.threshold.grad.abs().sum() > 0


@pytest.mark.parametrize("name", SURROGATES)
def test_surrogates_step_forward_and_smooth_backward(name):
    x = torch.linspace(-1, 1, 21, requires_grad=True)
    s = spike_fn(x, name)
    assert torch.equal(s, (x > 0).float())
    s.sum().backward()
    assert x.grad[10] > 0 and x.grad[10] >= x.grad[0]


def test_unknown_names_raise():
    with pytest.raises(EdgeSpikeError, match="surrogate"):
        spike_fn(torch.zeros(1), "relu")
    with pytest.raises(EdgeSpikeError):
        NeuronConfig(du=5000).check()
    with pytest.raises(EdgeSpikeError, match="decoding"):
        SNN([Dense(2, 2)], decoding="vote")


def test_layers_compose_over_time():
    torch.manual_seed(0)
    net = SNN([Conv2d(2, 4, 3, padding=1), Pool2d(2), Flatten(), RecurrentDense(4 * 4 * 4, 16),
               Dense(16, 3, NeuronConfig(spiking=False))])
    x = (torch.rand(5, 7, 2, 8, 8) < 0.3).float()  # (B, T, C, H, W)
    out = net(x)
    assert out.shape == (5, 3)
    out.sum().backward()
    rec = net.layers[3]
    assert rec.rec.weight.grad is not None and net.layers[0].conv.weight.grad.abs().sum() > 0
    assert net.neurons()[-1].last_spikes.sum() == 0  # non-spiking readout
    rates = net.spike_rates()
    assert len(rates) == 2 and rates[1].shape == (5, 16)


def test_recurrent_weights_change_the_output():
    torch.manual_seed(0)
    layer = RecurrentDense(4, 6, NeuronConfig(dv=0))
    x = torch.rand(10, 2, 4)
    a = layer(x).clone()
    with torch.no_grad():
        layer.rec.weight.fill_(0.8)
    assert not torch.equal(a, layer(x))


def test_mlp_builds_the_readout_for_the_decoding():
    assert not mlp([4, 3, 2]).neurons()[-1].config.spiking
    assert mlp([4, 3, 2], decoding="spike_count").neurons()[-1].config.spiking
    assert isinstance(mlp([4, 3, 2], recurrent=True).layers[0], RecurrentDense)
