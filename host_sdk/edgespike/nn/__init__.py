"""Spiking neurons and layers as PyTorch modules (float; QAT lives in :mod:`edgespike.quant`)."""
from edgespike.nn.layers import Conv2d, Dense, Flatten, Pool2d, RecurrentDense
from edgespike.nn.network import DECODINGS, SNN, decode, mlp
from edgespike.nn.neurons import CUBALIF, NeuronConfig
from edgespike.nn.surrogate import SURROGATES, spike_fn

__all__ = ["CUBALIF", "Conv2d", "DECODINGS", "Dense", "Flatten", "NeuronConfig", "Pool2d",
           "RecurrentDense", "SNN", "SURROGATES", "decode", "mlp", "spike_fn"]
