"""Hypothesis strategies for random, valid quantized models and inputs.

Used by the host parity test (numpy reference vs the C core) and by the QEMU parity test,
which asks for smaller models through the size knobs of :func:`models`.

Weights and inputs come from a numpy generator seeded by a drawn integer (drawing hundreds of
thousands of weights one by one through Hypothesis would be far too slow); the structure
(layers, widths, options, decoding) is drawn directly, so it shrinks well.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from edgespike.model.quantized import A_IN_LIMIT, VTH_MAX, Layer, Model, Neurons, Weights

DECODINGS = ("spike_count", "membrane_last", "membrane_sum", "first_spike")
_SUM_LIMIT = 1 << 31


def _column_worst(w: Weights) -> int:
    """max_k max(positive sum, negative sum) of the integer weights into neuron k (unshifted)."""
    m = w.integer_matrix()
    return int(max(np.clip(m, 0, None).sum(axis=0).max(), np.clip(-m, 0, None).sum(axis=0).max()))


def _shifted(worst: int, exp: int) -> int:
    """Weights.worst_case_input's shift of an unshifted worst case."""
    return worst << exp if exp >= 0 else -((-worst) >> -exp)


def largest_exp(w: Weights, bound: int, limit: int) -> int:
    """The largest weight exponent in -31..16 keeping the shifted worst case below ``limit``."""
    worst = _column_worst(w) * bound
    for exp in range(16, -32, -1):
        if _shifted(worst, exp) < limit:
            return exp
    return -31


def _weights(draw, rng: np.random.Generator, fan_in: int, fan_out: int) -> Weights:
    encoding = draw(st.sampled_from(("int8", "ternary")))
    density = draw(st.sampled_from((0.0, 0.05, 0.3, 1.0)))
    mask = rng.random((fan_in, fan_out)) < density
    if encoding == "int8":
        values = (rng.integers(-128, 128, (fan_in, fan_out)) * mask).astype(np.int8)
        return Weights(values=values, encoding="int8")
    values = (rng.choice(np.array([-1, 1], dtype=np.int8), (fan_in, fan_out)) * mask).astype(np.int8)
    a: dict[str, int | np.ndarray] = {}
    for name in ("a_pos", "a_neg"):
        if draw(st.booleans()):
            a[name] = rng.integers(1, 256, fan_out).astype(np.int64)
        else:
            a[name] = int(rng.integers(1, 256))
    return Weights(values=values, encoding="ternary", **a)


def _neurons(draw, rng: np.random.Generator, size: int) -> Neurons:
    decay = st.one_of(st.sampled_from((0, 1, 64, 410, 1024, 2047, 2048, 2049, 4000, 4095, 4096)),
                      st.integers(0, 4096))
    if draw(st.booleans()):
        # the common shape the C core has fast loops for: reset to zero, one bias, no
        # refractory period, no adaptation (du = 4096 often), threshold per layer or neuron
        if draw(st.booleans()):
            vth_c: int | np.ndarray = draw(st.one_of(st.integers(0, 2000), st.integers(0, VTH_MAX)))
        else:
            vth_c = rng.integers(0, draw(st.sampled_from((10, 2000, VTH_MAX))) + 1, size)
        return Neurons(du=draw(st.one_of(st.just(4096), decay)), dv=draw(decay), vth=vth_c,
                       bias_mant=draw(st.one_of(st.just(0), st.integers(-4096, 4095))),
                       bias_exp=draw(st.integers(0, 7)))
    if draw(st.booleans()):
        vth: int | np.ndarray = draw(st.one_of(st.integers(0, 2000), st.integers(0, VTH_MAX)))
    else:
        top = draw(st.sampled_from((10, 2000, VTH_MAX)))
        vth = rng.integers(0, top + 1, size).astype(np.int64)
    if draw(st.booleans()):
        bias: int | np.ndarray = draw(st.integers(-4096, 4095))
    else:
        bias = rng.integers(-4096, 4096, size).astype(np.int64)
    adaptive = draw(st.booleans())
    return Neurons(
        du=draw(decay), dv=draw(decay), vth=vth, bias_mant=bias, bias_exp=draw(st.integers(0, 7)),
        reset=draw(st.sampled_from(("zero", "subtract"))),
        refractory=draw(st.sampled_from((0, 0, 1, 2, 5, 255))),
        adapt_step=draw(st.one_of(st.integers(1, 500), st.integers(1, VTH_MAX))) if adaptive else 0,
        adapt_decay=draw(decay) if adaptive else 0,
    )


@st.composite
def models(draw, max_layers: int = 4, max_width: int = 512, max_input: int = 256,
           max_timesteps: int = 24, recurrent: bool = True) -> Model:
    """A random model that validates.

    Args:
        max_layers: up to this many layers (1..8).
        max_width: neurons per layer up to this (small widths are drawn more often).
        max_input: input channels up to this.
        max_timesteps: time steps up to this.
        recurrent: allow recurrent layers.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def width(top: int):
        return st.one_of(st.integers(1, min(top, 16)), st.integers(1, top))

    input_size = draw(width(max_input))
    input_kind = draw(st.sampled_from(("spikes", "values")))
    n_layers = draw(st.integers(1, max_layers))
    layers = []
    fan_in = input_size
    input_max_abs = 1
    for li in range(n_layers):
        size = draw(width(max_width))
        w = _weights(draw, rng, fan_in, size)
        if li == 0 and input_kind == "values":
            wanted = draw(st.sampled_from((1, 3, 127, 1000, 32767)))
            cap = (_SUM_LIMIT - 1) // max(1, _column_worst(w))
            input_max_abs = int(max(1, min(wanted, cap, 32767)))
        bound = input_max_abs if li == 0 else 1
        rec = None
        if recurrent and draw(st.booleans()):
            rec = _weights(draw, rng, size, size)
            # split the 2^17 budget between the two paths
            rec.exp = max(-31, largest_exp(rec, 1, A_IN_LIMIT // 2) - draw(st.integers(0, 3)))
            w.exp = max(-31, largest_exp(w, bound, A_IN_LIMIT // 2) - draw(st.integers(0, 3)))
        else:
            w.exp = max(-31, largest_exp(w, bound, A_IN_LIMIT) - draw(st.integers(0, 3)))
        layers.append(Layer(weights=w, neurons=_neurons(draw, rng, size), recurrent=rec))
        fan_in = size
    model = Model(input_size=input_size, timesteps=draw(st.integers(1, max_timesteps)),
                  layers=layers, input_kind=input_kind, input_max_abs=input_max_abs,
                  decoding=draw(st.sampled_from(DECODINGS)))
    return model.validate()


@st.composite
def inputs(draw, model: Model, batch: int = 2) -> np.ndarray:
    """A batch of valid inputs for ``model``: ``batch x timesteps x input_size`` integers.

    Spike inputs: 0/1 at a drawn density. Value inputs: signed values within input_max_abs,
    sparse or dense, often at the extremes (they drive u towards its 24-bit wrap), and often
    static (the same at every step, as a still image: the C core and the batched simulator
    then compute the first layer once).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (batch, model.timesteps, model.input_size)
    if model.input_kind == "values" and draw(st.booleans()):
        shape = (batch, 1, model.input_size)
    density = draw(st.sampled_from((0.0, 0.1, 0.5, 1.0)))
    mask = rng.random(shape) < density
    if model.input_kind == "spikes":
        return mask.astype(np.uint8)
    lim = model.input_max_abs
    if draw(st.booleans()):
        vals = rng.choice(np.array([-lim, lim]), shape)
    else:
        vals = rng.integers(-lim, lim + 1, shape)
    out = (vals * mask).astype(np.int32)
    return np.repeat(out, model.timesteps, axis=1) if out.shape[1] != model.timesteps else out


@st.composite
def saturating(draw, model: Model) -> Model:
    """``model`` with every layer made to saturate: no current or voltage decay (``du = dv =
    0``: u and v integrate without leak, so u wraps at 24 bits and v clips), thresholds at
    their maximum or drawn, for inputs at the extremes (:func:`extreme_inputs`)."""
    for layer in model.layers:
        n = layer.neurons
        n.du = draw(st.sampled_from((0, 0, 1, n.du)))
        n.dv = draw(st.sampled_from((0, 0, 1, n.dv)))
        if draw(st.booleans()):
            n.vth = VTH_MAX
    return model.validate()


@st.composite
def extreme_inputs(draw, model: Model, batch: int = 2) -> np.ndarray:
    """Inputs at the bound: every spike on, or every value at +-input_max_abs (one sign per
    channel, so that a neuron's sum reaches its worst case)."""
    shape = (batch, model.timesteps, model.input_size)
    if model.input_kind == "spikes":
        return np.ones(shape, dtype=np.uint8)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    signs = rng.choice(np.array([-1, 1]), (batch, 1, model.input_size))
    return np.broadcast_to(signs * model.input_max_abs, shape).astype(np.int32)
