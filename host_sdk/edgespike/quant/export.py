"""Export a :class:`~edgespike.quant.qsnn.QuantSNN` to the integer :class:`~edgespike.model.Model`.

The exporter reads the very integers the eval-mode forward pass computes with
(:meth:`QuantDense.ints`), so the exported model predicts what the quantized network predicted.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

import numpy as np
import torch

from edgespike.model.quantized import EncoderSpec, Layer, Model, Neurons, Weights
from edgespike.quant.qsnn import QuantSNN


def _scalar_or_array(a: np.ndarray) -> int | np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    return int(a[0]) if a.size and (a == a[0]).all() else a


def _weights(mode: str, W: torch.Tensor, codes, ap, an, exp: int) -> Weights:
    if mode == "int8":
        return Weights(values=W.numpy().astype(np.int8), exp=int(exp), encoding="int8")
    return Weights(values=codes.t().numpy().astype(np.int8), exp=int(exp), encoding="ternary",
                   a_pos=_scalar_or_array(ap.numpy().reshape(-1)), a_neg=_scalar_or_array(an.numpy().reshape(-1)))


@torch.no_grad()
def export(qnet: QuantSNN, timesteps: int, name: str = "model", labels: Sequence[str] = (),
           encoder: Optional[EncoderSpec] = None, dt_us: int = 1000) -> Model:
    """The deployable integer model of ``qnet`` (validated).

    Args:
        qnet: the quantized network.
        timesteps: steps per inference (the length of the encoded input).
        name: model name stored in the blob.
        labels: class names, in output order.
        encoder: how raw data was encoded (stored for on-device encoding and round trips).
        dt_us: duration of one step when streaming, in microseconds.
    """
    qnet.eval()
    layers = []
    for i, ql in enumerate(qnet.qlayers):
        p = ql.ints(False)
        cfg = ql.cfg
        weights = _weights(qnet.mode, p.W, p.codes, p.a_pos, p.a_neg, p.exp)
        recurrent = None
        if p.R is not None:
            recurrent = _weights(qnet.mode, p.R, p.rcodes, p.ra_pos, p.ra_neg, p.rexp)
        neurons = Neurons(
            du=int(cfg.du), dv=int(cfg.dv), vth=_scalar_or_array(p.vth.numpy()),
            bias_mant=_scalar_or_array(p.bias_mant.numpy()), bias_exp=int(p.bias_exp),
            reset=cfg.reset, refractory=int(cfg.refractory), adapt_step=int(p.adapt),
            adapt_decay=int(cfg.adapt_decay) if p.adapt else 0,
        )
        layers.append(Layer(weights=weights, neurons=neurons, recurrent=recurrent, name=f"layer{i}"))
    if encoder is None:
        params = {"input_step": qnet.input_step} if qnet.input_kind == "values" else {}
        encoder = EncoderSpec(kind="direct" if qnet.input_kind == "values" else "none",
                              channels=qnet.input_size, params_json=json.dumps(params))
    model = Model(
        input_size=qnet.input_size, timesteps=int(timesteps), layers=layers,
        input_kind=qnet.input_kind,
        input_max_abs=qnet.input_max_abs if qnet.input_kind == "values" else 1,
        decoding=qnet.decoding, name=name, dt_us=int(dt_us), encoder=encoder, labels=list(labels),
    )
    return model.validate()
