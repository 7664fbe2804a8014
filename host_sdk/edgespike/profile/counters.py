"""Counters of inferences, summarised per layer, and derived from spike rasters when a back-end
returns none (the rules of docs/SEMANTICS.md, "Counters")."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

from edgespike.model import Model
from edgespike.sim.reference import LayerCounters, RunOutput, counters_from_spikes

log = logging.getLogger(__name__)

#: Unit of each cycle source, as printed.
CYCLE_UNITS = {"qemu_icount": "instructions", "dwt": "cycles", "host_ns": "ns", "none": "-"}
#: What a figure of each source is, said plainly in reports: QEMU counts instructions, not
#: cycles (estimated cycles come from edgespike.profile.estimate).
CYCLE_MEANING = {"qemu_icount": "exact instructions (QEMU -icount, to within 40), not cycles",
                 "dwt": "measured cycles (DWT)", "host_ns": "host nanoseconds", "none": "-"}


def has_counters(out: RunOutput, n_layers: int) -> bool:
    """True when ``out`` carries counters for every layer (not all zero)."""
    if len(out.counters) != n_layers:
        return False
    return any(c.neuron_updates or c.synops or c.spikes or c.input_events for c in out.counters)


@dataclass
class LayerCounts:
    """Mean work of one layer per inference (events; cycles in the profile's cycle unit)."""

    layer: int
    kind: str
    weights: str
    fan_in: int
    size: int
    input_events: float
    synops: float
    neuron_updates: float
    spikes: float
    cycles: float
    weight_bytes: int


@dataclass
class CounterSummary:
    """Per-layer mean counters over ``inferences`` runs from one source.

    Attributes:
        source: where the counts came from (``device``, ``reference``, ``lava`` ...).
        derived: True when they were computed from spike rasters (docs/SEMANTICS.md rules)
            because the source returned none.
        cycle_source: ``dwt`` (real Cortex-M), ``qemu_icount`` (instructions under QEMU
            -icount), ``host_ns`` or ``none``.
        cycles: mean whole-inference cycles (the unit of ``cycle_source``).
    """

    source: str
    inferences: int
    layers: list[LayerCounts]
    cycle_source: str = "none"
    cycles: float = 0.0
    derived: bool = False

    @property
    def synops(self) -> float:
        return float(sum(la.synops for la in self.layers))

    @property
    def neuron_updates(self) -> float:
        return float(sum(la.neuron_updates for la in self.layers))

    @property
    def spikes(self) -> float:
        return float(sum(la.spikes for la in self.layers))

    @property
    def input_events(self) -> float:
        return float(sum(la.input_events for la in self.layers))

    @property
    def cycle_unit(self) -> str:
        return CYCLE_UNITS.get(self.cycle_source, self.cycle_source)

    @property
    def cycle_meaning(self) -> str:
        """What ``cycles`` are (instructions under QEMU, cycles with DWT), said plainly."""
        return CYCLE_MEANING.get(self.cycle_source, self.cycle_source)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(synops=self.synops, neuron_updates=self.neuron_updates, spikes=self.spikes,
                 input_events=self.input_events, cycle_unit=self.cycle_unit,
                 cycle_meaning=self.cycle_meaning)
        return d


def summarize(model: Model, outputs: Sequence[RunOutput], source: str,
              inputs: Optional[np.ndarray] = None) -> CounterSummary:
    """Mean per-layer counters of ``outputs`` (one per input).

    Outputs without counters (a back-end that returns only spike rasters) get counters derived
    from their rasters of every layer, which needs ``inputs``; the summary is then marked
    ``derived``. Raises ValueError when neither is possible.
    """
    n_layers = len(model.layers)
    counters: list[list[LayerCounters]] = []
    derived = False
    for i, out in enumerate(outputs):
        if has_counters(out, n_layers):
            counters.append(out.counters)
            continue
        if inputs is None or len(out.spikes) != n_layers:
            raise ValueError(f"{source} returned no counters and no spike raster of every layer "
                             f"for input {i}: cannot count its work")
        counters.append(counters_from_spikes(model, inputs[i], out.spikes))
        derived = True
    if derived:
        log.info("%s returned no counters: derived from its spike rasters", source)
    n = max(1, len(counters))

    def mean(li: int, attr: str) -> float:
        return float(sum(getattr(c[li], attr) for c in counters) / n)

    layers = [LayerCounts(layer=li, kind=layer.kind, weights=layer.weights.encoding,
                          fan_in=layer.weights.fan_in, size=layer.size,
                          input_events=mean(li, "input_events"), synops=mean(li, "synops"),
                          neuron_updates=mean(li, "neuron_updates"), spikes=mean(li, "spikes"),
                          cycles=mean(li, "cycles"),
                          weight_bytes=layer.weights.storage_bytes()
                          + (layer.recurrent.storage_bytes() if layer.recurrent is not None else 0))
              for li, layer in enumerate(model.layers)]
    cyc = [o.cycles for o in outputs]
    return CounterSummary(source=source, inferences=len(counters), layers=layers,
                          cycle_source=outputs[0].cycle_source if outputs else "none",
                          cycles=float(np.mean(cyc)) if cyc else 0.0, derived=derived)


@dataclass
class CounterCheck:
    """Whether two sources counted the same events for every input and layer."""

    equal: bool
    compared: int
    mismatches: list[str] = field(default_factory=list)


def compare_counters(a: Sequence[RunOutput], b: Sequence[RunOutput], what: str) -> CounterCheck:
    """Compare input events, SynOps, neuron updates and spikes, input by input, layer by layer."""
    bad = []
    for i, (x, y) in enumerate(zip(a, b)):
        for li, (ca, cb) in enumerate(zip(x.counters, y.counters)):
            ta = (ca.input_events, ca.synops, ca.neuron_updates, ca.spikes)
            tb = (cb.input_events, cb.synops, cb.neuron_updates, cb.spikes)
            if ta != tb:
                bad.append(f"{what}, input {i}, layer {li}: {ta} != {tb}")
        if len(x.counters) != len(y.counters):
            bad.append(f"{what}, input {i}: {len(x.counters)} vs {len(y.counters)} layers")
    return CounterCheck(equal=not bad and len(a) == len(b), compared=min(len(a), len(b)),
                        mismatches=bad[:20])
