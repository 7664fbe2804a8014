"""Where a quantized model can run on the host side, looked up by name.

    backend = get_backend("reference")
    outputs = backend.run_batch(model, inputs)    # list[edgespike.sim.reference.RunOutput]

Names: ``batch`` (the batched exact simulator: the default host simulator),
``reference`` (numpy, the executable spec), ``core`` (the C core through ctypes),
``lava`` (Lava's bit-accurate Loihi 2 models), ``pynn`` (a PyNN simulator), ``spinnaker2``.
Each is imported only when asked for; a back-end whose module or library is missing raises
:class:`~edgespike.errors.ToolMissing` saying what to install. A module behind a name exposes
``run_batch(model, inputs) -> list[RunOutput]`` and, optionally, ``available() -> bool``.
A device is a back-end too: :class:`DeviceBackend` wraps a connected
:class:`~edgespike.device.Device` (``edgespike run --backend device``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from edgespike.errors import ToolMissing

if TYPE_CHECKING:
    from edgespike.device.client import Device
    from edgespike.model.quantized import Model
    from edgespike.sim.reference import RunOutput

#: name -> (module, what to install when it is missing)
_REGISTRY: dict[str, tuple[str, str]] = {
    "batch": ("edgespike.sim.batch", "numpy (a core dependency): pip install -e ."),
    "reference": ("edgespike.sim.reference", "numpy (a core dependency): pip install -e ."),
    "core": ("edgespike.sim.core",
             "the host C library: bash firmware/build.sh (needs gcc and cmake)"),
    "lava": ("edgespike.backends.lava",
             "Lava (lava-nc, Python 3.10, numpy<2): bash scripts/setup_lava.sh"),
    "pynn": ("edgespike.backends.pynn",
             "PyNN with a simulator: pip install pyNN nest-simulator"),
    "spinnaker2": ("edgespike.backends.spinnaker2",
                   "PyNN with a simulator: pip install pyNN nest-simulator"),
}

#: Back-ends that run on the host, by name (``device`` is separate: it needs a link).
NAMES = tuple(_REGISTRY)
#: The exact host simulators (bit-identical by test), fastest first: what computes the
#: expected results of a device or back-end run.
HOST_SIMULATORS = ("batch", "reference", "core")


@dataclass
class Backend:
    """A named way to run a model: ``run_batch(model, inputs) -> list[RunOutput]``."""

    name: str
    module: str
    _run_batch: Callable[..., list]
    _available: Optional[Callable[[], bool]] = None

    def available(self) -> bool:
        """True if the back-end can run here (its library is importable and usable)."""
        return bool(self._available()) if self._available is not None else True

    def run_batch(self, model: "Model", inputs: np.ndarray) -> list["RunOutput"]:
        """Run a batch ``(n, timesteps, input_size)`` (or one input) from reset state."""
        return self._run_batch(model, inputs)


def get_backend(name: str) -> Backend:
    """The back-end called ``name``; raises :class:`ToolMissing` if it cannot run here."""
    if name not in _REGISTRY:
        raise ToolMissing(f"unknown back-end {name!r}; choose one of {', '.join(NAMES)} "
                          "(or 'device' with --port/--board on the command line)")
    module_name, install = _REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ToolMissing:
        raise
    except ImportError as exc:
        raise ToolMissing(f"back-end {name!r} is not available ({exc}); install {install}") from exc
    run_batch = getattr(module, "run_batch", None)
    if run_batch is None:
        raise ToolMissing(f"back-end {name!r}: {module_name} has no run_batch(model, inputs)")
    available = getattr(module, "available", None)
    backend = Backend(name=name, module=module_name, _run_batch=run_batch, _available=available)
    if not backend.available():
        raise ToolMissing(f"back-end {name!r} is installed but cannot run here; install {install}")
    return backend


class DeviceBackend:
    """A connected device as a back-end: deploys the model (if not already there), then runs."""

    name = "device"

    def __init__(self, device: "Device", progress: Optional[Callable[[int, int], None]] = None,
                 record_spikes: bool = False) -> None:
        self.device = device
        self.progress = progress
        self.record_spikes = record_spikes

    def available(self) -> bool:
        """A connected device is always available."""
        return True

    def run_batch(self, model: "Model", inputs: np.ndarray) -> list[Any]:
        """Deploy ``model`` (skipped if the device holds it) and run every input."""
        self.device.deploy(model)
        x = np.asarray(inputs)
        batch = x[None] if x.ndim == 2 else x
        return self.device.run_batch(batch, progress=self.progress, model=model,
                                     record_spikes=self.record_spikes)


__all__ = ["Backend", "DeviceBackend", "NAMES", "get_backend"]
