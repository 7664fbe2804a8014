"""Counters to time, memory and energy (DESIGN.md section 7; docs/profile.md).

- :mod:`~edgespike.profile.counters`: per-layer counters summarised over inferences, derived
  from spike rasters when a back-end returns none.
- :mod:`~edgespike.profile.energy`: named, cited energy models (Cortex-M datasheets, Loihi 2,
  SpiNNaker 2, the 45 nm per-operation model) and user targets from TOML.
- :mod:`~edgespike.profile.ann`: the same network as an int8 ANN, CMSIS-NN-class cost.
- :mod:`~edgespike.profile.report`: the report (table / JSON); :mod:`~edgespike.profile.plots`.

    from edgespike.profile import load_targets, profile_device, format_report
    with open_device(board="mps2-an386") as dev:
        report, _, _ = profile_device(model, inputs, dev, load_targets(), labels=labels)
    print(format_report(report))
"""
from edgespike.profile.ann import AnnBaseline, ann_baseline
from edgespike.profile.counters import CounterSummary, counters_from_spikes, summarize
from edgespike.profile.energy import EnergyResult, Target, evaluate, load_targets
from edgespike.profile.report import ProfileReport, build, format_report, profile_device

__all__ = [
    "AnnBaseline", "CounterSummary", "EnergyResult", "ProfileReport", "Target", "ann_baseline",
    "build", "counters_from_spikes", "evaluate", "format_report", "load_targets",
    "profile_device", "summarize",
]
