"""Spike calibration and the quantize-then-fine-tune (QAT) driver."""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from edgespike.nn.network import SNN
from edgespike.quant.qsnn import QuantSNN


def calibration_loss(teacher_rates: list[torch.Tensor], student_rates: list[torch.Tensor]) -> torch.Tensor:
    """Mean cosine distance ``1 - cos`` between per-sample spike-rate vectors, layer by layer.

    Rates are ``(B, N)``; a sample where both networks are silent counts as distance 0, one
    where only one of them is silent as distance 1.
    """
    total = torch.zeros(())
    for t, s in zip(teacher_rates, student_rates):
        num = (t * s).sum(1)
        den = t.norm(dim=1) * s.norm(dim=1)
        both_silent = (t.norm(dim=1) == 0) & (s.norm(dim=1) == 0)
        cos = torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))
        cos = torch.where(both_silent, torch.ones_like(cos), cos)
        total = total + (1 - cos).mean()
    return total / max(1, len(teacher_rates))


def distillation(teacher: SNN, weight: float, kd: float = 0.0, temperature: float = 2.0):
    """An ``extra_loss`` for :class:`~edgespike.train.Trainer`.

    ``weight`` x the spike calibration loss, plus ``kd`` x the KL divergence between the
    teacher's and the student's softened scores (classic logit distillation, off at 0).
    """
    teacher.eval()

    def extra(model: nn.Module, x: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t_scores = teacher(x)
            t_rates = teacher.spike_rates()
        loss = weight * calibration_loss(t_rates, model.spike_rates()) if weight > 0 else torch.zeros(())
        if kd > 0:
            loss = loss + kd * temperature ** 2 * nn.functional.kl_div(
                nn.functional.log_softmax(scores / temperature, dim=1),
                nn.functional.softmax(t_scores / temperature, dim=1), reduction="batchmean")
        return loss

    return extra


def _latent(q: QuantSNN) -> list[torch.Tensor]:
    """The parameters that decide the integer weights: latent weights and ternary zero bands."""
    out = []
    for ql in q.qlayers:
        out.append(ql.layer.fc.weight)
        out += [ql.layer.rec.weight] if ql.recurrent else []
        out += [wq.delta for wq in (ql.wq, ql.rq) if wq is not None and hasattr(wq, "delta")]
    return out


def _settle(q: QuantSNN, epochs: int, best_before: float, extra, x, y, x_val, y_val, lr: float,
            batch_size: int, seed: int) -> None:
    """``epochs`` more QAT with the weight codes frozen; keeps them only if validation is no worse.

    Codes that keep flipping at the band edge make ternary QAT swing by a few points from epoch
    to epoch, even at a tiny learning rate (Nagel et al. 2022, "Overcoming oscillations in
    quantization-aware training"). With latent weights and zero bands frozen only thresholds,
    biases and magnitudes move, and the run settles.
    """
    from edgespike.train.trainer import TrainConfig, Trainer

    before = copy.deepcopy(q.state_dict())
    latent = _latent(q)
    for p in latent:
        p.requires_grad_(False)
    try:
        cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + 1)
        hist = Trainer(q, cfg, extra_loss=extra).fit(x, y, x_val, y_val)
    finally:
        for p in latent:
            p.requires_grad_(True)
    if x_val is not None and hist.best_val_acc < best_before:
        q.load_state_dict(before)


def quantize(snn: SNN, mode: str, x: torch.Tensor, y: torch.Tensor, *, qat_epochs: int = 0,
             calibration: float = 0.0, kd: float = 0.0, input_kind: str = "spikes", input_max_abs: int = 127,
             lr: float = 1e-3, batch_size: int = 64, seed: int = 0, levels: int = 127,
             x_val: Optional[torch.Tensor] = None, y_val: Optional[torch.Tensor] = None,
             ternary_scale: str = "layer", freeze_epochs: int = 0) -> QuantSNN:
    """Post-training quantization, then ``qat_epochs`` of quantization-aware fine-tuning.

    For direct encoding the input step is calibrated on ``x`` (largest |value| maps to
    ``input_max_abs``). ``calibration`` weights the spike-calibration distillation loss against
    the float network, ``kd`` a logit distillation loss (0: off). ``ternary_scale`` says where
    ternary magnitudes are learned (see :class:`~edgespike.quant.qsnn.QuantSNN`). The last
    ``freeze_epochs`` of the ``qat_epochs`` run with the integer weights frozen (thresholds,
    biases and ternary magnitudes still learn), which ends the epoch-to-epoch swings of ternary QAT.
    """
    from edgespike.train.trainer import TrainConfig, Trainer

    step = 1.0
    if input_kind == "values":
        step = float(x.abs().max().clamp(min=1e-8)) / input_max_abs
    torch.manual_seed(seed)
    q = QuantSNN(snn, mode, input_kind, step, input_max_abs, levels, ternary_scale)
    extra = distillation(snn, calibration, kd) if calibration > 0 or kd > 0 else None
    frozen_epochs = max(0, min(freeze_epochs, qat_epochs))
    best = -1.0
    if qat_epochs > frozen_epochs:
        cfg = TrainConfig(epochs=qat_epochs - frozen_epochs, lr=lr, batch_size=batch_size, seed=seed)
        best = Trainer(q, cfg, extra_loss=extra).fit(x, y, x_val, y_val).best_val_acc
    if frozen_epochs:
        _settle(q, frozen_epochs, best, extra, x, y, x_val, y_val, lr, batch_size, seed)
    q.eval()
    return q
