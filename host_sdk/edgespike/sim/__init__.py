"""Simulators that run a quantized model on the host: the numpy reference and the C core."""
from edgespike.sim.reference import (
    LayerCounters,
    RunOutput,
    events_from_spikes,
    predict,
    run,
    run_batch,
    spikes_from_events,
)

__all__ = ["LayerCounters", "RunOutput", "events_from_spikes", "predict", "run", "run_batch",
           "spikes_from_events"]
