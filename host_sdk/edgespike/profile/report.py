"""The profile report: one model on one device (and optionally a back-end), counters to time,
memory and energy per target, against the same network as an ANN. Terminal table and JSON."""
from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from edgespike.errors import InputError
from edgespike.model import Model, to_bytes
from edgespike.profile.ann import AnnBaseline, ann_baseline
from edgespike.profile.counters import CounterCheck, CounterSummary, compare_counters, summarize
from edgespike.profile.energy import EnergyResult, Target, evaluate
from edgespike.sim.reference import RunOutput

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class Memory:
    """Bytes the model takes: its blob (flash, or the device's model slot), its weights, the
    neuron state (RAM), the fp32 equivalent, and the firmware's own flash/static RAM."""

    blob_bytes: int
    weight_bytes: int
    fp32_weight_bytes: int
    state_bytes: int
    firmware_flash_bytes: Optional[int] = None
    firmware_ram_bytes: Optional[int] = None
    firmware_source: str = ""


@dataclass
class ProfileReport:
    """Everything ``edgespike profile`` reports (units in the field names or docstrings).

    ``energy`` holds one :class:`EnergyResult` per target (uJ per inference); MCU targets use
    the device's cycles, per-op targets the counts of ``neuromorphic_counts`` (a back-end's
    run, or the device's counters).
    """

    model: str
    board: str
    core: str
    clock_hz: int
    inferences: int
    timesteps: int
    counters: CounterSummary
    memory: Memory
    ann: AnnBaseline
    energy: list[EnergyResult]
    neuromorphic_counts: CounterSummary
    counters_vs_reference: CounterCheck
    predictions_equal: bool
    output_spikes_equal: Optional[bool] = None
    accuracy_reference: Optional[float] = None
    accuracy_device: Optional[float] = None
    latency_ms: Optional[float] = None
    device_run_s: float = 0.0
    upload_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy_equal(self) -> Optional[bool]:
        if self.accuracy_reference is None or self.accuracy_device is None:
            return None
        return self.accuracy_reference == self.accuracy_device

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counters"] = self.counters.as_dict()
        d["neuromorphic_counts"] = self.neuromorphic_counts.as_dict()
        d["accuracy_equal"] = self.accuracy_equal
        return d


def firmware_sizes(board: str) -> tuple[Optional[int], Optional[int], str]:
    """Flash (text + data) and static RAM (data + bss) of the link firmware built for an
    emulated ``board``, in bytes, with ``arm-none-eabi-size``; Nones when unavailable."""
    from edgespike import paths
    from edgespike.errors import ToolMissing

    tool = shutil.which("arm-none-eabi-size")
    if tool is None:
        return None, None, "arm-none-eabi-size not installed"
    try:
        image = paths.firmware_image(board)
    except ToolMissing as exc:
        return None, None, str(exc)
    lines = subprocess.run([tool, str(image)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return text + data, data + bss, f"arm-none-eabi-size {image.name}"


def memory_of(model: Model, board: str, info: Any = None) -> Memory:
    """The model's and the firmware's memory, in bytes: the firmware's own figures as the
    device reports them (``DeviceInfo.flash_bytes`` / ``ram_bytes``), else, for a board built
    here, ``arm-none-eabi-size`` of its image."""
    if info is not None and getattr(info, "flash_bytes", 0):
        flash, ram, src = int(info.flash_bytes), int(info.ram_bytes) or None, "reported by the device"
    elif board and board != "host":
        flash, ram, src = firmware_sizes(board)
    else:
        flash, ram, src = None, None, ""
    return Memory(blob_bytes=len(to_bytes(model)), weight_bytes=model.weight_bytes(),
                  fp32_weight_bytes=model.fp32_weight_bytes(), state_bytes=model.state_bytes(),
                  firmware_flash_bytes=flash, firmware_ram_bytes=ram, firmware_source=src)


def build(model: Model, inputs: np.ndarray, device_out: Sequence[RunOutput],
          reference_out: Sequence[RunOutput], targets: dict[str, Target], *, board: str,
          core: str, clock_hz: int, labels: Optional[np.ndarray] = None,
          backend_out: Optional[Sequence[RunOutput]] = None, backend: str = "",
          ann_passes: Optional[int] = None, memory: Optional[Memory] = None,
          device_run_s: float = 0.0, upload_s: float = 0.0) -> ProfileReport:
    """Assemble the report from finished runs (no device I/O here)."""
    notes: list[str] = []
    counters = summarize(model, device_out, "device", inputs)
    check = compare_counters(device_out, reference_out, "device vs reference")
    preds_equal = all(d.prediction == r.prediction for d, r in zip(device_out, reference_out))
    pairs = [(d.spikes[-1], r.spikes[-1]) for d, r in zip(device_out, reference_out)
             if d.spikes and r.spikes and not getattr(d, "spikes_truncated", False)]
    spikes_equal = all(np.array_equal(a, b) for a, b in pairs) if pairs else None
    if backend_out is not None:
        neuro = summarize(model, backend_out, backend, inputs)
        if neuro.derived:
            notes.append(f"back-end {backend} returned no counters: Loihi/SpiNNaker counts were "
                         "derived from its spike rasters with the rules of docs/SEMANTICS.md")
    else:
        neuro = counters
    ann = ann_baseline(model, inputs, ann_passes)
    unit = counters.cycle_unit
    cyc_ok = counters.cycle_source in ("qemu_icount", "dwt")
    if counters.cycle_source == "qemu_icount":
        notes.append("cycles are instructions counted by QEMU -icount (CPI taken as 1): a real "
                     "Cortex-M4 needs more cycles (loads, taken branches), so MCU energies and "
                     "latencies are lower bounds; the ANN is costed in instructions as well")
    energy: list[EnergyResult] = []
    for t in targets.values():
        if t.kind == "mcu":
            if not cyc_ok:
                notes.append(f"{t.name}: no cycle figure from this device "
                             f"({counters.cycle_source}), skipped")
                continue
            if t.core and core and t.core != core:
                notes.append(f"{t.name}: {t.core} priced with counts measured on {core}")
            energy.append(evaluate(t, cycles=[la.cycles for la in counters.layers],
                                   synops=[], neuron_updates=[], spikes=[],
                                   total_cycles=counters.cycles,
                                   ann_cycles=ann.cost(counters.cycle_source),
                                   counts=f"device {unit}"))
        else:
            src = f"{neuro.source}{' (derived from spikes)' if neuro.derived else ''}"
            energy.append(evaluate(t, cycles=[], synops=[la.synops for la in neuro.layers],
                                   neuron_updates=[la.neuron_updates for la in neuro.layers],
                                   spikes=[la.spikes for la in neuro.layers],
                                   ann_macs=float(ann.macs), counts=f"{src} counters"))
    acc_ref = acc_dev = None
    if labels is not None:
        y = np.asarray(labels)
        acc_ref = float(np.mean([r.prediction == t for r, t in zip(reference_out, y)]))
        acc_dev = float(np.mean([d.prediction == t for d, t in zip(device_out, y)]))
    latency = counters.cycles / clock_hz * 1e3 if cyc_ok and clock_hz else None
    return ProfileReport(
        model=model.name, board=board, core=core, clock_hz=clock_hz, inferences=len(device_out),
        timesteps=model.timesteps, counters=counters,
        memory=memory or memory_of(model, board), ann=ann, energy=energy,
        neuromorphic_counts=neuro, counters_vs_reference=check, predictions_equal=preds_equal,
        output_spikes_equal=spikes_equal,
        accuracy_reference=acc_ref, accuracy_device=acc_dev, latency_ms=latency,
        device_run_s=device_run_s, upload_s=upload_s, notes=notes)


def run_backend(name: str, model: Model, inputs: np.ndarray) -> list[RunOutput]:
    """Run ``inputs`` on a host back-end (``batch``, ``reference``, ``core``, ``lava``,
    ``pynn``)."""
    from edgespike.backends import get_backend

    return list(get_backend(name).run_batch(model, inputs))


def profile_device(model: Model, inputs: np.ndarray, device: Any, targets: dict[str, Target], *,
                   labels: Optional[np.ndarray] = None, backend: Optional[str] = None,
                   ann_passes: Optional[int] = None,
                   progress: Optional[ProgressFn] = None,
                   host_sim: str = "batch") -> tuple[ProfileReport, list[RunOutput],
                                                     list[RunOutput]]:
    """Deploy ``model`` on an open device, run every input there and on an exact host
    simulator (``host_sim``: ``batch``, the default and fastest, ``reference`` or ``core``; all
    bit-identical to the numpy reference) for the expected results (and on ``backend`` for the
    neuromorphic counts), and build the report.

    Returns ``(report, device outputs, expected outputs)``.
    """
    from edgespike.backends import HOST_SIMULATORS

    if host_sim not in HOST_SIMULATORS:
        raise InputError(f"host simulator {host_sim!r}: choose one of "
                         f"{', '.join(HOST_SIMULATORS)}")
    info = device.hello()
    t0 = time.perf_counter()
    device.deploy(model)
    upload_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dev_out = device.run_batch(inputs, record_spikes=True, model=model, progress=progress)
    run_s = time.perf_counter() - t0
    ref_out = run_backend(host_sim, model, inputs)
    back_out = None
    if backend and backend != "device":
        back_out = ref_out if backend == host_sim else run_backend(backend, model, inputs)
    report = build(model, inputs, dev_out, ref_out, targets, board=info.board, core=info.core,
                   clock_hz=info.clock_hz, labels=labels, backend_out=back_out,
                   backend=backend or "", ann_passes=ann_passes, device_run_s=run_s,
                   upload_s=upload_s, memory=memory_of(model, info.board, info))
    report.notes.append(f"expected results from the host simulator '{host_sim}' "
                        "(bit-identical to the numpy reference)")
    return report, dev_out, ref_out


# ------------------------------------------------------------------------------- text form

def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    from edgespike.commands._common import table

    return table(rows, header)


def _fmt(v: Optional[float], spec: str = ",.1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def format_report(r: ProfileReport) -> str:
    """The human form: summary, per-layer counters, energy per target, notes."""
    c = r.counters
    unit = c.cycle_unit
    out = [f"EdgeSpike profile: {r.model} on {r.board} ({r.core}, {r.clock_hz / 1e6:.0f} MHz), "
           f"{r.inferences} inferences of {r.timesteps} steps", ""]
    yes = {True: "yes", False: "NO", None: "-"}
    rows: list[tuple[str, str]] = []
    if r.accuracy_reference is not None:
        rows += [("accuracy, host reference", f"{r.accuracy_reference:.2%}"),
                 ("accuracy, device", f"{r.accuracy_device:.2%}"),
                 ("device accuracy == host accuracy", yes[r.accuracy_equal])]
    rows += [("predictions device == reference", yes[r.predictions_equal]),
             ("counters device == reference", yes[r.counters_vs_reference.equal]),
             ("output spikes device == reference", yes[r.output_spikes_equal]),
             (f"{unit} per inference", f"{c.cycles:,.0f} ({c.cycle_source})"),
             ("SynOps per inference", f"{c.synops:,.1f}"),
             ("neuron updates per inference", f"{c.neuron_updates:,.0f}"),
             ("spikes per inference", f"{c.spikes:,.1f}")]
    if r.latency_ms is not None:
        rows.append((f"latency at {r.clock_hz / 1e6:.0f} MHz", f"{r.latency_ms:.3f} ms"))
    m = r.memory
    rows += [("model blob (flash / model slot)", f"{m.blob_bytes:,} bytes "
              f"({m.weight_bytes:,} of weights; fp32 would be {m.fp32_weight_bytes:,})"),
             ("neuron state (RAM)", f"{m.state_bytes:,} bytes")]
    if m.firmware_flash_bytes is not None:
        rows.append(("firmware flash / static RAM", f"{m.firmware_flash_bytes:,} / "
                     f"{m.firmware_ram_bytes:,} bytes ({m.firmware_source})"))
    a = r.ann
    rows += [("same network as int8 ANN", f"{a.macs:,} MACs ({a.passes} pass"
              f"{'es' if a.passes > 1 else ''}), {a.cost(c.cycle_source):,.0f} {unit} (CMSIS-NN class)")]
    out.append(_table(rows, ("quantity", "value")))
    out.append("")
    out.append(_table([(la.layer, la.kind, la.weights, f"{la.fan_in}->{la.size}",
                        f"{la.input_events:,.1f}", f"{la.synops:,.1f}", f"{la.neuron_updates:,.0f}",
                        f"{la.spikes:,.1f}", f"{la.cycles:,.0f}") for la in c.layers],
                      ("layer", "kind", "weights", "shape", "in events", "SynOps", "updates",
                       "spikes", unit)))
    out.append("")
    erows = []
    for e in r.energy:
        erows.append((e.target, f"{e.uj:.4g}", _fmt(e.latency_ms, ".3f"),
                       "-" if e.ann_uj is None else f"{e.ann_uj:.4g}",
                       "-" if e.ratio is None else f"{e.ratio:.3g}", e.counts
                       + (f"; not counted: {', '.join(e.not_counted)}" if e.not_counted else "")))
    out.append(_table(erows, ("target", "SNN uJ/inf", "latency ms", "ANN uJ/inf", "SNN/ANN",
                              "counts")))
    out.append("")
    if r.energy:
        out.append(_table([[e.target] + [f"{u:.4g}" for u in e.per_layer_uj] for e in r.energy
                           if e.per_layer_uj],
                          ["uJ per layer"] + [f"layer {la.layer}" for la in c.layers]))
        out.append("")
    for e in r.energy:
        out.append(f"{e.target}: {e.source}" + (f" [{e.note}]" if e.note else ""))
    out.append(f"ANN cost source: {a.source}")
    for n in r.notes:
        out.append(f"note: {n}")
    for mm in r.counters_vs_reference.mismatches:
        out.append(f"MISMATCH {mm}")
    return "\n".join(out)
