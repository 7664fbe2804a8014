"""The numpy integer reference: the executable form of docs/SEMANTICS.md.

It is written for clarity, not speed, but is vectorized over a batch axis so whole test sets
run in seconds. The C core (:mod:`edgespike.sim.core`), the firmware and the Lava adapter must
match it bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edgespike.errors import InputError
from edgespike.model.quantized import Model, _per_neuron
from edgespike.sim.checks import (as_array, check_events, exact_integers, model_input,
                                  require_valid)

_MAX24 = 1 << 23


@dataclass
class LayerCounters:
    """Work done by one layer during one inference (docs/SEMANTICS.md, "Counters")."""

    input_events: int = 0
    synops: int = 0
    neuron_updates: int = 0
    spikes: int = 0
    cycles: int = 0


@dataclass
class RunOutput:
    """Everything one inference produced.

    Attributes:
        prediction: index of the winning output neuron.
        scores: one int64 score per output neuron (meaning set by the model's decoding).
        spikes: per layer, a ``(timesteps, size)`` uint8 raster.
        u, v, th: per layer, the final int32 state.
        counters: per layer :class:`LayerCounters`.
    """

    prediction: int
    scores: np.ndarray
    spikes: list[np.ndarray] = field(default_factory=list)
    u: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)
    th: list[np.ndarray] = field(default_factory=list)
    counters: list[LayerCounters] = field(default_factory=list)
    cycles: int = 0
    cycle_source: str = "none"


def shift(a: np.ndarray, e: int) -> np.ndarray:
    """``a << e`` for ``e >= 0``, else floor division by ``2^-e`` (arithmetic shift)."""
    return a << e if e >= 0 else a >> (-e)


def decay(x: np.ndarray, d: int) -> np.ndarray:
    """``trunc0(x * (4096 - d) / 4096)``: rounds toward zero, as Loihi."""
    p = x * (4096 - d)
    return np.sign(p) * (np.abs(p) >> 12)


def wrap24(a: np.ndarray) -> np.ndarray:
    """One 24-bit wrap, as Lava: keeps +2^23, maps values <= -2^23 up by 2^24."""
    a = np.where(a > _MAX24, a - 2 * _MAX24, a)
    return np.where(a <= -_MAX24, a + 2 * _MAX24, a)


def clip24(a: np.ndarray) -> np.ndarray:
    """Saturate to the symmetric 24-bit range [-(2^23 - 1), 2^23 - 1]."""
    return np.clip(a, -_MAX24 + 1, _MAX24 - 1)


def check_input(model: Model, x: np.ndarray) -> np.ndarray:
    """Validate one input (timesteps x input_size) or a batch of them; returns int64.

    The model is validated first (once per content, :func:`edgespike.sim.checks.require_valid`).
    Every value must be exactly an integer within the model's range: 0/1 for spike models,
    ``|x| <= input_max_abs`` for direct encoding. Integer, bool and unsigned dtypes are taken
    as they are; a float array only if every value is finite and integral (``1.0`` is ``1``);
    nothing is ever wrapped or truncated (docs/SEMANTICS.md, "Inputs").

    Raises:
        ModelError: the model fails validation.
        InputError: wrong shape, a non-integer value (NaN, inf, 0.5), or a value out of range
            (including values beyond int64: ``2**64 - 1`` is not ``-1``).
    """
    require_valid(model)
    return model_input(model, x).astype(np.int64, copy=False)


def run_batch(model: Model, inputs: np.ndarray) -> list[RunOutput]:
    """Run a batch of inferences (``batch x timesteps x input_size``) from reset state.

    Raises :class:`~edgespike.errors.ModelError` if the model fails validation and
    :class:`InputError` if an input does not fit it (:func:`check_input`), before running.
    """
    x_all = check_input(model, inputs)
    if x_all.ndim == 2:
        x_all = x_all[None]
    batch, steps = x_all.shape[0], model.timesteps
    n_layers = len(model.layers)

    mats, nnz, rec_mats, rec_nnz, params = [], [], [], [], []
    for layer in model.layers:
        w = layer.weights.integer_matrix()
        mats.append(w)
        nnz.append((w != 0).sum(axis=1))
        if layer.recurrent is not None:
            r = layer.recurrent.integer_matrix()
            rec_mats.append(r)
            rec_nnz.append((r != 0).sum(axis=1))
        else:
            rec_mats.append(None)
            rec_nnz.append(None)
        n = layer.neurons
        params.append((
            _per_neuron(n.vth, layer.size, "vth") << 6,
            _per_neuron(n.bias_mant, layer.size, "bias_mant") << n.bias_exp,
        ))

    zeros = [np.zeros((batch, layer.size), dtype=np.int64) for layer in model.layers]
    u = [z.copy() for z in zeros]
    v = [z.copy() for z in zeros]
    th = [z.copy() for z in zeros]
    ref = [z.copy() for z in zeros]
    prev = [z.copy() for z in zeros]
    rasters = [np.zeros((batch, steps, layer.size), dtype=np.uint8) for layer in model.layers]
    events = np.zeros((batch, n_layers), dtype=np.int64)
    synops = np.zeros((batch, n_layers), dtype=np.int64)
    vsum = np.zeros((batch, model.output_size), dtype=np.int64)

    for t in range(steps):
        x = x_all[:, t, :]
        for li, layer in enumerate(model.layers):
            nrn = layer.neurons
            vth6, bias = params[li]
            a_in = shift(x @ mats[li], layer.weights.exp)
            events[:, li] += (x != 0).sum(axis=1)
            synops[:, li] += (x != 0).astype(np.int64) @ nnz[li]
            if rec_mats[li] is not None:
                a_in = a_in + shift(prev[li] @ rec_mats[li], layer.recurrent.exp)
                events[:, li] += (prev[li] != 0).sum(axis=1)
                synops[:, li] += prev[li] @ rec_nnz[li]
            u[li] = wrap24(decay(u[li], nrn.du) + (a_in << 6))
            active = ref[li] == 0
            v_new = clip24(decay(v[li], nrn.dv) + u[li] + bias)
            theta = vth6 + th[li]
            spike = active & (v_new > theta)
            vv = np.where(active, v_new, v[li])
            if nrn.reset == "zero":
                vv = np.where(spike, 0, vv)
            else:
                vv = np.where(spike, vv - theta, vv)
            v[li] = vv
            ref[li] = np.where(active, np.where(spike, nrn.refractory, 0), ref[li] - 1)
            if nrn.adapt_step:
                th[li] = decay(th[li], nrn.adapt_decay) + spike * (nrn.adapt_step << 6)
            s = spike.astype(np.int64)
            rasters[li][:, t, :] = s
            prev[li] = s
            x = s
        vsum += v[-1]

    out_raster = rasters[-1]
    if model.decoding == "spike_count":
        scores = out_raster.sum(axis=1).astype(np.int64)
    elif model.decoding == "membrane_last":
        scores = v[-1].copy()
    elif model.decoding == "membrane_sum":
        scores = vsum
    else:  # first_spike
        fired = out_raster.any(axis=1)
        first = np.argmax(out_raster, axis=1)
        scores = np.where(fired, steps - first, 0).astype(np.int64)

    results = []
    for b in range(batch):
        counters = [
            LayerCounters(
                input_events=int(events[b, li]), synops=int(synops[b, li]),
                neuron_updates=steps * layer.size, spikes=int(rasters[li][b].sum()),
            )
            for li, layer in enumerate(model.layers)
        ]
        results.append(RunOutput(
            prediction=int(np.argmax(scores[b])), scores=scores[b].copy(),
            spikes=[r[b] for r in rasters], u=[a[b].astype(np.int32) for a in u],
            v=[a[b].astype(np.int32) for a in v], th=[a[b].astype(np.int32) for a in th],
            counters=counters,
        ))
    return results


def run(model: Model, x: np.ndarray) -> RunOutput:
    """Run one inference (``timesteps x input_size``) from reset state."""
    x = as_array(x, "input")
    if x.ndim != 2:
        raise InputError(f"run takes one input (timesteps, input_size), got shape {x.shape}; "
                         "use run_batch for a batch")
    return run_batch(model, x[None])[0]


def predict(model: Model, inputs: np.ndarray) -> np.ndarray:
    """Predicted class per input of a batch (``batch x timesteps x input_size``)."""
    return np.array([r.prediction for r in run_batch(model, inputs)], dtype=np.int64)


def events_from_spikes(spikes: np.ndarray) -> np.ndarray:
    """A ``timesteps x n`` 0/1 raster as sorted events ``(step << 16) | index`` (uint32).

    Raises :class:`InputError` unless every value is exactly 0 or 1 (2, -1, 0.5 or NaN are
    not spikes) and the raster fits the 16-bit step and index fields (at most 65536 each).
    """
    s = as_array(spikes, "spike raster")
    if s.ndim != 2:
        raise InputError(f"a spike raster is (timesteps, n), got shape {s.shape}")
    if s.shape[0] > 1 << 16 or s.shape[1] > 1 << 16:
        raise InputError(f"a spike raster of shape {s.shape} does not fit events (step << 16) "
                         "| index: at most 65536 steps and 65536 indices")
    s = exact_integers(s, what="spike raster", lo=0, hi=1, axes=("step", "index"),
                       rule="spikes are 0 or 1")
    t, i = np.nonzero(s)
    return ((t.astype(np.uint32) << 16) | i.astype(np.uint32)).astype(np.uint32)


def spikes_from_events(events: np.ndarray, timesteps: int, size: int) -> np.ndarray:
    """Inverse of :func:`events_from_spikes`; raises :class:`InputError` on out-of-range items,
    on anything that is not a 1-D integer array of codes (floats are refused, not truncated)."""
    ev = check_events(events, timesteps, size)
    t, i = ev >> 16, ev & 0xFFFF
    out = np.zeros((timesteps, size), dtype=np.uint8)
    out[t, i] = 1
    return out


def counters_from_spikes(model: Model, x: np.ndarray, spikes: Sequence[np.ndarray]
                         ) -> list[LayerCounters]:
    """Counters of one inference from its input ``(timesteps, input_size)`` and the spike
    raster ``(timesteps, size)`` of every layer, as docs/SEMANTICS.md defines them:

    input events are the non-zero inputs (feed-forward, plus the layer's own spikes of the
    previous step for recurrent layers); SynOps count, for every non-zero input, the non-zero
    weights of its row; neuron updates are ``size`` per step; spikes are the raster's sum.
    """
    if len(spikes) != len(model.layers):
        raise ValueError(f"need the spike raster of all {len(model.layers)} layers, "
                         f"got {len(spikes)}")
    out = []
    inp = np.asarray(x).astype(np.int64)
    for layer, raster in zip(model.layers, spikes):
        s = np.asarray(raster).astype(np.int64)
        active = (inp != 0).astype(np.int64)
        nnz = (layer.weights.integer_matrix() != 0).sum(axis=1)
        events = int(active.sum())
        synops = int((active @ nnz).sum())
        if layer.recurrent is not None:
            prev = (s[:-1] != 0).astype(np.int64)  # spikes of step t-1 feed step t
            rnnz = (layer.recurrent.integer_matrix() != 0).sum(axis=1)
            events += int(prev.sum())
            synops += int((prev @ rnnz).sum())
        out.append(LayerCounters(input_events=events, synops=synops,
                                 neuron_updates=model.timesteps * layer.size,
                                 spikes=int(s.sum())))
        inp = s
    return out
