"""Parity and cost: one model, one set of inputs, every implementation of the integer rules.

Runs the same quantized model on the integer reference semantics (the batched exact simulator
by default, or the numpy reference itself), the C core on the host (if built) and a
device (the emulated board or a real one), checks that predictions, scores, counters and output
spikes agree, and reports what an inference cost on the device (instructions or cycles, SynOps,
latency at the board's clock, model and state memory).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from edgespike.errors import InputError, ToolMissing
from edgespike.model import Model, to_bytes
from edgespike.sim.reference import RunOutput

log = logging.getLogger(__name__)


@dataclass
class ParityReport:
    """Agreement and cost figures of one parity run (units in the field names)."""

    model: str
    inputs: int
    board: str
    core: str
    clock_hz: int
    cycle_source: str
    agree_device_reference: bool
    agree_core_reference: Optional[bool]
    mismatches: list[str] = field(default_factory=list)
    accuracy_reference: Optional[float] = None
    accuracy_device: Optional[float] = None
    blob_bytes: int = 0
    weight_bytes: int = 0
    state_bytes: int = 0
    upload_s: float = 0.0
    device_run_s: float = 0.0
    cycles_per_inference: float = 0.0
    synops_per_inference: float = 0.0
    cycles_per_synop: Optional[float] = None
    latency_ms: Optional[float] = None
    per_layer: list[dict] = field(default_factory=list)
    host_sim: str = "batch"

    def as_dict(self) -> dict:
        return asdict(self)


def _compare(a: RunOutput, b: RunOutput, what: str, spikes: bool) -> list[str]:
    out = []
    if a.prediction != b.prediction:
        out.append(f"{what}: prediction {a.prediction} != {b.prediction}")
    if not np.array_equal(a.scores, b.scores):
        out.append(f"{what}: scores differ")
    for li, (ca, cb) in enumerate(zip(a.counters, b.counters)):
        if (ca.input_events, ca.synops, ca.neuron_updates, ca.spikes) != (
                cb.input_events, cb.synops, cb.neuron_updates, cb.spikes):
            out.append(f"{what}: counters of layer {li} differ")
    if spikes and a.spikes and b.spikes and not np.array_equal(a.spikes[-1], b.spikes[-1]):
        out.append(f"{what}: output spikes differ")
    return out


def check(model: Model, inputs: np.ndarray, device, labels: Optional[np.ndarray] = None,
          progress: Optional[Callable[[int, int], None]] = None,
          host_sim: str = "batch") -> ParityReport:
    """Deploy ``model`` on ``device`` (an open :class:`edgespike.device.Device`), run every
    input there, on the C core (when built) and on the integer reference semantics, and
    compare. ``host_sim`` says which exact host simulator gives the reference results: ``batch``
    (the default, fastest), ``reference`` (the numpy reference itself) or ``core``; all are
    bit-identical to the numpy reference (tests/test_batch_sim.py, test_parity_host.py)."""
    from edgespike.backends import HOST_SIMULATORS, get_backend

    if host_sim not in HOST_SIMULATORS:
        raise InputError(f"host simulator {host_sim!r}: choose one of "
                         f"{', '.join(HOST_SIMULATORS)}")
    info = device.hello()
    t0 = time.perf_counter()
    device.deploy(model)
    upload_s = time.perf_counter() - t0

    ref = list(get_backend(host_sim).run_batch(model, inputs))
    try:
        from edgespike.sim import core
        host: Optional[list[RunOutput]] = core.run_batch(model, inputs)
    except ToolMissing as exc:
        log.warning("C core not built, skipping it: %s", exc)
        host = None

    t0 = time.perf_counter()
    dev = device.run_batch(inputs, record_spikes=True, model=model, progress=progress)
    device_run_s = time.perf_counter() - t0

    mismatches: list[str] = []
    for i, (d, r) in enumerate(zip(dev, ref)):
        mismatches += _compare(d, r, f"input {i}: device vs reference", spikes=True)
    if host is not None:
        for i, (h, r) in enumerate(zip(host, ref)):
            mismatches += _compare(h, r, f"input {i}: host core vs reference", spikes=True)

    n = len(dev)
    cycles = np.array([d.cycles for d in dev], dtype=np.float64)
    synops = np.array([sum(c.synops for c in d.counters) for d in dev], dtype=np.float64)
    per_layer = []
    for li, layer in enumerate(model.layers):
        per_layer.append({
            "layer": li, "size": layer.size, "kind": layer.kind,
            "weights": layer.weights.encoding,
            "input_events": float(np.mean([d.counters[li].input_events for d in dev])),
            "synops": float(np.mean([d.counters[li].synops for d in dev])),
            "spikes": float(np.mean([d.counters[li].spikes for d in dev])),
            "cycles": float(np.mean([d.counters[li].cycles for d in dev])),
        })
    acc_ref = acc_dev = None
    if labels is not None:
        acc_ref = float(np.mean([r.prediction == y for r, y in zip(ref, labels)]))
        acc_dev = float(np.mean([d.prediction == y for d, y in zip(dev, labels)]))
    mean_cycles = float(cycles.mean()) if n else 0.0
    mean_synops = float(synops.mean()) if n else 0.0
    source = dev[0].cycle_source if n else "none"
    return ParityReport(
        model=model.name, inputs=n, board=info.board, core=info.core, clock_hz=info.clock_hz,
        cycle_source=source,
        agree_device_reference=not any("device" in m for m in mismatches),
        agree_core_reference=None if host is None else not any("host core" in m for m in mismatches),
        mismatches=mismatches[:20], accuracy_reference=acc_ref, accuracy_device=acc_dev,
        blob_bytes=len(to_bytes(model)), weight_bytes=model.weight_bytes(),
        state_bytes=model.state_bytes(), upload_s=upload_s, device_run_s=device_run_s,
        cycles_per_inference=mean_cycles, synops_per_inference=mean_synops,
        cycles_per_synop=(mean_cycles / mean_synops) if mean_synops else None,
        latency_ms=(mean_cycles / info.clock_hz * 1e3) if info.clock_hz and mean_cycles
        and source != "host_ns" else None,
        per_layer=per_layer, host_sim=host_sim,
    )
