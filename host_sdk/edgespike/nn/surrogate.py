"""Surrogate gradients for the spike step: the forward pass is the exact Heaviside step.

Each surrogate is selectable by name (:func:`get`). The argument ``x`` is the membrane
distance to threshold already normalised by the threshold (``(v - theta) / theta``), so one
``slope`` works for every layer whatever its units.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from edgespike.errors import EdgeSpikeError


class _Spike(torch.autograd.Function):
    """Heaviside forward (``x > 0``), a pluggable derivative backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kind: str, slope: float) -> torch.Tensor:  # noqa: D401
        ctx.save_for_backward(x)
        ctx.kind, ctx.slope = kind, slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        k = ctx.slope
        if ctx.kind == "fast_sigmoid":
            d = 1.0 / (1.0 + k * x.abs()) ** 2
        elif ctx.kind == "arctan":
            d = (1.0 / math.pi) * k / (1.0 + (math.pi / 2 * k * x) ** 2) * (math.pi / 2)
        elif ctx.kind == "triangle":
            d = torch.clamp(1.0 - k * x.abs(), min=0.0) * 1.0
        elif ctx.kind == "stacked":
            # quantized membranes sit on a grid: a sum of narrow bumps, one per grid level
            # near threshold, keeps the gradient alive where the integer membrane actually lands
            d = torch.zeros_like(x)
            for j in range(-2, 3):
                d = d + 1.0 / (1.0 + 2 * k * (x - 0.25 * j).abs()) ** 2
            d = d / 2.0
        else:  # pragma: no cover - guarded by get()
            raise AssertionError(ctx.kind)
        return grad * d, None, None


SURROGATES = ("fast_sigmoid", "arctan", "triangle", "stacked")


def spike_fn(x: torch.Tensor, kind: str = "fast_sigmoid", slope: float = 5.0) -> torch.Tensor:
    """Heaviside step of ``x`` (spike where ``x > 0``) with the named surrogate gradient."""
    if kind not in SURROGATES:
        raise EdgeSpikeError(f"unknown surrogate {kind!r}; choose one of {', '.join(SURROGATES)}")
    return _Spike.apply(x, kind, float(slope))


def get(name: str, slope: float = 5.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The spike function of surrogate ``name`` (one of :data:`SURROGATES`)."""
    if name not in SURROGATES:
        raise EdgeSpikeError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)}")
    return lambda x: _Spike.apply(x, name, float(slope))
