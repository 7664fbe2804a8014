"""Counters to time, memory and energy (DESIGN.md section 7; docs/profile.md).

- :mod:`~edgespike.profile.counters`: per-layer counters summarised over inferences, derived
  from spike rasters when a back-end returns none.
- :mod:`~edgespike.profile.energy`: named, cited energy models (Cortex-M datasheets, Loihi 2,
  SpiNNaker 2, the 45 nm per-operation model) and user targets from TOML.
- :mod:`~edgespike.profile.ann`: the same network as an int8 ANN, CMSIS-NN-class cost;
  :mod:`~edgespike.profile.ann_cycles`: its loops priced by the cycle model.
- :mod:`~edgespike.profile.cycles`: cycle models of the Cortex-M0/M4/M33/M7 (low / central /
  high) for instruction sequences and block traces; :mod:`~edgespike.profile.estimate`:
  estimated cycles per inference per core from a traced run on the emulated board.
- :mod:`~edgespike.profile.report`: the report (table / JSON); :mod:`~edgespike.profile.plots`.

    from edgespike.profile import load_targets, profile_device, format_report
    with open_device(board="mps2-an386") as dev:
        report, _, _ = profile_device(model, inputs, dev, load_targets(), labels=labels)
    print(format_report(report))
"""
from edgespike.profile.ann import AnnBaseline, ann_baseline
from edgespike.profile.counters import CounterSummary, counters_from_spikes, summarize
from edgespike.profile.cycles import CORES, Range, sequence_cycles
from edgespike.profile.energy import EnergyResult, Target, evaluate, load_targets
from edgespike.profile.estimate import CoreEstimate, CycleEstimate, estimate_cycles
from edgespike.profile.report import ProfileReport, build, format_report, profile_device

__all__ = [
    "AnnBaseline", "CORES", "CoreEstimate", "CounterSummary", "CycleEstimate", "EnergyResult",
    "ProfileReport", "Range", "Target", "ann_baseline", "build", "counters_from_spikes",
    "estimate_cycles", "evaluate", "format_report", "load_targets", "profile_device",
    "sequence_cycles", "summarize",
]
