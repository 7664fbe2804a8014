"""Named, cited energy models: counters (cycles, SynOps, neuron updates, spikes) to energy.

Two kinds of target (docs/profile.md has every figure with its citation):

- ``mcu``: a Cortex-M from its datasheet's run-mode current per MHz at a stated supply voltage.
  A current of ``I`` uA/MHz is ``I`` pC per clock cycle, so one cycle costs
  ``voltage_v * ua_per_mhz`` pJ whatever the clock; latency is ``cycles / clock_hz``.
- ``per_op``: a neuromorphic chip (Loihi 2, SpiNNaker 2) or the 45 nm per-operation model
  (Horowitz, ISSCC 2014): energy per SynOp, per neuron update and per spike, and optionally
  per MAC for the same network run as an ANN.

The built-in targets live in ``targets.toml`` next to this file; a user adds or overrides
targets with a TOML file of the same form (:func:`load_targets`).
"""
from __future__ import annotations

import logging
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from edgespike.errors import InputError

log = logging.getLogger(__name__)

BUILTIN_TARGETS = Path(__file__).with_name("targets.toml")

#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm,
#: 0.9 V, energy per operation in pJ (the table most SNN energy estimates use).
HOROWITZ_45NM_PJ: dict[str, float] = {
    "int8_add": 0.03, "int32_add": 0.1, "fp16_add": 0.4, "fp32_add": 0.9,
    "int8_mult": 0.2, "int32_mult": 3.1, "fp16_mult": 1.1, "fp32_mult": 3.7,
}
#: The SNN literature's convention from that table: a SynOp is one fp32 accumulate, a MAC one
#: fp32 multiply plus one fp32 add (0.9 pJ and 4.6 pJ).
HOROWITZ_FP32_AC_PJ = HOROWITZ_45NM_PJ["fp32_add"]
HOROWITZ_FP32_MAC_PJ = HOROWITZ_45NM_PJ["fp32_mult"] + HOROWITZ_45NM_PJ["fp32_add"]
#: Our integer kernels: a SynOp adds a weight into an int32 accumulator; an int8 MAC is an
#: 8-bit multiply plus a 32-bit add (0.1 pJ and 0.3 pJ).
HOROWITZ_INT_AC_PJ = HOROWITZ_45NM_PJ["int32_add"]
HOROWITZ_INT_MAC_PJ = HOROWITZ_45NM_PJ["int8_mult"] + HOROWITZ_45NM_PJ["int32_add"]

KINDS = ("mcu", "per_op")


@dataclass(frozen=True)
class Target:
    """One energy model. Units: Hz, V, uA/MHz, pJ.

    Attributes:
        name: short key (``stm32l4``).
        kind: ``"mcu"`` or ``"per_op"``.
        title: human name.
        source: the citation (document, table or section, year).
        note: caveat printed with the figure.
        core: ``cortex-m4`` / ``cortex-m7`` for MCU targets.
        clock_hz: the target's clock for latency, in Hz (MCU targets).
        voltage_v: supply voltage the current figure was given at, in V.
        ua_per_mhz: run-mode supply current per MHz, in uA/MHz.
        synop_pj / neuron_update_pj / spike_pj: energy per event, in pJ (per-op targets;
            None: not published, not counted).
        mac_pj: energy per MAC of the same network as an ANN, in pJ (per-op targets).
    """

    name: str
    kind: str
    title: str = ""
    source: str = ""
    note: str = ""
    core: str = ""
    clock_hz: Optional[float] = None
    voltage_v: Optional[float] = None
    ua_per_mhz: Optional[float] = None
    synop_pj: Optional[float] = None
    neuron_update_pj: Optional[float] = None
    spike_pj: Optional[float] = None
    mac_pj: Optional[float] = None

    @property
    def pj_per_cycle(self) -> float:
        """Energy of one clock cycle of an MCU target, in pJ (``voltage_v * ua_per_mhz``)."""
        if self.kind != "mcu":
            raise InputError(f"target {self.name} is not an MCU target")
        return float(self.voltage_v) * float(self.ua_per_mhz)  # type: ignore[arg-type]

    def validate(self) -> "Target":
        """Check the fields its kind needs; raise :class:`InputError` naming what is missing."""
        if self.kind not in KINDS:
            raise InputError(f"target {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if not self.source:
            raise InputError(f"target {self.name}: give its source (datasheet/paper, table, year)")
        if self.kind == "mcu":
            for f in ("clock_hz", "voltage_v", "ua_per_mhz"):
                val = getattr(self, f)
                if val is None or val <= 0:
                    raise InputError(f"target {self.name}: an mcu target needs {f} > 0")
        else:
            if self.synop_pj is None:
                raise InputError(f"target {self.name}: a per_op target needs synop_pj")
            for f in ("synop_pj", "neuron_update_pj", "spike_pj", "mac_pj"):
                val = getattr(self, f)
                if val is not None and val < 0:
                    raise InputError(f"target {self.name}: {f} must be >= 0")
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EnergyResult:
    """Energy of one inference on one target, in uJ (latency in ms).

    ``per_layer_uj``: the split over layers (MCU: by each layer's cycles; per-op: by each
    layer's own counts). ``ann_uj``/``ratio``: the same network as an ANN on that target and
    SNN/ANN (None where the target has no ANN figure). ``not_counted``: the events the target
    has no published figure for.

    MCU targets: ``cycles`` is the figure priced (per inference) and ``cycle_kind`` says what it
    is: ``estimated cycles`` (the cycle model: ``uj_low``/``uj_high`` and ``cycles_low``/
    ``cycles_high`` give its range), ``measured cycles`` (DWT) or ``instructions`` (QEMU
    -icount, one cycle per instruction assumed: a lower bound).
    """

    target: str
    kind: str
    uj: float
    per_layer_uj: list[float]
    latency_ms: Optional[float] = None
    ann_uj: Optional[float] = None
    ratio: Optional[float] = None
    counts: str = ""
    not_counted: list[str] | None = None
    note: str = ""
    source: str = ""
    cycles: Optional[float] = None
    cycles_low: Optional[float] = None
    cycles_high: Optional[float] = None
    uj_low: Optional[float] = None
    uj_high: Optional[float] = None
    cycle_kind: str = ""
    core: str = ""


def _parse(name: str, table: dict[str, Any]) -> Target:
    known = set(Target.__dataclass_fields__) - {"name"}
    unknown = set(table) - known
    if unknown:
        raise InputError(f"target {name}: unknown keys {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(known))})")
    return Target(name=name, **table).validate()


def load_targets(extra: Optional[str | Path] = None, builtin: bool = True) -> dict[str, Target]:
    """The built-in targets, then those of ``extra`` (a TOML file; same name overrides).

    Each TOML table is one target: ``[my-board]`` with ``kind``, ``source`` and the figures
    its kind needs (see ``targets.toml``).
    """
    out: dict[str, Target] = {}
    paths = ([BUILTIN_TARGETS] if builtin else []) + ([Path(extra)] if extra else [])
    if builtin and not BUILTIN_TARGETS.is_file():
        raise InputError(f"the built-in energy table {BUILTIN_TARGETS} is missing from this "
                         "installation (package data edgespike/profile/targets.toml)")
    for path in paths:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise InputError(f"targets file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from exc
        for name, table in data.items():
            if not isinstance(table, dict):
                raise InputError(f"{path}: {name} must be a table ([{name}])")
            out[name] = _parse(name, table)
    return out


def mcu_energy_uj(target: Target, cycles: float) -> float:
    """Energy of ``cycles`` clock cycles on an MCU target, in uJ."""
    return cycles * target.pj_per_cycle * 1e-6


def per_op_energy_uj(target: Target, synops: float, neuron_updates: float,
                     spikes: float) -> tuple[float, list[str]]:
    """Energy of the given event counts on a per-op target, in uJ, and the events not counted."""
    pj = 0.0
    missing = []
    for count, fig, what in ((synops, target.synop_pj, "SynOps"),
                             (neuron_updates, target.neuron_update_pj, "neuron updates"),
                             (spikes, target.spike_pj, "spikes")):
        if fig is None:
            missing.append(what)
        else:
            pj += count * fig
    return pj * 1e-6, missing


def evaluate(target: Target, *, cycles: Sequence[float], synops: Sequence[float],
             neuron_updates: Sequence[float], spikes: Sequence[float],
             total_cycles: Optional[float] = None, ann_cycles: Optional[float] = None,
             ann_macs: Optional[float] = None, counts: str = "",
             cycles_range: Optional[tuple[float, float]] = None, cycle_kind: str = "",
             core: str = "") -> EnergyResult:
    """Energy of one (mean) inference on ``target`` from per-layer counts.

    Args:
        cycles: per layer, cycles (or instructions) per inference (MCU targets).
        total_cycles: the whole inference (layers plus the engine's own work); default the sum.
        synops, neuron_updates, spikes: per layer, events per inference (per-op targets).
        ann_cycles: the same network as an ANN on this core, cycles per inference.
        ann_macs: the same network as an ANN, MACs per inference.
        counts: where the counts came from (printed with the result).
        cycles_range: ``(low, high)`` of an estimated ``total_cycles`` (MCU targets).
        cycle_kind: what ``cycles`` are (``estimated cycles``, ``measured cycles``,
            ``instructions``); core: the core they are for.
    """
    if target.kind == "mcu":
        per_layer = [mcu_energy_uj(target, c) for c in cycles]
        total_cycles = float(sum(cycles) if total_cycles is None else total_cycles)
        uj = mcu_energy_uj(target, total_cycles)
        ann = mcu_energy_uj(target, ann_cycles) if ann_cycles is not None else None
        lo, hi = cycles_range if cycles_range is not None else (None, None)
        return EnergyResult(
            target=target.name, kind=target.kind, uj=uj, per_layer_uj=per_layer,
            latency_ms=total_cycles / float(target.clock_hz) * 1e3,  # type: ignore[arg-type]
            ann_uj=ann, ratio=(uj / ann) if ann else None, counts=counts, not_counted=[],
            note=target.note, source=target.source, cycles=total_cycles, cycles_low=lo,
            cycles_high=hi, uj_low=None if lo is None else mcu_energy_uj(target, lo),
            uj_high=None if hi is None else mcu_energy_uj(target, hi), cycle_kind=cycle_kind,
            core=core)
    per_layer = []
    missing: list[str] = []
    for s, n, k in zip(synops, neuron_updates, spikes):
        e, missing = per_op_energy_uj(target, s, n, k)
        per_layer.append(e)
    uj = float(sum(per_layer))
    ann = (ann_macs * target.mac_pj * 1e-6) if (ann_macs is not None and target.mac_pj) else None
    return EnergyResult(target=target.name, kind=target.kind, uj=uj, per_layer_uj=per_layer,
                        ann_uj=ann, ratio=(uj / ann) if ann else None, counts=counts,
                        not_counted=missing, note=target.note, source=target.source)
