"""Straight-through rounding helpers: exact integer forward, identity gradient."""
from __future__ import annotations

import torch

MAX24 = 1 << 23


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even forward (as torch.round), identity backward."""
    return x + (torch.round(x) - x).detach()


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


def trunc_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.trunc(x) - x).detach()


def wrap24_ste(x: torch.Tensor) -> torch.Tensor:
    """The single 24-bit wrap of docs/SEMANTICS.md, identity gradient."""
    w = torch.where(x > MAX24, x - 2 * MAX24, x)
    w = torch.where(w <= -MAX24, w + 2 * MAX24, w)
    return x + (w - x).detach()


def clip24(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, -MAX24 + 1, MAX24 - 1)


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Forward ``x``, backward gradient times ``scale`` (LSQ's step-size gradient scaling)."""
    return (x - x * scale).detach() + x * scale


# --- exact int64 versions (eval mode and export) -------------------------------------------

def shift_i(a: torch.Tensor, e: int) -> torch.Tensor:
    """``a << e`` or an arithmetic (floor) right shift by ``-e``."""
    return a << e if e >= 0 else a >> (-e)


def decay_i(x: torch.Tensor, d: int) -> torch.Tensor:
    """``trunc0(x * (4096 - d) / 4096)`` in int64 (``d = 4096``: 0; ``d = 0``: ``x``)."""
    if d == 4096:
        return torch.zeros_like(x)
    if d == 0:
        return x
    p = x * (4096 - d)
    return torch.sign(p) * (p.abs() >> 12)


def wrap24_i(a: torch.Tensor) -> torch.Tensor:
    a = torch.where(a > MAX24, a - 2 * MAX24, a)
    return torch.where(a <= -MAX24, a + 2 * MAX24, a)
