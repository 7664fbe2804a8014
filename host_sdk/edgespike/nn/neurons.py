"""The CUBA-LIF neuron of DESIGN section 3, in floating point, as a PyTorch module.

Per step (decays in 1/4096 units, exactly the integer neuron's constants)::

    u = u * (1 - du/4096) + I
    v = v * (1 - dv/4096) + u + bias          (held while refractory)
    theta = vth + th;   spike = v > theta;   v = 0 or v - theta on a spike
    th = th * (1 - adapt_decay/4096) + adapt_step * spike      (adaptive threshold, optional)

Quantization-aware training (:mod:`edgespike.quant`) runs these same equations with the integer
rounding inserted, so export only adds what QAT already simulated.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

import torch
from torch import nn

from edgespike.errors import EdgeSpikeError
from edgespike.nn.surrogate import SURROGATES, spike_fn

LearnThreshold = Literal["none", "layer", "channel"]


@dataclass
class NeuronConfig:
    """Parameters of a CUBA-LIF layer (plain data; decays in 1/4096 per step, time in steps).

    Attributes:
        du: current decay, 0..4096 (4096: no current state, a plain LIF).
        dv: voltage decay, 0..4096 (0: integrate-and-fire, no leak).
        threshold: firing threshold in the layer's input units.
        reset: ``"zero"`` or ``"subtract"``.
        learn_threshold: ``"none"``, ``"layer"`` (one learnable value) or ``"channel"`` (one per neuron).
        refractory: steps a neuron stays silent after a spike (0: off).
        adapt_step: threshold increase per spike, in threshold units (0: no adaptation).
        adapt_decay: decay of the threshold increase, 0..4096.
        surrogate: name of the surrogate gradient (:data:`edgespike.nn.surrogate.SURROGATES`).
        slope: steepness of the surrogate.
        spiking: False makes a non-spiking readout layer (integrates only; membrane decoding).
    """

    du: int = 4096
    dv: int = 410
    threshold: float = 1.0
    reset: str = "zero"
    learn_threshold: LearnThreshold = "none"
    refractory: int = 0
    adapt_step: float = 0.0
    adapt_decay: int = 256
    surrogate: str = "fast_sigmoid"
    slope: float = 5.0
    spiking: bool = True

    def check(self) -> "NeuronConfig":
        """Raise :class:`EdgeSpikeError` for out-of-range values; returns self."""
        for name in ("du", "dv", "adapt_decay"):
            if not 0 <= int(getattr(self, name)) <= 4096:
                raise EdgeSpikeError(f"{name}={getattr(self, name)} must be in 0..4096 (1/4096 per step)")
        if self.reset not in ("zero", "subtract"):
            raise EdgeSpikeError(f"reset must be 'zero' or 'subtract', got {self.reset!r}")
        if self.learn_threshold not in ("none", "layer", "channel"):
            raise EdgeSpikeError("learn_threshold must be 'none', 'layer' or 'channel'")
        if self.surrogate not in SURROGATES:
            raise EdgeSpikeError(f"unknown surrogate {self.surrogate!r}; choose one of {SURROGATES}")
        if self.threshold <= 0:
            raise EdgeSpikeError("threshold must be positive")
        if not 0 <= self.refractory <= 255:
            raise EdgeSpikeError("refractory must be in 0..255 steps")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


class CUBALIF(nn.Module):
    """A layer of float CUBA-LIF neurons over a whole sequence.

    Input: synaptic current ``(T, B, *shape)``. Output: spikes of the same shape. The membrane
    after reset of every step is kept in :attr:`last_v` (for membrane decodings) and the spike
    raster in :attr:`last_spikes` (for rates and calibration).
    """

    def __init__(self, size: int | tuple[int, ...], config: Optional[NeuronConfig] = None) -> None:
        super().__init__()
        self.config = (config or NeuronConfig()).check()
        self.shape = (size,) if isinstance(size, int) else tuple(size)
        cfg = self.config
        if cfg.learn_threshold == "channel":
            self.threshold = nn.Parameter(torch.full((self.shape[0],), float(cfg.threshold)))
        elif cfg.learn_threshold == "layer":
            self.threshold = nn.Parameter(torch.tensor(float(cfg.threshold)))
        else:
            self.register_buffer("threshold", torch.tensor(float(cfg.threshold)))
        self.last_v: Optional[torch.Tensor] = None
        self.last_spikes: Optional[torch.Tensor] = None

    def vth(self) -> torch.Tensor:
        """The (positive) threshold, broadcastable to ``(B, *shape)``."""
        th = self.threshold.clamp(min=1e-3)
        if th.ndim == 1 and len(self.shape) > 1:
            th = th.view(-1, *([1] * (len(self.shape) - 1)))
        return th

    def init_state(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        z = torch.zeros_like(like)
        return {"u": z, "v": z, "th": z, "ref": z}

    def step(self, current: torch.Tensor, state: dict[str, torch.Tensor],
             bias: Optional[torch.Tensor] = None, vth: Optional[torch.Tensor] = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One time step; returns (spikes, new state). ``vth``: :meth:`vth`, if already computed."""
        cfg = self.config
        # du = 4096 (no synaptic memory, the common case) and dv = 0 skip a multiply by 0 / 1:
        # the same values, fewer ops in every step of BPTT
        u = current if cfg.du == 4096 else state["u"] * (1.0 - cfg.du / 4096.0) + current
        v_new = (state["v"] if cfg.dv == 0 else state["v"] * (1.0 - cfg.dv / 4096.0)) + u
        if bias is not None:
            v_new = v_new + bias
        if vth is None:
            vth = self.vth()
        if cfg.refractory:
            active = (state["ref"] <= 0).to(u.dtype)
            v_new = active * v_new + (1 - active) * state["v"]
        else:
            active = None
        theta = vth + state["th"] if cfg.adapt_step else vth
        if cfg.spiking:
            s = spike_fn((v_new - theta) / vth, cfg.surrogate, cfg.slope)
            if active is not None:
                s = s * active
            sd = s.detach()  # reset is not differentiated (as snnTorch's default)
            v = v_new * (1 - sd) if cfg.reset == "zero" else v_new - sd * theta.detach()
        else:  # a non-spiking readout never resets
            s = sd = torch.zeros_like(v_new)
            v = v_new
        th = state["th"]
        if cfg.adapt_step:
            th = th * (1.0 - cfg.adapt_decay / 4096.0) + cfg.adapt_step * vth.detach() * sd
        ref = state["ref"]
        if cfg.refractory:
            ref = torch.where(active.bool(), sd * cfg.refractory, ref - 1)
        return s, {"u": u, "v": v, "th": th, "ref": ref}

    def forward(self, current: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        state = self.init_state(current[0])
        vth = self.vth()
        spikes, vs = [], []
        for t in range(current.shape[0]):
            s, state = self.step(current[t], state, bias, vth)
            spikes.append(s)
            vs.append(state["v"])
        self.last_v = torch.stack(vs)
        self.last_spikes = torch.stack(spikes)
        return self.last_spikes
