"""The quantized model as plain data: what the firmware, the simulators and the back-ends run.

Everything here is integer. The meaning of each field is in ``docs/SEMANTICS.md``; the byte
form is the protobuf ``Model`` of ``protocol/edgespike.proto`` (see :mod:`edgespike.model.blob`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np

from edgespike.errors import ModelError

Encoding = Literal["int8", "ternary"]
Reset = Literal["zero", "subtract"]
InputKind = Literal["spikes", "values"]
Decoding = Literal["spike_count", "membrane_last", "membrane_sum", "first_spike"]

#: Worst-case |a_in| must stay below this (docs/SEMANTICS.md, "Bounds").
A_IN_LIMIT = 1 << 17
DECAY_UNITY = 4096
VTH_MAX = (1 << 17) - 1


def _per_neuron(value: int | np.ndarray, size: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.int64)
    if arr.ndim == 0:
        return np.full(size, int(arr), dtype=np.int64)
    if arr.shape != (size,):
        raise ModelError(f"{name}: expected a scalar or {size} values, got shape {arr.shape}")
    return arr


@dataclass
class Weights:
    """A weight matrix, ``fan_in x fan_out`` (row j: synapses from presynaptic neuron j).

    For ``encoding="int8"``, ``values`` holds int8 weights. For ``"ternary"``, ``values``
    holds codes in {-1, 0, +1} and the effective weight is ``+a_pos[k]`` / ``-a_neg[k]``
    (scalars, or one per output neuron). The summed input is shifted by ``exp``.
    """

    values: np.ndarray
    exp: int = 0
    encoding: Encoding = "int8"
    a_pos: int | np.ndarray = 1
    a_neg: int | np.ndarray = 1

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values)
        if self.values.ndim != 2:
            raise ModelError(f"weights must be 2-D (fan_in, fan_out), got {self.values.shape}")

    @property
    def fan_in(self) -> int:
        return int(self.values.shape[0])

    @property
    def fan_out(self) -> int:
        return int(self.values.shape[1])

    def integer_matrix(self) -> np.ndarray:
        """The weights as plain int64 integers, ``fan_in x fan_out``."""
        if self.encoding == "int8":
            return self.values.astype(np.int64)
        codes = self.values.astype(np.int64)
        pos = _per_neuron(self.a_pos, self.fan_out, "a_pos")
        neg = _per_neuron(self.a_neg, self.fan_out, "a_neg")
        return np.where(codes > 0, pos[None, :], np.where(codes < 0, -neg[None, :], 0))

    def storage_bytes(self) -> int:
        """Bytes the weights take in the blob (data only), in bytes."""
        if self.encoding == "int8":
            return self.fan_in * self.fan_out
        per_neuron = 0 if np.ndim(self.a_pos) == 0 and np.ndim(self.a_neg) == 0 else 2 * self.fan_out
        return self.fan_in * ((self.fan_out + 3) // 4) + per_neuron

    def validate(self, where: str) -> None:
        v = self.values
        if not np.issubdtype(v.dtype, np.integer):
            raise ModelError(f"{where}: weights must be integers, got {v.dtype}")
        if self.fan_in < 1 or self.fan_out < 1:
            raise ModelError(f"{where}: empty weight matrix {v.shape}")
        if self.encoding == "int8":
            if v.min() < -128 or v.max() > 127:
                raise ModelError(f"{where}: int8 weights out of range [{v.min()}, {v.max()}]")
        elif self.encoding == "ternary":
            if not np.isin(v, (-1, 0, 1)).all():
                raise ModelError(f"{where}: ternary codes must be -1, 0 or +1")
            for name, a in (("a_pos", self.a_pos), ("a_neg", self.a_neg)):
                arr = _per_neuron(a, self.fan_out, f"{where}.{name}")
                if arr.min() < 1 or arr.max() > 255:
                    raise ModelError(f"{where}: {name} must be in 1..255")
        else:
            raise ModelError(f"{where}: unknown weight encoding {self.encoding!r}")
        if not -31 <= self.exp <= 16:
            raise ModelError(f"{where}: weight exponent {self.exp} outside -31..16")

    def worst_case_input(self, input_bound: int) -> int:
        """Largest |shifted sum| any input with |x| <= ``input_bound`` can produce."""
        w = self.integer_matrix()
        pos = np.clip(w, 0, None).sum(axis=0) * input_bound
        neg = np.clip(-w, 0, None).sum(axis=0) * input_bound
        worst = int(max(pos.max(), neg.max()))
        if worst >= 1 << 31:
            # the C kernels accumulate the unshifted sum in int32
            return worst
        if self.exp >= 0:
            return worst << self.exp
        return -((-worst) >> -self.exp)  # magnitude of floor(-worst / 2^-exp)


@dataclass
class Neurons:
    """CUBA-LIF parameters in Loihi 2 fixed point (docs/SEMANTICS.md)."""

    du: int = 4096
    dv: int = 0
    vth: int | np.ndarray = 64
    bias_mant: int | np.ndarray = 0
    bias_exp: int = 0
    reset: Reset = "zero"
    refractory: int = 0
    adapt_step: int = 0
    adapt_decay: int = 0

    def validate(self, where: str, size: int) -> None:
        for name in ("du", "dv", "adapt_decay"):
            val = getattr(self, name)
            if not 0 <= val <= DECAY_UNITY:
                raise ModelError(f"{where}: {name}={val} outside 0..4096")
        vth = _per_neuron(self.vth, size, f"{where}.vth")
        if vth.min() < 0 or vth.max() > VTH_MAX:
            raise ModelError(f"{where}: vth outside 0..{VTH_MAX}")
        bias = _per_neuron(self.bias_mant, size, f"{where}.bias_mant")
        if bias.min() < -4096 or bias.max() > 4095:
            raise ModelError(f"{where}: bias_mant outside -4096..4095")
        if not 0 <= self.bias_exp <= 7:
            raise ModelError(f"{where}: bias_exp={self.bias_exp} outside 0..7")
        if self.reset not in ("zero", "subtract"):
            raise ModelError(f"{where}: reset must be 'zero' or 'subtract'")
        if not 0 <= self.refractory <= 255:
            raise ModelError(f"{where}: refractory={self.refractory} outside 0..255")
        if not 0 <= self.adapt_step <= VTH_MAX:
            raise ModelError(f"{where}: adapt_step outside 0..{VTH_MAX}")


@dataclass
class Layer:
    """One layer of LIF neurons with its incoming (and, if recurrent, its own) weights."""

    weights: Weights
    neurons: Neurons = field(default_factory=Neurons)
    recurrent: Optional[Weights] = None
    name: str = ""

    @property
    def size(self) -> int:
        return self.weights.fan_out

    @property
    def kind(self) -> str:
        return "recurrent" if self.recurrent is not None else "dense"


@dataclass
class EncoderSpec:
    """How raw data became the model's input (kept for on-device encoding and round trips)."""

    kind: str = "none"
    channels: int = 0
    thresholds: Sequence[int] = ()
    params_json: str = ""


@dataclass
class Model:
    """A quantized spiking network: the only thing deployed to a device or back-end.

    Attributes:
        input_size: number of input channels (neurons) of the first layer.
        timesteps: steps per inference.
        layers: the layers, first to last; the last is the output layer.
        input_kind: ``"spikes"`` (binary events) or ``"values"`` (direct encoding).
        input_max_abs: bound on |value| for direct encoding (1 for spikes).
        decoding: how the output layer becomes a prediction.
        dt_us: duration of one step in streaming mode, in microseconds.
        stream_window: streaming, steps per decision (0: ``timesteps``).
        stream_hop: streaming, steps between decisions (0: ``stream_window``: per-window
            decisions from reset; smaller: sliding decisions; docs/streaming.md).
    """

    input_size: int
    timesteps: int
    layers: list[Layer]
    input_kind: InputKind = "spikes"
    input_max_abs: int = 1
    decoding: Decoding = "spike_count"
    name: str = "model"
    dt_us: int = 1000
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    labels: list[str] = field(default_factory=list)
    stream_window: int = 0
    stream_hop: int = 0

    @property
    def output_size(self) -> int:
        return self.layers[-1].size

    @property
    def neuron_count(self) -> int:
        return sum(layer.size for layer in self.layers)

    def input_bound(self) -> int:
        return 1 if self.input_kind == "spikes" else int(self.input_max_abs)

    def validate(self) -> "Model":
        """Check every size, range and bound; raise :class:`ModelError` with the culprit."""
        if self.input_size < 1:
            raise ModelError("input_size must be at least 1")
        if not 1 <= self.timesteps <= 65535:
            raise ModelError(f"timesteps={self.timesteps} outside 1..65535")
        if not self.layers:
            raise ModelError("a model needs at least one layer")
        if not (0 <= self.stream_window <= 65535 and 0 <= self.stream_hop <= 65535):
            raise ModelError("stream_window and stream_hop must be in 0..65535")
        if self.input_kind not in ("spikes", "values"):
            raise ModelError(f"unknown input kind {self.input_kind!r}")
        if self.input_kind == "values" and not 1 <= self.input_max_abs <= 32767:
            raise ModelError("input_max_abs must be in 1..32767 for direct encoding")
        if self.decoding not in ("spike_count", "membrane_last", "membrane_sum", "first_spike"):
            raise ModelError(f"unknown decoding {self.decoding!r}")
        fan_in = self.input_size
        for i, layer in enumerate(self.layers):
            where = f"layer {i}"
            layer.weights.validate(where)
            if layer.weights.fan_in != fan_in:
                raise ModelError(f"{where}: fan_in {layer.weights.fan_in} != previous size {fan_in}")
            layer.neurons.validate(where, layer.size)
            bound = 1 if (i > 0 or self.input_kind == "spikes") else int(self.input_max_abs)
            worst = layer.weights.worst_case_input(bound)
            if layer.recurrent is not None:
                layer.recurrent.validate(f"{where} recurrent")
                if layer.recurrent.values.shape != (layer.size, layer.size):
                    raise ModelError(f"{where}: recurrent weights must be {layer.size}x{layer.size}")
                worst += layer.recurrent.worst_case_input(1)
            if worst >= A_IN_LIMIT:
                raise ModelError(
                    f"{where}: worst-case synaptic input {worst} reaches 2^17; lower the weight "
                    "exponent (exp) so that a_in << 6 stays inside the 24-bit current"
                )
            fan_in = layer.size
        return self

    def weight_bytes(self) -> int:
        """Bytes of weight data in the blob, in bytes."""
        total = 0
        for layer in self.layers:
            total += layer.weights.storage_bytes()
            if layer.recurrent is not None:
                total += layer.recurrent.storage_bytes()
        return total

    def state_bytes(self) -> int:
        """Bytes of neuron state the C core needs, laid out as ``es_engine_arena_bytes``.

        Per layer, in this order: u and v (int32), the adaptive threshold (int32, if used),
        refractory counters (uint8, if used), this step's spike list (uint16), the previous
        step's spike list (uint16, recurrent layers), the non-zero count of each weight row
        (uint16 per fan-in row, then per recurrent row); then one int64 score per output
        neuron, 8-byte aligned; then, for direct (values) input, the first layer's synaptic input
        of a static input (int32 per neuron, rounded up to 4 neurons), for spike input one step's
        input indices (uint16 per input). Every block is padded to 4 bytes.
        """

        def pad(nbytes: int) -> int:
            return (nbytes + 3) & ~3

        total = 0
        for layer in self.layers:
            n = layer.size
            total += 8 * n
            if layer.neurons.adapt_step:
                total += 4 * n
            if layer.neurons.refractory:
                total += pad(n)
            total += pad(2 * n)
            total += pad(2 * layer.weights.fan_in)
            if layer.recurrent is not None:
                total += pad(2 * n) + pad(2 * n)
        total = ((total + 7) & ~7) + 8 * self.output_size
        if self.input_kind == "values":
            total += 4 * pad(self.layers[0].size)
        else:
            total += pad(2 * self.input_size)
        return total

    def fp32_weight_bytes(self) -> int:
        """What the same weights take as float32, in bytes (the usual baseline)."""
        total = 0
        for layer in self.layers:
            total += 4 * layer.weights.values.size
            if layer.recurrent is not None:
                total += 4 * layer.recurrent.values.size
        return total
