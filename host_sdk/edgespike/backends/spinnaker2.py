"""SpiNNaker 2 exporter for py-spinnaker2 (``snn.Population``, ``snn.Projection``,
``hardware.SpiNNaker2Chip``) and, alternatively, through ``s2_nir.from_nir``.

py-spinnaker2 is not on PyPI and could not be installed where this was written, so this module
was written against its documented API and *never run against it*. :func:`plan` is pure Python
and tested; :func:`build_network`, :func:`run_batch` and :func:`export_via_nir` import
``spinnaker2`` / ``s2_nir`` only when called, and raise :class:`ToolMissing` without them.

The mapping (py-spinnaker2's ``lif_curr_exp`` model, one step per time step, integer weights):

* each layer: ``snn.Population(size, "lif_curr_exp", params)`` with
  ``threshold = vth << 6``, ``alpha_decay = 1 - dv/4096`` and
  ``exc_decay = inh_decay = 1 - du/4096`` (floats on the chip's ARM cores),
  ``i_offset = bias_mant << bias_exp``, ``v_reset = 0``, ``t_refrac = refractory``,
  ``reset = "reset_to_v_reset"`` or ``"reset_by_subtraction"``;
* synapses: ``snn.Projection(pre, post, connections=[[pre, post, weight, delay], ...])`` with the
  integer weight (ternary: ``+a_pos`` / ``-a_neg``) times ``2^exp`` folded into the neuron scale:
  the weight is the integer ``W`` and the threshold and bias are divided by ``2^exp`` when
  ``exp < 0`` (multiplied when ``exp > 0``); py-spinnaker2 documents 4-bit signed synapse
  weights (-15..15), so a layer with larger weights is refused (ternary layers with
  ``a_pos, a_neg <= 15`` fit);
* input: a ``spike_list`` population, ``params = {index: [steps...]}``; direct-encoded values
  are refused (the chip takes spikes).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from edgespike.errors import ModelError, ToolMissing
from edgespike.model.quantized import Model, _per_neuron
from edgespike.sim.reference import LayerCounters, RunOutput, check_input

log = logging.getLogger(__name__)

#: py-spinnaker2's documented synapse weight range (4-bit signed).
S2_WEIGHT_MAX = 15
INSTALL = ("py-spinnaker2 is not on PyPI: install it from its repository "
           "(https://gitlab.com/spinnaker2/py-spinnaker2) with access to a SpiNNaker 2 board")


@dataclass
class PopulationSpec:
    """One ``snn.Population``: its size, neuron model and parameters."""

    name: str
    size: int
    neuron_model: str
    params: dict[str, Any]
    record: list[str] = field(default_factory=list)


@dataclass
class ProjectionSpec:
    """One ``snn.Projection``: ``connections`` rows are ``[pre, post, weight, delay]``."""

    name: str
    pre: str
    post: str
    connections: list[list[int]]


@dataclass
class S2Plan:
    """What a model becomes on SpiNNaker 2, independent of py-spinnaker2 being installed."""

    populations: list[PopulationSpec]
    projections: list[ProjectionSpec]
    timesteps: int

    def synapse_count(self) -> int:
        return sum(len(p.connections) for p in self.projections)


def plan(model: Model, inputs: Optional[np.ndarray] = None) -> S2Plan:
    """The populations and projections of ``model`` for py-spinnaker2 (raises ModelError).

    ``inputs`` (one ``timesteps x input_size`` spike raster) fills the input spike list.
    """
    model.validate()
    if model.input_kind != "spikes":
        raise ModelError("SpiNNaker 2 export takes spike input only; encode values as spikes")
    spikes: dict[int, list[int]] = {i: [] for i in range(model.input_size)}
    if inputs is not None:
        x = check_input(model, inputs)
        if x.ndim != 2:
            raise ModelError("plan() takes one input (timesteps x input_size)")
        for t, i in zip(*np.nonzero(x)):
            spikes[int(i)].append(int(t))
    pops = [PopulationSpec("input", model.input_size, "spike_list", spikes)]
    projs: list[ProjectionSpec] = []
    prev = "input"
    for li, layer in enumerate(model.layers):
        n = layer.neurons
        if n.adapt_step:
            raise ModelError(f"layer {li}: the adaptive threshold has no lif_curr_exp equivalent")
        w = layer.weights.integer_matrix()
        if np.abs(w).max() > S2_WEIGHT_MAX:
            raise ModelError(f"layer {li}: weights up to {np.abs(w).max()} exceed py-spinnaker2's "
                             f"4-bit range (|w| <= {S2_WEIGHT_MAX}); use ternary weights with "
                             "a_pos, a_neg <= 15 or requantize")
        # the exponent scales every input of the layer: fold it into threshold and bias
        scale = 2.0 ** (-layer.weights.exp)
        vth = _per_neuron(n.vth, layer.size, "vth") << 6
        bias = _per_neuron(n.bias_mant, layer.size, "bias_mant") << n.bias_exp
        name = layer.name or f"layer{li}"
        params: dict[str, Any] = {
            "threshold": (vth * scale / 64.0).tolist(),
            "alpha_decay": 1.0 - n.dv / 4096.0,
            "exc_decay": 1.0 - n.du / 4096.0,
            "inh_decay": 1.0 - n.du / 4096.0,
            "i_offset": (bias * scale / 64.0).tolist(),
            "v_reset": 0.0,
            "t_refrac": int(n.refractory),
            "reset": "reset_to_v_reset" if n.reset == "zero" else "reset_by_subtraction",
        }
        rec = ["spikes"] if li == len(model.layers) - 1 else []
        pops.append(PopulationSpec(name, layer.size, "lif_curr_exp", params, rec))
        pre_i, post_i = np.nonzero(w)
        conns = [[int(a), int(b), int(w[a, b]), 0] for a, b in zip(pre_i, post_i)]
        projs.append(ProjectionSpec(f"{prev}->{name}", prev, name, conns))
        if layer.recurrent is not None:
            r = layer.recurrent.integer_matrix()
            if layer.recurrent.exp != layer.weights.exp or np.abs(r).max() > S2_WEIGHT_MAX:
                raise ModelError(f"layer {li}: recurrent weights need the feed-forward exponent "
                                 f"and |w| <= {S2_WEIGHT_MAX} on SpiNNaker 2")
            a, b = np.nonzero(r)
            projs.append(ProjectionSpec(f"{name}->{name}", name, name,
                                        [[int(i), int(j), int(r[i, j]), 1] for i, j in zip(a, b)]))
        prev = name
    return S2Plan(pops, projs, model.timesteps)


def _import_s2() -> tuple[Any, Any]:
    try:
        from spinnaker2 import hardware, snn  # noqa: PLC0415 (optional, not on PyPI)
    except ImportError as exc:
        raise ToolMissing(f"{INSTALL} ({exc})") from exc
    return snn, hardware


def available() -> bool:
    """True if py-spinnaker2 imports here (a board is still needed to run)."""
    try:
        _import_s2()
    except ToolMissing:
        return False
    return True


def build_network(p: S2Plan) -> tuple[Any, dict[str, Any]]:
    """``snn.Network`` with the plan's populations and projections (needs py-spinnaker2)."""
    snn, _ = _import_s2()
    pops = {s.name: snn.Population(size=s.size, neuron_model=s.neuron_model, params=s.params,
                                   name=s.name, record=s.record) for s in p.populations}
    net = snn.Network("edgespike")
    net.add(*pops.values())
    for s in p.projections:
        net.add(snn.Projection(pre=pops[s.pre], post=pops[s.post], connections=s.connections))
    return net, pops


def run_batch(model: Model, inputs: np.ndarray, *, eth_ip: Optional[str] = None) -> list[RunOutput]:
    """Run each input on a SpiNNaker 2 chip (``hardware.SpiNNaker2Chip(eth_ip=...)``).

    Spike-count decoding only; counters hold the output spikes. Needs py-spinnaker2 and a board.
    """
    _, hardware = _import_s2()
    if eth_ip is None:
        raise ToolMissing("SpiNNaker 2 needs a board: pass eth_ip= (the chip's Ethernet address)")
    if model.decoding != "spike_count":
        raise ModelError("the SpiNNaker 2 runner decodes spike counts only")
    x_all = check_input(model, inputs)
    if x_all.ndim == 2:
        x_all = x_all[None]
    outs = []
    for x in x_all:
        net, pops = build_network(plan(model, x))
        hw = hardware.SpiNNaker2Chip(eth_ip=eth_ip)
        hw.run(net, model.timesteps)
        out_pop = pops[plan(model).populations[-1].name]
        spikes = out_pop.get_spikes()  # {neuron: [steps]}
        raster = np.zeros((model.timesteps, model.output_size), dtype=np.uint8)
        for i, steps in spikes.items():
            raster[[s for s in steps if s < model.timesteps], int(i)] = 1
        scores = raster.sum(axis=0).astype(np.int64)
        counters = [LayerCounters() for _ in model.layers]
        counters[-1].spikes = int(raster.sum())
        outs.append(RunOutput(prediction=int(np.argmax(scores)), scores=scores,
                              spikes=[np.zeros((model.timesteps, layer.size), np.uint8)
                                      for layer in model.layers[:-1]] + [raster],
                              counters=counters))
    return outs


def export_via_nir(model: Model) -> Any:
    """py-spinnaker2's own NIR import: ``s2_nir.from_nir(graph)`` on our NIR export."""
    try:
        import s2_nir  # noqa: PLC0415 (optional, not on PyPI)
    except ImportError as exc:
        raise ToolMissing(f"s2_nir comes with py-spinnaker2; {INSTALL} ({exc})") from exc
    from edgespike.model.nir import to_nir

    return s2_nir.from_nir(to_nir(model))


__all__ = ["PopulationSpec", "ProjectionSpec", "S2Plan", "available", "build_network",
           "export_via_nir", "plan", "run_batch"]
