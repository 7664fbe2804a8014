"""Quantized SNNs: int8 (LSQ) and asymmetric ternary (ATW-SNN) with integer membranes.

A :class:`QuantSNN` wraps a copy of a float :class:`~edgespike.nn.SNN` of dense / recurrent
dense layers. Its forward pass runs the integer neuron of docs/SEMANTICS.md:

* eval mode: in int64 with exactly the rules of the numpy reference (shift, trunc0 decays,
  wrap24 / clip24, ``vth << 6``, ``bias_mant << bias_exp``, reset, decoding). What it predicts
  is what the exported model predicts, bit for bit;
* train mode: the same operations on float tensors holding integers, with straight-through
  rounding and surrogate spike gradients, so QAT learns through the rounding it will meet.

Units: one integer unit of a layer's synaptic input ``a_in`` is worth ``c`` float units
(``c = x_unit * weight_step * 2^-exp``); a membrane unit is worth ``c / 64``. Thresholds and
biases become integers in those units.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from edgespike.errors import InputError, ModelError
from edgespike.model.quantized import A_IN_LIMIT, VTH_MAX
from edgespike.nn.layers import Dense, Flatten, RecurrentDense
from edgespike.nn.network import SNN
from edgespike.nn.surrogate import spike_fn
from edgespike.quant import ste

MODES = ("int8", "ternary")
TERNARY_SCALES = ("layer", "readout", "neuron")


def exact_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w`` of int64 tensors, exactly, at floating-point speed where that is exact.

    Every partial sum of a product of integers lies within ``max|x| * max_k max(P_k, N_k)``
    (``P_k`` / ``N_k``: the sums of the positive / negative entries of column ``k`` of ``w``),
    whatever the order of the additions. Integers up to 2^24 are exact in float32 and up to
    2^53 in float64, so the product is taken in the narrowest of those that holds the bound
    (torch's int64 product has no BLAS kernel), else in int64. float32 is used only while
    ``torch.get_float32_matmul_precision()`` is ``"highest"`` (the default).
    """
    if x.numel() == 0 or w.numel() == 0:
        return torch.matmul(x, w)
    xmax = int(x.abs().max())
    col = max(int(w.clamp(min=0).sum(0).max()), int((-w).clamp(min=0).sum(0).max()))
    worst = xmax * col
    # float32 only at full precision: "high" / "medium" let torch use TF32 / bf16 products
    if worst <= 1 << 24 and torch.get_float32_matmul_precision() == "highest":
        return torch.matmul(x.to(torch.float32), w.to(torch.float32)).to(torch.int64)
    if worst < 1 << 53:
        return torch.matmul(x.to(torch.float64), w.to(torch.float64)).to(torch.int64)
    return torch.matmul(x, w)


class WeightQuantizer(nn.Module):
    """Learnable quantizer of one float weight matrix ``(out, in)``.

    ``int8``: LSQ, a learnable step ``s``; integers ``clamp(round(w / s), -128, 127)``.
    ``ternary``: a learnable zero band ``delta`` and magnitudes ``a_pos`` / ``a_neg`` (float);
    codes ``+1 / 0 / -1`` and integer magnitudes ``round(a / s)`` with ``s = max(a) / levels``.
    """

    def __init__(self, weight: torch.Tensor, mode: str = "int8", levels: int = 127,
                 per_neuron: bool = False) -> None:
        super().__init__()
        if mode not in MODES:
            raise ModelError(f"unknown quantization {mode!r}; choose int8 or ternary")
        self.mode, self.levels, self.per_neuron = mode, int(levels), bool(per_neuron)
        w = weight.detach()
        if mode == "int8":
            self.step = nn.Parameter(w.abs().max().clamp(min=1e-6) / 127.0)
            return
        # zero band and magnitudes per layer, or per output neuron (2 bytes per neuron in the blob);
        # a per-neuron band under per-layer magnitudes lost 1-2 pt on FSDD
        delta = 0.7 * (w.abs().mean(dim=1) if per_neuron else w.abs().mean().reshape(1))
        band = delta[:, None]
        pos = torch.where(w > band, w, torch.zeros_like(w))
        neg = torch.where(w < -band, -w, torch.zeros_like(w))
        npos, nneg = (w > band).sum(1), (w < -band).sum(1)
        if self.per_neuron:
            a_pos = torch.where(npos > 0, pos.sum(1) / npos.clamp(min=1), delta)
            a_neg = torch.where(nneg > 0, neg.sum(1) / nneg.clamp(min=1), delta)
        else:
            a_pos = pos.sum() / npos.sum() if npos.sum() else delta.mean()
            a_neg = neg.sum() / nneg.sum() if nneg.sum() else delta.mean()
        self.delta = nn.Parameter(delta.clone())
        self.a_pos = nn.Parameter(a_pos.clone())
        self.a_neg = nn.Parameter(a_neg.clone())

    def own_step(self) -> torch.Tensor:
        """The float value of one integer weight unit when the quantizer picks it (float units)."""
        if self.mode == "int8":
            return self.step.abs().clamp(min=1e-8)
        return torch.maximum(self.a_pos.abs().max(), self.a_neg.abs().max()).clamp(min=1e-8) / self.levels

    def max_magnitude(self, w: torch.Tensor) -> float:
        """Largest |effective float weight| (for choosing exponents)."""
        if self.mode == "int8":
            return float(w.detach().abs().max())
        return float(torch.maximum(self.a_pos.abs().max(), self.a_neg.abs().max()).detach())

    def quantize(self, w: torch.Tensor, step: torch.Tensor, train: bool
                 ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Integer weights ``(out, in)`` for the given unit ``step``.

        Returns ``(W, codes, a_pos_int, a_neg_int)``; the last three are None for int8. In train
        mode ``W`` is a float tensor of integers with straight-through gradients.
        """
        if self.mode == "int8":
            if train:
                s = ste.grad_scale(step, 1.0 / math.sqrt(w.numel() * 127))
                return ste.round_ste(torch.clamp(w / s, -128, 127)), None, None, None
            return torch.round(torch.clamp(w / step, -128, 127)), None, None, None
        delta = self.delta.abs()[:, None]
        cp = (w > delta).to(w.dtype)
        cn = (w < -delta).to(w.dtype)
        ap = torch.clamp(ste.round_ste(self.a_pos.abs() / step), 1, 255)
        an = torch.clamp(ste.round_ste(self.a_neg.abs() / step), 1, 255)
        apc, anc = (ap[:, None], an[:, None]) if self.per_neuron else (ap, an)
        codes = (cp - cn).detach()
        if not train:
            return (apc * cp - anc * cn).detach(), codes, ap.detach(), an.detach()
        hard = apc * cp - anc * cn
        # straight-through to the latent weights; a smooth band edge gives delta its gradient
        tau = 0.1 * delta.detach() + 1e-6
        wd = w.detach()
        fp, fn = self.a_pos.abs().detach(), self.a_neg.abs().detach()
        if self.per_neuron:
            fp, fn = fp[:, None], fn[:, None]
        soft = fp * torch.sigmoid((wd - delta) / tau) - fn * torch.sigmoid((-wd - delta) / tau)
        return hard + ((w - wd) + (soft - soft.detach())) / step.detach(), codes, ap, an


def _worst(w_int: np.ndarray, bound: int, exp: int) -> int:
    """docs/SEMANTICS.md worst case of one weight matrix ``(in, out)``, as Weights.worst_case_input."""
    pos = np.clip(w_int, 0, None).sum(axis=0) * bound
    neg = np.clip(-w_int, 0, None).sum(axis=0) * bound
    worst = int(max(pos.max(), neg.max()))
    return worst << exp if exp >= 0 else -((-worst) >> -exp)


@dataclass
class LayerInts:
    """The integer form of one layer for one forward pass (tensors in train mode)."""

    W: torch.Tensor            # (in, out)
    exp: int
    R: Optional[torch.Tensor]  # (out, out)
    rexp: int
    c: torch.Tensor            # float value of one a_in unit
    vth: torch.Tensor          # (out,) integer thresholds (before << 6)
    bias_mant: torch.Tensor    # (out,)
    bias_exp: int
    adapt: int
    codes: Optional[torch.Tensor] = None
    a_pos: Optional[torch.Tensor] = None
    a_neg: Optional[torch.Tensor] = None
    rcodes: Optional[torch.Tensor] = None
    ra_pos: Optional[torch.Tensor] = None
    ra_neg: Optional[torch.Tensor] = None


class QuantDense(nn.Module):
    """A quantized (recurrent) dense layer running the integer CUBA-LIF."""

    def __init__(self, layer: Dense, mode: str, x_unit: float, input_bound: int, levels: int = 127,
                 per_neuron: bool = False) -> None:
        super().__init__()
        self.layer = layer
        self.mode = mode
        self.x_unit = float(x_unit)
        self.input_bound = int(input_bound)
        self.wq = WeightQuantizer(layer.fc.weight, mode, levels, per_neuron)
        self.recurrent = isinstance(layer, RecurrentDense)
        self.rq = WeightQuantizer(layer.rec.weight, mode, levels, per_neuron) if self.recurrent else None
        self.last_spikes: Optional[torch.Tensor] = None

    @property
    def cfg(self):
        return self.layer.lif.config

    def ints(self, train: bool) -> LayerInts:
        """Integer weights, exponents, thresholds and bias for this pass."""
        w = self.layer.fc.weight
        step = self.wq.own_step()
        W, codes, ap, an = self.wq.quantize(w, step, train)
        W = W.t()
        w_np = W.detach().numpy().astype(np.int64)
        rmax = self.rq.max_magnitude(self.layer.rec.weight) if self.recurrent else 0.0
        lim = 255 if self.mode == "ternary" else 127
        for exp in range(0, -32, -1):
            worst = _worst(w_np, self.input_bound, exp)
            c_val = self.x_unit * float(step.detach()) * 2.0 ** (-exp)
            rexp, rworst = 0, 0
            if self.recurrent:
                # the recurrent unit must equal the feed-forward one: R's step is c * 2^rexp
                rexp = max(0, math.ceil(math.log2(max(rmax / (c_val * lim), 1e-30))))
                rexp = min(rexp, 16)
                rstep = c_val * 2.0 ** rexp
                R_t, *_ = self.rq.quantize(self.layer.rec.weight, torch.tensor(rstep), False)
                rworst = _worst(R_t.t().numpy().astype(np.int64), 1, rexp)
            if worst + rworst < A_IN_LIMIT:
                break
        else:  # pragma: no cover - 2^-31 always fits
            raise ModelError("no weight exponent keeps the synaptic input under 2^17")
        c = self.x_unit * step * 2.0 ** (-exp)
        R = rcodes = rap = ran = None
        if self.recurrent:
            R, rcodes, rap, ran = self.rq.quantize(self.layer.rec.weight, c * 2.0 ** rexp, train)
            R = R.t()
        cfg = self.cfg
        vth_f = self.layer.lif.threshold.clamp(min=1e-3).expand(self.layer.out_features)
        if cfg.spiking:
            rnd = ste.round_ste if train else torch.round
            vth = torch.clamp(rnd(vth_f / c), 1, VTH_MAX)
        else:
            vth = torch.full((self.layer.out_features,), float(VTH_MAX))
        q = c / 64.0
        bias_exp = 0
        if self.layer.bias is not None:
            b = self.layer.bias / q
            big = float(b.detach().abs().max())
            while bias_exp < 7 and big / 2 ** bias_exp > 4095:
                bias_exp += 1
            rnd = ste.round_ste if train else torch.round
            mant = torch.clamp(rnd(b / 2 ** bias_exp), -4096, 4095)
        else:
            mant = torch.zeros(self.layer.out_features)
        adapt = 0
        if cfg.adapt_step:
            adapt = int(min(VTH_MAX, round(float(cfg.adapt_step * vth_f.detach().mean() / c.detach()))))
        if not train:
            W = W.detach().to(torch.int64)
            R = R.detach().to(torch.int64) if R is not None else None
            vth, mant = vth.detach().to(torch.int64), mant.detach().to(torch.int64)
        return LayerInts(W, exp, R, rexp, c, vth, mant, bias_exp, adapt, codes, ap, an, rcodes, rap, ran)

    # -- the two forward passes --------------------------------------------------------------

    def forward_int(self, x: torch.Tensor, p: LayerInts, steps: Optional[int] = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact int64 pass. ``x``: ``(T, B, in)`` int64, or ``(1, B, in)`` with ``steps = T``
        for an input that is the same at every step (its products are taken once). Returns
        spikes and membranes ``(T, B, out)``."""
        cfg = self.cfg
        steps = x.shape[0] if steps is None else steps
        ff = ste.shift_i(exact_matmul(x, p.W), p.exp)
        z = torch.zeros_like(ff[0])
        u, v, th, ref, prev = z, z, z, z, z
        vth6, bias = p.vth << 6, p.bias_mant << p.bias_exp
        spikes, vs = [], []
        for t in range(steps):
            a_in = ff[t] if ff.shape[0] > 1 else ff[0]
            if p.R is not None:
                a_in = a_in + ste.shift_i(exact_matmul(prev, p.R), p.rexp)
            u = ste.wrap24_i(ste.decay_i(u, cfg.du) + (a_in << 6))
            active = ref == 0
            v_new = torch.clamp(ste.decay_i(v, cfg.dv) + u + bias, -ste.MAX24 + 1, ste.MAX24 - 1)
            theta = vth6 + th
            spike = active & (v_new > theta)
            vv = torch.where(active, v_new, v)
            if cfg.reset == "zero":
                vv = torch.where(spike, torch.zeros_like(vv), vv)
            else:
                vv = torch.where(spike, vv - theta, vv)
            v = vv
            ref = torch.where(active, spike.to(torch.int64) * cfg.refractory, ref - 1)
            if p.adapt:
                th = ste.decay_i(th, cfg.adapt_decay) + spike.to(torch.int64) * (p.adapt << 6)
            prev = spike.to(torch.int64)
            spikes.append(prev)
            vs.append(v)
        return torch.stack(spikes), torch.stack(vs)

    def forward_qat(self, x: torch.Tensor, p: LayerInts) -> tuple[torch.Tensor, torch.Tensor]:
        """Float pass on integer-valued tensors with straight-through rounding (training)."""
        cfg = self.cfg
        ff = torch.matmul(x, p.W) * 2.0 ** p.exp
        if p.exp < 0:
            ff = ste.floor_ste(ff)
        z = torch.zeros_like(ff[0])
        u, v, th, ref, prev = z, z, z, z, z
        vth6 = p.vth * 64.0
        bias = p.bias_mant * 2.0 ** p.bias_exp
        spikes, vs = [], []
        for t in range(x.shape[0]):
            a_in = ff[t]
            if p.R is not None:
                a_in = a_in + torch.matmul(prev, p.R) * 2.0 ** p.rexp
            u = ste.wrap24_ste(ste.trunc_ste(u * (4096 - cfg.du) / 4096.0) + a_in * 64.0)
            active = (ref <= 0).to(u.dtype)
            v_new = ste.clip24(ste.trunc_ste(v * (4096 - cfg.dv) / 4096.0) + u + bias)
            theta = vth6 + th
            if cfg.spiking:
                s = spike_fn((v_new - theta) / vth6, cfg.surrogate, cfg.slope) * active
            else:
                s = ((v_new > theta).to(u.dtype) * active).detach()
            sd = s.detach()
            vv = v_new * (1 - sd) if cfg.reset == "zero" else v_new - sd * theta.detach()
            v = active * vv + (1 - active) * v if cfg.refractory else vv
            ref = torch.where(active.bool(), sd * cfg.refractory, ref - 1)
            if p.adapt:
                th = ste.trunc_ste(th * (4096 - cfg.adapt_decay) / 4096.0) + sd * (p.adapt * 64.0)
            prev = s
            spikes.append(s)
            vs.append(v)
        return torch.stack(spikes), torch.stack(vs)


def _static(x: torch.Tensor) -> bool:
    """Whether every sample of ``x`` ``(B, T, C)`` is the same at every step."""
    return bool((x[:, 1:] == x[:, :1]).all())


class QuantSNN(nn.Module):
    """The quantized network. ``forward`` takes the float network's input ``(B, T, ...)``.

    In eval mode it returns the exact int64 scores the exported model computes; in train mode
    float scores in the float network's units (for the loss).

    Args:
        snn: the float network (copied; QAT fine-tunes the copy).
        mode: ``"int8"`` or ``"ternary"``.
        input_kind: ``"spikes"`` (0/1 input) or ``"values"`` (direct encoding).
        input_step: float value of one integer input unit (direct encoding only).
        input_max_abs: largest |integer input| (direct encoding only).
        levels: the integer magnitude of the larger ternary weight.
        ternary_scale: where ternary magnitudes ``a_pos`` / ``a_neg`` are learned: ``"layer"``
            (one pair per layer), ``"readout"`` (one pair per output neuron of the last layer,
            per layer elsewhere) or ``"neuron"`` (per neuron everywhere). Each per-neuron pair
            adds 2 bytes per neuron to the blob.
    """

    def __init__(self, snn: SNN, mode: str = "int8", input_kind: str = "spikes",
                 input_step: float = 1.0, input_max_abs: int = 127, levels: int = 127,
                 ternary_scale: str = "layer") -> None:
        super().__init__()
        if mode not in MODES:
            raise ModelError(f"unknown quantization {mode!r}; choose int8 or ternary")
        if input_kind not in ("spikes", "values"):
            raise ModelError("input_kind must be 'spikes' or 'values'")
        if ternary_scale not in TERNARY_SCALES:
            raise ModelError(f"ternary_scale must be one of {', '.join(TERNARY_SCALES)}, got {ternary_scale!r}")
        snn.clear_records()  # tensors of the last forward hold a graph, which cannot be copied
        self.net = copy.deepcopy(snn)
        self.mode, self.input_kind = mode, input_kind
        self.input_step, self.input_max_abs = float(input_step), int(input_max_abs)
        self.decoding = snn.decoding
        qlayers = []
        seen_dense = False
        for i, layer in enumerate(self.net.layers):
            if isinstance(layer, Flatten) and not seen_dense:
                continue  # the input is flattened before it reaches the first layer
            if not isinstance(layer, Dense):
                raise ModelError(
                    f"layer {i} ({type(layer).__name__}) cannot be exported: the integer model holds "
                    "dense and recurrent dense layers; train convolutional nets in float, or "
                    "flatten the input and use Dense layers for deployment")
            first = not seen_dense
            seen_dense = True
            x_unit = self.input_step if (first and input_kind == "values") else 1.0
            bound = self.input_max_abs if (first and input_kind == "values") else 1
            qlayers.append(QuantDense(layer, mode, x_unit, bound, levels))
        if mode == "ternary" and ternary_scale != "layer":
            for ql in qlayers if ternary_scale == "neuron" else qlayers[-1:]:
                ql.wq = WeightQuantizer(ql.layer.fc.weight, mode, levels, per_neuron=True)
                if ql.recurrent:
                    ql.rq = WeightQuantizer(ql.layer.rec.weight, mode, levels, per_neuron=True)
        self.qlayers = nn.ModuleList(qlayers)
        self.last_rasters: list[torch.Tensor] = []

    @property
    def input_size(self) -> int:
        return self.qlayers[0].layer.in_features

    def integer_input(self, x: torch.Tensor | np.ndarray, expand_static: bool = False
                      ) -> torch.Tensor:
        """The model's integer input ``(B, T, input_size)`` int64 for a float input ``(B, T, ...)``.

        ``expand_static``: when the input is the same at every step (a still image, direct
        encoding), quantize one step and return it expanded over the steps (a read-only view
        with stride 0 along T: the simulators then see a static input without comparing)."""
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).detach()
        x = x.reshape(x.shape[0], x.shape[1], -1).to(torch.float32)
        if expand_static and x.shape[1] > 1 and _static(x):
            return self.integer_input(x[:, :1]).expand(-1, x.shape[1], -1)
        if x.shape[-1] != self.input_size:
            raise InputError(f"input has {x.shape[-1]} channels; the network takes {self.input_size}")
        if self.input_kind == "spikes":
            if x.numel() and not bool(((x == 0) | (x == 1)).all()):
                raise InputError("spike input must be 0 or 1; use input_kind='values' for direct encoding")
            return x.to(torch.int64)
        q = torch.round(x / self.input_step)
        return torch.clamp(q, -self.input_max_abs, self.input_max_abs).to(torch.int64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        train = self.training
        xi = self.integer_input(x, expand_static=not train).transpose(0, 1)  # (T, B, C)
        steps = xi.shape[0]
        if not train and xi.stride(0) == 0:
            xi = xi[:1]  # the same at every step: the first layer's products once
        h = xi.to(torch.float32) if train else xi
        self.last_rasters = []
        v = spikes = None
        p = None
        for ql in self.qlayers:
            p = ql.ints(train)
            spikes, v = ql.forward_qat(h, p) if train else ql.forward_int(h, p, steps)
            self.last_rasters.append(spikes)
            h = spikes
        if self.decoding == "membrane_sum":
            scores = v.sum(0)
            return scores * (p.c / 64.0) / steps if train else scores
        if self.decoding == "membrane_last":
            return v[-1] * (p.c / 64.0) if train else v[-1]
        if self.decoding == "spike_count" or train:
            return spikes.sum(0)
        fired = spikes.sum(0) > 0
        first = torch.argmax(spikes, dim=0)
        return torch.where(fired, steps - first, torch.zeros_like(first))

    def spike_rates(self) -> list[torch.Tensor]:
        """Per spiking layer, mean rate per neuron over the last forward ``(B, N)``."""
        return [r.to(torch.float32).mean(0) for r, ql in zip(self.last_rasters, self.qlayers)
                if ql.cfg.spiking]

    @torch.no_grad()
    def predict(self, x: torch.Tensor | np.ndarray, batch: int = 512) -> np.ndarray:
        """Exact integer predictions (argmax, ties to the lowest index) for a float input batch."""
        was = self.training
        self.eval()
        out = []
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
        for i in range(0, x.shape[0], batch):
            scores = self(x[i:i + batch]).numpy()
            out.append(np.argmax(scores, axis=1))
        self.train(was)
        return np.concatenate(out).astype(np.int64)
