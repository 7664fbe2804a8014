"""Estimated cycles per inference, per core: the model's inferences traced on the emulated board
(:mod:`edgespike.sim.trace`) and priced by the cycle models (:mod:`edgespike.profile.cycles`).

What is exact and what is estimated:

- instructions: exact. The firmware's own figure (SysTick under QEMU ``-icount``, to within 40)
  counts the inference from its first to its last cycle-counter read;
- cycles: estimated. The trace gives, for the whole of ``es_engine_run`` and for each layer
  step, the cycles per instruction (CPI) of the instructions that ran; a figure in cycles is
  that CPI times the exact instruction count of the same part (per layer: the layer's own
  CPI; the rest of the inference: the CPI outside the layer steps).

The Cortex-M4, M7 and M33 price the trace of the image built for the M4 (the M7 and M33 run the
same ARMv7E-M code); the M0 prices the trace of the runner built for the M0 (ARMv6-M code, its
own instruction count).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

from edgespike.errors import EdgeSpikeError
from edgespike.model import Model
from edgespike.profile.cycles import CASES, CORES, SOURCES, Hotspot, Range, trace_cycles
from edgespike.sim import elf
from edgespike.sim.trace import TracedRun, trace_batch

log = logging.getLogger(__name__)

#: The image (runner kernels) whose trace each core's model prices.
BUILD_OF = {"cortex-m4": "default", "cortex-m7": "default", "cortex-m33": "default",
            "cortex-m0": "m0"}
#: Cores estimated by default.
DEFAULT_CORES = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m0")


@dataclass
class CoreEstimate:
    """One core, per inference (means over the inputs).

    Attributes:
        core: ``cortex-m4`` ...
        build: the image traced (``cortex-m4 build`` or ``cortex-m0 build``).
        instructions: exact instructions of the measured inference on that build (the device's
            figure when the device counts instructions and runs that build).
        cycles: estimated cycles (low / central / high).
        layer_instructions, layer_cycles: the same per layer (None when the trace could not
            split layers; then ``layer_cycles`` applies the whole inference's CPI).
        cpi_layers: each layer's own CPI (central), and ``cpi_rest`` the CPI outside them.
        source: where the timings come from.
    """

    core: str
    build: str
    instructions: float
    cycles: Range
    layer_instructions: list[float]
    layer_cycles: list[Range]
    cpi_layers: list[float] = field(default_factory=list)
    cpi_rest: float = 0.0
    layers_split: bool = True
    source: str = ""

    @property
    def cpi(self) -> Range:
        return self.cycles / self.instructions if self.instructions else Range(0, 0, 0)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cpi"] = self.cpi.as_dict()
        return d


@dataclass
class CycleEstimate:
    """Estimated cycles of a model's inferences on several cores.

    Attributes:
        inferences: inputs traced.
        cores: core -> :class:`CoreEstimate`.
        hotspots: the most expensive blocks on the first core (central case, whole run).
        hotspots_core: the core the hotspots were priced on.
        misaligned: misaligned memory accesses per inference (M4 build).
        jumps: taken jumps (branches, calls, returns) per inference (M4 build).
        trace_instructions: instructions per inference of the traced window (all of
            ``es_engine_run``: also the input check and reset the firmware does not count).
        notes: what could not be estimated and why.
    """

    inferences: int
    cores: dict[str, CoreEstimate]
    hotspots: list[Hotspot] = field(default_factory=list)
    hotspots_core: str = ""
    misaligned: float = 0.0
    jumps: float = 0.0
    trace_instructions: float = 0.0
    notes: list[str] = field(default_factory=list)

    def get(self, core: str) -> Optional[CoreEstimate]:
        return self.cores.get(core)

    def as_dict(self) -> dict:
        return {"inferences": self.inferences,
                "cores": {k: v.as_dict() for k, v in self.cores.items()},
                "hotspots": [h.as_dict() for h in self.hotspots],
                "hotspots_core": self.hotspots_core, "misaligned": self.misaligned,
                "jumps": self.jumps, "trace_instructions": self.trace_instructions,
                "notes": list(self.notes)}


def core_estimate(run: TracedRun, core: str, *, instructions: Optional[float] = None,
                  layer_instructions: Optional[Sequence[float]] = None,
                  hotspots: int = 0) -> tuple[CoreEstimate, list[Hotspot], object]:
    """Price one traced run on ``core``. ``instructions`` / ``layer_instructions``: the exact
    per-inference counts to scale (default: the runner's own SysTick figures of this run)."""
    image = elf.load(run.image)
    tc = trace_cycles(run.trace, image, core, hotspots=hotspots)
    outs = run.outputs
    total = float(np.mean([o.cycles for o in outs])) if instructions is None else instructions
    n_layers = len(outs[0].counters) if outs else 0
    if layer_instructions is None:
        layer_instructions = [float(np.mean([o.counters[li].cycles for o in outs]))
                              for li in range(n_layers)]
    window = tc.cpi()
    if run.layers_split and tc.instructions[0] > 0:
        per_layer = [tc.cpi(li + 1) for li in range(n_layers)]
        rest = tc.cpi(0)
    else:
        per_layer = [window] * n_layers
        rest = window
    layer_cycles = [r.scaled(x) for r, x in zip(per_layer, layer_instructions)]
    rest_instr = max(0.0, total - sum(layer_instructions))
    cyc = Range(*(sum(getattr(r, c) for r in layer_cycles) + getattr(rest, c) * rest_instr
                  for c in CASES))
    est = CoreEstimate(core=core, build=f"{'cortex-m0' if run.kernels == 'm0' else 'cortex-m4'} "
                       "build", instructions=total, cycles=cyc,
                       layer_instructions=list(layer_instructions), layer_cycles=layer_cycles,
                       cpi_layers=[r.central for r in per_layer], cpi_rest=rest.central,
                       layers_split=run.layers_split, source=SOURCES[core])
    return est, tc.hotspots, tc


#: Instructions the link firmware spends copying one recorded output spike into its answer
#: (es_engine_run: load, compare with the capacity, pack, store; measured 5-7 on the M4).
RECORD_INSTR = 8


def estimate_cycles(model: Model, inputs: np.ndarray, *, board: str = "mps2-an386",
                    cores: Sequence[str] = DEFAULT_CORES, hotspots: int = 10,
                    device_instructions: Optional[float] = None,
                    device_layer_instructions: Optional[Sequence[float]] = None,
                    static: Optional[bool] = None,
                    device_recorded_spikes: float = 0.0,
                    timeout_s: float = 600.0) -> CycleEstimate:
    """Trace ``inputs`` on the emulated board and estimate cycles per inference per core.

    ``device_instructions`` / ``device_layer_instructions``: the device's exact instruction
    counts per inference (QEMU -icount), used for the cores that run the device's build; by
    default the traced runner's own counts. ``static``: as the runner's (None: values inputs
    the same at every step take the static path, as the link firmware does from protocol 3;
    ``False`` traces every step, as older firmware computes it).
    ``device_recorded_spikes``: output spikes per inference the device copied into its answer
    (``record_spikes``), work the traced runner does not do (a few instructions each). Raises
    :class:`~edgespike.errors.ToolMissing` when the plugin or an image is missing (the caller
    decides whether that is fatal).
    """
    unknown = [c for c in cores if c not in CORES]
    if unknown:
        raise EdgeSpikeError(f"no cycle model for {', '.join(unknown)}; models: {', '.join(CORES)}")
    runs: dict[str, TracedRun] = {}
    out = CycleEstimate(inferences=len(inputs), cores={})
    for core in cores:
        build = BUILD_OF[core]
        if build not in runs:
            try:
                runs[build] = trace_batch(model, inputs, board=board, kernels=build,
                                          timeout_s=timeout_s, static=static)
            except EdgeSpikeError as exc:
                if build == "default":
                    raise
                out.notes.append(f"{core}: not estimated ({exc})")
                continue
        run = runs[build]
        same = build == "default"
        want_spots = hotspots if not out.hotspots_core else 0
        est, spots, tc = core_estimate(
            run, core, instructions=device_instructions if same else None,
            layer_instructions=device_layer_instructions if same else None,
            hotspots=want_spots)
        if want_spots:
            out.hotspots, out.hotspots_core = spots, core
        if same and not out.trace_instructions:
            w = max(1, run.trace.windows)
            traced = float(np.mean([o.cycles for o in run.outputs])) if run.outputs else 0.0
            slack = 80 + 0.01 * device_instructions + RECORD_INSTR * device_recorded_spikes \
                if device_instructions is not None else 0.0
            if device_instructions is not None and abs(traced - device_instructions) > slack:
                out.notes.append(f"the traced run counted {traced:,.0f} instructions per "
                                 f"inference, the device {device_instructions:,.0f}: the "
                                 "device's figure was scaled by the traced code's CPI")
            out.trace_instructions = tc.total_instructions() / w
            out.misaligned = tc.misaligned / w
            out.jumps = tc.jumps / w
        if not run.layers_split:
            out.notes.append(f"{core}: the trace could not split layers; each layer's cycles "
                             "use the whole inference's CPI")
        out.cores[core] = est
    return out
