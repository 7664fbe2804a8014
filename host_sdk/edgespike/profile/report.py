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
from edgespike.profile.ann_cycles import AnnCycles, ann_cycles
from edgespike.profile.counters import CounterCheck, CounterSummary, compare_counters, summarize
from edgespike.profile.cycles import CORES, Range
from edgespike.profile.energy import EnergyResult, Target, evaluate
from edgespike.profile.estimate import DEFAULT_CORES, CycleEstimate, estimate_cycles
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
    cycles (measured by a real core's DWT, else estimated by the cycle model for the target's
    core, else, without a model, the device's instruction count), per-op targets the counts of
    ``neuromorphic_counts`` (a back-end's run, or the device's counters).

    ``cycle_estimate``: estimated cycles per core (None when the block-trace plugin is not
    built: ``cycle_estimate_note`` says why); ``ann_cycles``: the ANN baseline in cycles per
    core; ``latency_ms`` (and its ``latency_ms_range``) at the board's clock, from cycles.
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
    cycle_estimate: Optional[CycleEstimate] = None
    cycle_estimate_note: str = ""
    ann_cycles: dict[str, AnnCycles] = field(default_factory=dict)
    latency_ms_range: Optional[tuple[float, float]] = None

    @property
    def device_cycles(self) -> Optional[Range]:
        """Cycles per inference on the device's core: measured (DWT: low = high) or estimated."""
        if self.counters.cycle_source == "dwt":
            c = self.counters.cycles
            return Range(c, c, c)
        est = self.cycle_estimate.get(self.core) if self.cycle_estimate else None
        return est.cycles if est is not None else None

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
        d["cycle_estimate"] = self.cycle_estimate.as_dict() if self.cycle_estimate else None
        d["ann_cycles"] = {k: v.as_dict() for k, v in self.ann_cycles.items()}
        dc = self.device_cycles
        d["device_cycles"] = dc.as_dict() if dc is not None else None
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
          device_run_s: float = 0.0, upload_s: float = 0.0,
          cycle_estimate: Optional[CycleEstimate] = None,
          cycle_estimate_note: str = "") -> ProfileReport:
    """Assemble the report from finished runs (no device I/O here).

    ``cycle_estimate``: estimated cycles per core (:func:`edgespike.profile.estimate.
    estimate_cycles`); without one, MCU targets are priced in the device's own unit (and the
    report says that instructions are a lower bound), ``cycle_estimate_note`` saying why.
    """
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
    est = cycle_estimate
    ann_cyc: dict[str, AnnCycles] = {}
    if est is not None:
        for c in est.cores:
            ann_cyc[c] = ann_cycles(ann, c)
    if counters.cycle_source == "qemu_icount":
        if est is not None:
            notes.append("instructions are exact (QEMU -icount); cycles, latencies and MCU "
                         "energies come from the cycle model (central estimate, low-high "
                         "range; docs/profile.md), and so does the ANN baseline's")
        else:
            notes.append("cycles are instructions counted by QEMU -icount (CPI taken as 1): a "
                         "real Cortex-M4 needs more cycles (loads, taken branches), so MCU "
                         "energies and latencies are lower bounds; the ANN is costed in "
                         "instructions as well" + (f" (no cycle estimate: {cycle_estimate_note})"
                                                  if cycle_estimate_note else ""))
    energy: list[EnergyResult] = []
    for t in targets.values():
        if t.kind == "mcu":
            tcore = t.core or core
            e_core = est.get(tcore) if est is not None else None
            if counters.cycle_source == "dwt" and tcore == core:
                a = ann_cyc.get(tcore)
                energy.append(evaluate(t, cycles=[la.cycles for la in counters.layers],
                                       synops=[], neuron_updates=[], spikes=[],
                                       total_cycles=counters.cycles,
                                       ann_cycles=a.cycles.central if a else ann.cycles,
                                       counts="device cycles (DWT)",
                                       cycle_kind="measured cycles", core=tcore))
            elif e_core is not None:
                a = ann_cyc[tcore]
                energy.append(evaluate(t, cycles=[r.central for r in e_core.layer_cycles],
                                       synops=[], neuron_updates=[], spikes=[],
                                       total_cycles=e_core.cycles.central,
                                       cycles_range=(e_core.cycles.low, e_core.cycles.high),
                                       ann_cycles=a.cycles.central,
                                       counts=f"estimated {tcore} cycles ({e_core.build})",
                                       cycle_kind="estimated cycles", core=tcore))
            elif cyc_ok:
                if t.core and core and t.core != core:
                    notes.append(f"{t.name}: {t.core} priced with counts measured on {core}")
                energy.append(evaluate(t, cycles=[la.cycles for la in counters.layers],
                                       synops=[], neuron_updates=[], spikes=[],
                                       total_cycles=counters.cycles,
                                       ann_cycles=ann.cost(counters.cycle_source),
                                       counts=f"device {unit}",
                                       cycle_kind="measured cycles" if unit == "cycles"
                                       else unit, core=core))
            else:
                notes.append(f"{t.name}: no cycle figure from this device "
                             f"({counters.cycle_source}) and no estimate, skipped")
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
    latency_range = None
    own = est.get(core) if est is not None else None
    if own is not None and counters.cycle_source != "dwt" and clock_hz:
        latency = own.cycles.central / clock_hz * 1e3
        latency_range = (own.cycles.low / clock_hz * 1e3, own.cycles.high / clock_hz * 1e3)
    if est is not None:
        notes += est.notes
        if counters.cycle_source == "dwt" and own is not None and counters.cycles:
            notes.append(f"measured / estimated cycles ({core}): "
                         f"{counters.cycles / own.cycles.central:.3f} (estimate range "
                         f"{own.cycles.low:,.0f}-{own.cycles.high:,.0f})")
    return ProfileReport(
        model=model.name, board=board, core=core, clock_hz=clock_hz, inferences=len(device_out),
        timesteps=model.timesteps, counters=counters,
        memory=memory or memory_of(model, board), ann=ann, energy=energy,
        neuromorphic_counts=neuro, counters_vs_reference=check, predictions_equal=preds_equal,
        output_spikes_equal=spikes_equal,
        accuracy_reference=acc_ref, accuracy_device=acc_dev, latency_ms=latency,
        device_run_s=device_run_s, upload_s=upload_s, notes=notes, cycle_estimate=est,
        cycle_estimate_note=cycle_estimate_note, ann_cycles=ann_cyc,
        latency_ms_range=latency_range)


def run_backend(name: str, model: Model, inputs: np.ndarray) -> list[RunOutput]:
    """Run ``inputs`` on a host back-end (``batch``, ``reference``, ``core``, ``lava``,
    ``pynn``)."""
    from edgespike.backends import get_backend

    return list(get_backend(name).run_batch(model, inputs))


def profile_device(model: Model, inputs: np.ndarray, device: Any, targets: dict[str, Target], *,
                   labels: Optional[np.ndarray] = None, backend: Optional[str] = None,
                   ann_passes: Optional[int] = None,
                   progress: Optional[ProgressFn] = None, cycles: bool = True,
                   cores: Optional[Sequence[str]] = None, hotspots: int = 10,
                   host_sim: str = "batch") -> tuple[ProfileReport, list[RunOutput],
                                                     list[RunOutput]]:
    """Deploy ``model`` on an open device, run every input there and on an exact host
    simulator (``host_sim``: ``batch``, the default and fastest, ``reference`` or ``core``; all
    bit-identical to the numpy reference) for the expected results (and on ``backend`` for the
    neuromorphic counts), and build the report.

    ``cycles``: also trace the inputs on the emulated board and estimate cycles per core
    (``cores``: default the device's core, the targets' cores and the four modelled ones;
    ``hotspots``: keep the N most expensive blocks). When the trace plugin is missing the
    report says so and prices MCU targets in the device's unit.

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
    est, why = None, ""
    if cycles:
        est, why = device_estimate(model, inputs, dev_out, info, targets, cores, hotspots)
    report = build(model, inputs, dev_out, ref_out, targets, board=info.board, core=info.core,
                   clock_hz=info.clock_hz, labels=labels, backend_out=back_out,
                   backend=backend or "", ann_passes=ann_passes, device_run_s=run_s,
                   upload_s=upload_s, memory=memory_of(model, info.board, info),
                   cycle_estimate=est, cycle_estimate_note=why)
    report.notes.append(f"expected results from the host simulator '{host_sim}' "
                        "(bit-identical to the numpy reference)")
    return report, dev_out, ref_out


#: Boards whose firmware is the build the emulated runner traces (same core code, same flags):
#: their exact instruction counts scale the estimate directly.
TRACED_BUILDS = {"mps2-an386"}


def device_estimate(model: Model, inputs: np.ndarray, device_out: Sequence[RunOutput], info: Any,
                    targets: dict[str, Target], cores: Optional[Sequence[str]] = None,
                    hotspots: int = 10) -> tuple[Optional[CycleEstimate], str]:
    """Estimated cycles for a device's run: ``(estimate, "")``, or ``(None, why not)``."""
    from edgespike.device.client import STATIC_INPUT_VERSION
    from edgespike.errors import EdgeSpikeError

    if cores is None:
        want = [info.core] if info.core in CORES else []
        want += [t.core for t in targets.values() if t.kind == "mcu" and t.core in CORES]
        want += list(DEFAULT_CORES)
        cores = list(dict.fromkeys(want))
    exact = (device_out and device_out[0].cycle_source == "qemu_icount"
             and info.board in TRACED_BUILDS)
    try:
        summ = summarize(model, device_out, "device") if exact else None
        est = estimate_cycles(
            model, inputs, cores=cores, hotspots=hotspots,
            device_instructions=summ.cycles if summ else None,
            device_layer_instructions=[la.cycles for la in summ.layers] if summ else None,
            # the path the device took: a still input goes as Run.static_input from protocol 3
            static=None if info.protocol_version >= STATIC_INPUT_VERSION else False,
            device_recorded_spikes=summ.layers[-1].spikes if summ else 0.0)
    except EdgeSpikeError as exc:
        log.info("no cycle estimate: %s", exc)
        return None, str(exc)
    return est, ""


# ------------------------------------------------------------------------------- text form

def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    from edgespike.commands._common import table

    return table(rows, header)


def _fmt(v: Optional[float], spec: str = ",.1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _range(r: Range, spec: str = ",.0f") -> str:
    return f"{format(r.central, spec)} ({format(r.low, spec)}-{format(r.high, spec)})"


def format_cycles(r: ProfileReport) -> list[tuple[str, str]]:
    """Rows of the summary table about cycles: what is exact, what is estimated, per core."""
    c = r.counters
    rows: list[tuple[str, str]] = []
    rows.append((f"{c.cycle_unit} per inference", f"{c.cycles:,.0f} ({c.cycle_meaning})"))
    est = r.cycle_estimate
    if est is None:
        if r.cycle_estimate_note:
            rows.append(("estimated cycles", f"not available: {r.cycle_estimate_note}"))
        return rows
    for core, e in est.cores.items():
        own = "" if e.build == "cortex-m4 build" else f", {e.instructions:,.0f} instr of its build"
        rows.append((f"est. cycles/inference, {core}",
                     f"{_range(e.cycles)} CPI {e.cpi.central:.2f} "
                     f"({e.cpi.low:.2f}-{e.cpi.high:.2f}){own}"))
    if est.misaligned or est.jumps:
        rows.append(("per inference (M4 build)", f"{est.jumps:,.0f} taken jumps, "
                     f"{est.misaligned:,.0f} misaligned accesses"))
    return rows


def format_hotspots(r: ProfileReport, n: int = 10) -> str:
    """The most expensive blocks (central estimate) with their functions."""
    est = r.cycle_estimate
    if est is None or not est.hotspots:
        return "hotspots: no cycle estimate" + (f" ({r.cycle_estimate_note})"
                                               if r.cycle_estimate_note else "")
    w = max(1, est.inferences)
    rows = [(f"0x{h.addr:x}-0x{h.end:x}", h.function, f"{h.executions / w:,.1f}",
             f"{h.instructions / w:,.0f}", f"{h.cycles / w:,.0f}", f"{h.cpi:.2f}",
             f"{h.share:.1%}") for h in est.hotspots[:n]]
    return (f"hotspots ({est.hotspots_core}, central estimate, per inference):\n"
            + _table(rows, ("block", "function", "runs", "instr", "cycles", "CPI", "share")))


def format_report(r: ProfileReport, hotspots: int = 0) -> str:
    """The human form: summary, per-layer counters, energy per target, notes (and the
    ``hotspots`` most expensive blocks when asked)."""
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
             ("output spikes device == reference", yes[r.output_spikes_equal])]
    rows += format_cycles(r)
    rows += [("SynOps per inference", f"{c.synops:,.1f}"),
             ("neuron updates per inference", f"{c.neuron_updates:,.0f}"),
             ("spikes per inference", f"{c.spikes:,.1f}")]
    if r.latency_ms is not None:
        rng = (f" ({r.latency_ms_range[0]:.3f}-{r.latency_ms_range[1]:.3f}), from est. cycles"
               if r.latency_ms_range else "")
        rows.append((f"latency at {r.clock_hz / 1e6:.0f} MHz", f"{r.latency_ms:.3f} ms{rng}"))
    m = r.memory
    rows += [("model blob (flash / model slot)", f"{m.blob_bytes:,} bytes "
              f"({m.weight_bytes:,} of weights; fp32 would be {m.fp32_weight_bytes:,})"),
             ("neuron state (RAM)", f"{m.state_bytes:,} bytes")]
    if m.firmware_flash_bytes is not None:
        rows.append(("firmware flash / static RAM", f"{m.firmware_flash_bytes:,} / "
                     f"{m.firmware_ram_bytes:,} bytes ({m.firmware_source})"))
    a = r.ann
    rows += [("same network as int8 ANN", f"{a.macs:,} MACs ({a.passes} pass"
              f"{'es' if a.passes > 1 else ''}), {a.instructions:,.0f} instructions "
              "(CMSIS-NN class)")]
    for core, ac in r.ann_cycles.items():
        rows.append((f"ANN est. cycles, {core}", f"{_range(ac.cycles)} CPI {ac.cpi.central:.2f}"
                     + (f" ({ac.instructions:,.0f} instr)" if ac.instructions != a.instructions
                        else "")))
    out.append(_table(rows, ("quantity", "value")))
    out.append("")
    own = r.cycle_estimate.get(r.core) if r.cycle_estimate else None
    lrows = []
    for li, la in enumerate(c.layers):
        row = [la.layer, la.kind, la.weights, f"{la.fan_in}->{la.size}", f"{la.input_events:,.1f}",
               f"{la.synops:,.1f}", f"{la.neuron_updates:,.0f}", f"{la.spikes:,.1f}",
               f"{la.cycles:,.0f}"]
        if own is not None:
            row += [f"{own.layer_cycles[li].central:,.0f}", f"{own.cpi_layers[li]:.2f}"]
        lrows.append(row)
    head = ["layer", "kind", "weights", "shape", "in events", "SynOps", "updates", "spikes", unit]
    if own is not None:
        head += [f"est. cycles ({r.core})", "CPI"]
    out.append(_table(lrows, head))
    out.append("")
    erows = []
    for e in r.energy:
        rng = "-" if e.uj_low is None else f"{e.uj_low:.4g}-{e.uj_high:.4g}"
        erows.append((e.target, f"{e.uj:.4g}", rng, _fmt(e.latency_ms, ".3f"),
                       "-" if e.ann_uj is None else f"{e.ann_uj:.4g}",
                       "-" if e.ratio is None else f"{e.ratio:.3g}", e.counts
                       + (f"; not counted: {', '.join(e.not_counted)}" if e.not_counted else "")))
    out.append(_table(erows, ("target", "SNN uJ/inf", "range", "latency ms", "ANN uJ/inf",
                              "SNN/ANN", "counts")))
    out.append("")
    if r.energy:
        out.append(_table([[e.target] + [f"{u:.4g}" for u in e.per_layer_uj] for e in r.energy
                           if e.per_layer_uj],
                          ["uJ per layer"] + [f"layer {la.layer}" for la in c.layers]))
        out.append("")
    if hotspots:
        out.append(format_hotspots(r, hotspots))
        out.append("")
    for e in r.energy:
        out.append(f"{e.target}: {e.source}" + (f" [{e.note}]" if e.note else ""))
    out.append(f"ANN cost source: {a.source}")
    if r.cycle_estimate is not None:
        from edgespike.profile.cycles import SOURCES

        for core in r.cycle_estimate.cores:
            out.append(f"cycle model {core}: {SOURCES[core]}")
    for n in r.notes:
        out.append(f"note: {n}")
    for mm in r.counters_vs_reference.mismatches:
        out.append(f"MISMATCH {mm}")
    return "\n".join(out)
