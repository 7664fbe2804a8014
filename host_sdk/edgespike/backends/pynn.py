"""PyNN back-end: the integer CUBA-LIF network as PyNN populations, run on NEST (or mapped by
sPyNNaker for SpiNNaker 1).

The mapping (written down in docs/backends.md, "PyNN / SpiNNaker"):

* each layer becomes one ``IF_curr_exp`` population (NEST: ``iaf_psc_exp``, exact integration);
* units: 1 mV of PyNN membrane voltage is 64 integer units of ``v`` (so the threshold
  ``vth << 6`` is ``vth`` mV), ``cm = 1 nF``;
* ``du -> tau_syn = -dt / ln(1 - du/4096)``, ``dv -> tau_m = -dt / ln(1 - dv/4096)``
  (``du = 4096`` / ``dv = 4096``, "no memory", become a time constant of ``dt/24``;
  ``dv = 0``, "no leak", becomes ``1e8`` ms);
* a synapse of integer weight ``W`` (shifted by the layer's ``exp``) adds ``A = W * 2^exp``
  mV to ``u``; on ``iaf_psc_exp`` it becomes a current jump of ``w = A / P21`` nA, where
  ``P21 = integral_0^dt exp(-y/tau_syn) exp(-(dt-y)/tau_m) dy / cm`` is NEST's propagator from
  current to voltage. With that gain, NEST's voltage sampled one step after a spike's arrival
  follows the integer recursion ``v[k] = r_v v[k-1] + u[k]`` exactly, up to floating point and
  the integer rounding (``trunc0``) that PyNN does not do;
* the bias ``b = bias_mant << bias_exp`` (integer units per step) becomes a step current of
  ``b / 64 / P20`` nA, ``P20 = tau_m (1 - exp(-dt/tau_m)) / cm``, switched on while a sample runs;
* ``v_thresh = (vth << 6 + 0.5) / 64`` mV (ours spikes on ``v > theta``, NEST on
  ``V >= V_th``; half an integer unit in between), ``v_reset = v_rest = 0``,
  ``tau_refrac = refractory * dt`` (NEST holds ``V`` for exactly that many steps, as ours);
* positive weights go to an excitatory projection and negative ones to an inhibitory
  projection (``FromListConnector``), one pair per layer; ternary weights the same way
  (``+a_pos`` excitatory, ``-a_neg`` inhibitory); delay ``dt``.

Refused (:class:`~edgespike.errors.ModelError`): reset by subtraction (``IF_curr_exp`` resets
to ``v_reset``), the adaptive threshold, recurrent layers (NEST's current-based neuron sees a
spike one step after it arrives, so a 1-step recurrent loop cannot be built with a minimum
delay of one step). Not modelled: the 24-bit wrap of ``u`` and clip of ``v``, the floor of a
negative weight exponent (NEST adds the fractional weights), ``trunc0`` of the decays.

Timing: NEST integrates a spike that arrives at ``tau`` into the voltage at ``tau + dt``, and a
projection has a delay of ``dt``, so layer ``l`` runs ``2 l`` steps behind layer 0; the runner
undoes that shift, so the returned rasters line up with the integer reference step for step.

Batches: NEST has no full reset, so the samples of a batch are presented one after another in
one simulation. Between two samples every neuron is silenced (threshold out of reach), the
synaptic currents are drained (``tau_syn`` set to ``dt/64`` for a few steps) and ``v`` is set
to 0: each sample starts from the same state as a fresh network.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np

from edgespike.errors import EdgeSpikeError, ModelError, ToolMissing
from edgespike.model.quantized import Layer, Model, Neurons, _per_neuron
from edgespike.sim.reference import (RunOutput, check_input, clip24, counters_from_spikes, decay,
                                     shift, wrap24)

log = logging.getLogger(__name__)

#: Integer units of v per mV of PyNN voltage (v_mV = v_int / 64: the threshold is vth mV).
UNITS_PER_MV = 64
#: Time constant that stands for "no memory" (decay 4096), as a fraction of dt.
_NO_MEMORY_FRACTION = 1.0 / 24.0
#: Time constant that stands for "no leak" (decay 0), in ms.
_NO_LEAK_MS = 1e8
#: Steps of silence between two samples of a batch (plus the largest refractory period).
_FLUSH_STEPS = 3
#: Threshold used to silence neurons between samples, in mV.
_SILENT_THRESHOLD_MV = 1e12

SUPPORTED_SIMULATORS = ("nest",)


def decay_to_tau(decay: int, dt_ms: float) -> float:
    """Time constant (ms) whose exponential decay over ``dt_ms`` is ``1 - decay/4096``.

    ``decay = 0`` (no leak) maps to 1e8 ms and ``decay = 4096`` (no memory) to ``dt/24``.
    """
    if not 0 <= decay <= 4096:
        raise ModelError(f"decay {decay} outside 0..4096")
    if decay == 0:
        return _NO_LEAK_MS
    if decay == 4096:
        return dt_ms * _NO_MEMORY_FRACTION
    return -dt_ms / math.log(1.0 - decay / 4096.0)


def tau_to_decay(tau_ms: float, dt_ms: float) -> int:
    """Inverse of :func:`decay_to_tau`, rounded to the nearest integer decay (0..4096)."""
    if tau_ms <= 0:
        return 4096
    return int(min(4096, max(0, round(4096.0 * (1.0 - math.exp(-dt_ms / tau_ms))))))


def propagator_p21(tau_syn: float, tau_m: float, dt: float, cm: float = 1.0) -> float:
    """NEST's current-to-voltage propagator over one step: the mV one nA of current adds.

    ``P21 = (1/cm) * integral_0^dt exp(-y/tau_syn) * exp(-(dt-y)/tau_m) dy``.
    """
    a = 1.0 / tau_syn - 1.0 / tau_m
    if abs(a) * dt < 1e-9:
        return dt * math.exp(-dt / tau_m) / cm
    return math.exp(-dt / tau_m) * (-math.expm1(-a * dt)) / a / cm


def propagator_p20(tau_m: float, dt: float, cm: float = 1.0) -> float:
    """NEST's constant-current-to-voltage propagator over one step (mV per nA)."""
    return tau_m * -math.expm1(-dt / tau_m) / cm


@dataclass
class CellParameters:
    """``IF_curr_exp`` parameters of one layer (PyNN units: ms, nF, mV, nA).

    Attributes:
        weight_gain: nA of synaptic weight per mV of integer input ``A = W * 2^exp``.
        bias_current: per neuron, the step current (nA) that adds the integer bias each step.
    """

    tau_m: float
    tau_syn: float
    cm: float
    v_thresh: np.ndarray
    v_reset: float
    v_rest: float
    tau_refrac: float
    weight_gain: float
    bias_current: np.ndarray

    def pynn(self) -> dict[str, Any]:
        """Keyword arguments for ``IF_curr_exp`` (bias handled as a separate current source)."""
        return {
            "cm": self.cm, "tau_m": self.tau_m, "tau_syn_E": self.tau_syn,
            "tau_syn_I": self.tau_syn, "v_rest": self.v_rest, "v_reset": self.v_reset,
            "tau_refrac": self.tau_refrac, "i_offset": 0.0,
        }


def check_supported(model: Model) -> None:
    """Raise :class:`ModelError` if the model uses a feature ``IF_curr_exp`` cannot express."""
    model.validate()
    for i, layer in enumerate(model.layers):
        n = layer.neurons
        if n.reset != "zero":
            raise ModelError(f"layer {i}: reset by subtraction is not supported by IF_curr_exp "
                             "(it resets to v_reset); export with reset='zero' for PyNN")
        if n.adapt_step:
            raise ModelError(f"layer {i}: the adaptive threshold has no IF_curr_exp equivalent; "
                             "use adapt_step=0 for PyNN")
        if layer.recurrent is not None:
            raise ModelError(f"layer {i}: recurrent layers are not supported by the PyNN mapping "
                             "(a one-step recurrent loop needs a zero delay on iaf_psc_exp)")


def cell_parameters(neurons: Neurons, size: int, dt_ms: float) -> CellParameters:
    """The ``IF_curr_exp`` parameters that reproduce one layer's integer neurons."""
    tau_syn = decay_to_tau(neurons.du, dt_ms)
    tau_m = decay_to_tau(neurons.dv, dt_ms)
    if abs(tau_syn - tau_m) < 1e-9 * tau_m:
        tau_syn *= 1.0 + 1e-6  # NEST's propagators are singular at equal time constants
    cm = 1.0
    vth = _per_neuron(neurons.vth, size, "vth").astype(np.float64)
    bias = (_per_neuron(neurons.bias_mant, size, "bias_mant") << neurons.bias_exp).astype(np.float64)
    return CellParameters(
        tau_m=tau_m, tau_syn=tau_syn, cm=cm,
        v_thresh=(vth * UNITS_PER_MV + 0.5) / UNITS_PER_MV,
        v_reset=0.0, v_rest=0.0, tau_refrac=float(neurons.refractory) * dt_ms,
        weight_gain=1.0 / propagator_p21(tau_syn, tau_m, dt_ms, cm),
        bias_current=bias / UNITS_PER_MV / propagator_p20(tau_m, dt_ms, cm),
    )


def synapse_lists(layer: Layer, gain: float, delay_ms: float,
                  pre_rows: Optional[np.ndarray] = None,
                  row_scale: Optional[np.ndarray] = None,
                  inhibitory_sign: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """Excitatory and inhibitory ``FromListConnector`` lists ``(pre, post, weight nA, delay ms)``.

    Inhibitory weights are negative with ``inhibitory_sign=-1`` (PyNN's convention for
    current-based synapses, which NEST needs) and magnitudes with ``+1`` (sPyNNaker's).
    ``pre_rows`` maps each presynaptic source to a weight row and ``row_scale`` multiplies it
    (used to feed direct-encoded values as bit planes); by default source ``j`` is row ``j``.
    """
    w = layer.weights.integer_matrix().astype(np.float64) * (2.0 ** layer.weights.exp) * gain
    if pre_rows is None:
        pre_rows = np.arange(w.shape[0])
    if row_scale is None:
        row_scale = np.ones(len(pre_rows))
    full = w[pre_rows] * row_scale[:, None]
    out = []
    for mask, sign in ((full > 0, 1.0), (full < 0, inhibitory_sign)):
        pre, post = np.nonzero(mask)
        out.append(np.column_stack([pre, post, sign * np.abs(full[pre, post]),
                                    np.full(len(pre), delay_ms)]).astype(np.float64))
    return out[0], out[1]


@dataclass
class InputPlan:
    """How the model's input becomes spike sources.

    For spike input there is one source per input channel. For direct encoding (``values``)
    each channel ``j`` becomes ``2 * bits`` sources: one per sign and bit of ``|x|``, whose
    synapses carry ``+-2^b`` times row ``j`` of the weights.
    """

    n_sources: int
    rows: np.ndarray
    scale: np.ndarray
    bits: int = 0

    @classmethod
    def for_model(cls, model: Model) -> "InputPlan":
        if model.input_kind == "spikes":
            n = model.input_size
            return cls(n_sources=n, rows=np.arange(n), scale=np.ones(n))
        bits = int(model.input_max_abs).bit_length()
        rows, scale = [], []
        for j in range(model.input_size):
            for sign in (1, -1):
                for b in range(bits):
                    rows.append(j)
                    scale.append(sign * float(1 << b))
        return cls(n_sources=len(rows), rows=np.array(rows), scale=np.array(scale), bits=bits)

    def source_raster(self, x: np.ndarray) -> np.ndarray:
        """``timesteps x n_sources`` 0/1 raster for one input ``x`` (timesteps x input_size)."""
        if self.bits == 0:
            return (x != 0).astype(np.uint8)
        steps, n_in = x.shape
        out = np.zeros((steps, n_in, 2, self.bits), dtype=np.uint8)
        mag = np.abs(x)
        for b in range(self.bits):
            bit = (mag >> b) & 1
            out[:, :, 0, b] = bit * (x > 0)
            out[:, :, 1, b] = bit * (x < 0)
        return out.reshape(steps, -1)


@dataclass
class Timeline:
    """Where each sample and layer sits on the simulator's time axis (all in steps of dt).

    Sample ``b`` occupies ``[b * period, (b + 1) * period)``. Its input step ``k`` is emitted
    by the sources at ``start + 2 + k``; layer ``l`` spikes for integer step ``k`` are stamped
    ``start + 4 + 2 l + k``.
    """

    timesteps: int
    n_layers: int
    flush_steps: int

    @property
    def active(self) -> int:
        """Steps from a sample's start to the end of its last layer's last step."""
        return self.timesteps + 2 * self.n_layers + 3

    @property
    def period(self) -> int:
        return self.active + self.flush_steps

    def source_step(self, b: int, k: int | np.ndarray) -> Any:
        return b * self.period + 2 + k

    def layer_offset(self, layer: int) -> int:
        """Steps from a sample's start to integer step 0 of ``layer`` (its spike stamp)."""
        return 4 + 2 * layer

    def bias_on(self, layer: int) -> int:
        """Step (from the sample's start) where the layer's bias current starts to count."""
        return 3 + 2 * layer


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence NEST's banner and PyNN's extension build chatter (C-level stdout/stderr)."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(io.StringIO()):
        try:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _import_simulator(simulator: str) -> Any:
    if simulator not in SUPPORTED_SIMULATORS:
        raise ToolMissing(f"unknown PyNN simulator {simulator!r}; supported here: "
                          f"{', '.join(SUPPORTED_SIMULATORS)} (Brian2 2.9 fails with numpy 2)")
    try:
        with _quiet():
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pyNN.nest as sim  # noqa: PLC0415 (optional, heavy)
    except ImportError as exc:
        raise ToolMissing(f"PyNN with NEST is not installed ({exc}); "
                          "install it with: pip install pyNN==0.13.0 nest-simulator==3.10.0") from exc
    return sim


def available(simulator: str = "nest") -> bool:
    """True if PyNN and the simulator import here."""
    try:
        _import_simulator(simulator)
    except ToolMissing:
        return False
    return True


@dataclass
class PynnNetwork:
    """What :func:`build` created: the populations and projections, by layer."""

    sources: Any
    populations: list[Any]
    projections: list[tuple[Any, Any]]
    params: list[CellParameters]
    timeline: Timeline
    bias_sources: list[Any] = field(default_factory=list)


def build(sim: Any, model: Model, source_times_ms: list[np.ndarray], dt_ms: float,
          timeline: Timeline, n_samples: int, inhibitory_sign: float = -1.0) -> PynnNetwork:
    """Create the populations and projections of ``model`` on an already set-up PyNN ``sim``.

    ``source_times_ms`` holds one array of spike times (ms) per input source. This function is
    the simulator-independent part of the mapping; sPyNNaker uses it as NEST does.
    """
    plan = InputPlan.for_model(model)
    if hasattr(sim, "Sequence"):
        seqs = [sim.Sequence(np.asarray(t, dtype=np.float64)) for t in source_times_ms]
    else:  # sPyNNaker takes plain lists
        seqs = [[float(v) for v in t] for t in source_times_ms]
    sources = sim.Population(plan.n_sources, sim.SpikeSourceArray(spike_times=seqs), label="input")
    pops, projs, params, biases = [], [], [], []
    pre = sources
    for li, layer in enumerate(model.layers):
        p = cell_parameters(layer.neurons, layer.size, dt_ms)
        cells = sim.IF_curr_exp(v_thresh=p.v_thresh, **p.pynn())
        pop = sim.Population(layer.size, cells, initial_values={"v": 0.0},
                             label=layer.name or f"layer{li}")
        if li == 0:
            exc, inh = synapse_lists(layer, p.weight_gain, dt_ms, plan.rows, plan.scale,
                                     inhibitory_sign)
        else:
            exc, inh = synapse_lists(layer, p.weight_gain, dt_ms, inhibitory_sign=inhibitory_sign)
        pair = []
        for conn, receptor in ((exc, "excitatory"), (inh, "inhibitory")):
            if len(conn):
                pair.append(sim.Projection(
                    pre, pop, sim.FromListConnector(conn, column_names=["weight", "delay"]),
                    synapse_type=sim.StaticSynapse(), receptor_type=receptor,
                    label=f"{pop.label}-{receptor}"))
            else:
                pair.append(None)
        if np.any(p.bias_current != 0):
            biases.append(_bias_sources(sim, pop, p.bias_current, dt_ms, timeline, li, n_samples))
        pops.append(pop)
        projs.append(tuple(pair))
        params.append(p)
        pre = pop
    return PynnNetwork(sources, pops, projs, params, timeline, biases)


def _bias_sources(sim: Any, pop: Any, current: np.ndarray, dt_ms: float, timeline: Timeline,
                  layer: int, n_samples: int) -> list[Any]:
    """Step currents that hold the bias on while each sample's layer runs, off in between."""
    made = []
    for value in np.unique(current):
        if value == 0:
            continue
        idx = np.nonzero(current == value)[0]
        times, amps = [], []
        for b in range(n_samples):
            start = b * timeline.period
            times += [(start + timeline.bias_on(layer)) * dt_ms, (start + timeline.active) * dt_ms]
            amps += [float(value), 0.0]
        src = sim.StepCurrentSource(times=times, amplitudes=amps)
        src.inject_into(pop[idx.tolist()])
        made.append(src)
    return made


class PynnInexact(ModelError):
    """The float simulation would not reproduce the integer reference for these inputs.

    Raised by :func:`run_batch` before anything is built (see :func:`check_exact` for when);
    ``.tolerance`` holds the :class:`PynnTolerance` that says where and by how much.
    """

    def __init__(self, message: str, tolerance: "PynnTolerance") -> None:
        super().__init__(message)
        self.tolerance = tolerance


class PynnToleranceWarning(UserWarning):
    """The run goes ahead, but its results differ from the integer reference by the stated
    tolerance (spikes or membrane scores from the rounding PyNN does not model, or a wrap or
    clip accepted with ``inexact="warn"``)."""


#: A float threshold decision closer than this (integer units of v, plus a relative 1e-9 of
#: |v|) is a "close call": NEST's own floating point could decide it either way.
CLOSE_CALL_UNITS = 1e-3


@dataclass
class PynnTolerance:
    """How a PyNN (float) run of a model on given inputs will differ from the integer reference.

    Computed before the run by :func:`tolerance` from two passes over the same inputs: the
    integer recursion of docs/SEMANTICS.md (with every wrap of ``u`` and clip of ``v``
    counted), and the float recursion NEST integrates with this module's mapping (the same
    time constants, gains and threshold; no ``trunc0``, no floor of a negative weight exponent,
    no wrap, no clip). All counts are over every inference, layer, step and neuron.

    Attributes:
        inferences: inputs analysed.
        u_wraps: times the integer ``u`` wraps (the float one does not).
        v_clips: times the integer ``v`` saturates at +-(2^23 - 1).
        spike_mismatches: (step, neuron) raster entries where the float run differs, any layer.
        close_calls: float threshold decisions within :data:`CLOSE_CALL_UNITS`.
        max_count_diff: largest difference of one neuron's spike count in one inference.
        max_score_diff: largest |score difference| (NEST's ``v`` is rounded to integer units;
            a float ``v`` within rounding of a half unit counts one unit more per step).
        prediction_mismatches: inferences whose predicted class differs.
        first: where the first wrap, clip, mismatch or close call happens ("" if none).
        float_spikes: per layer, the float pass's rasters (batch x steps x size): what NEST
            is expected to produce.
        float_scores: the float pass's scores (batch x outputs).
        float_v: the float pass's output-layer ``v`` after each step (batch x steps x
            outputs, integer units, unrounded).
    """

    inferences: int = 0
    u_wraps: int = 0
    v_clips: int = 0
    spike_mismatches: int = 0
    close_calls: int = 0
    max_count_diff: int = 0
    max_score_diff: int = 0
    prediction_mismatches: int = 0
    first: str = ""
    float_spikes: list[np.ndarray] = field(default_factory=list, repr=False)
    float_scores: Optional[np.ndarray] = field(default=None, repr=False)
    float_v: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def spikes_exact(self) -> bool:
        """True when every raster and prediction will equal the reference's."""
        return not (self.u_wraps or self.v_clips or self.spike_mismatches or self.close_calls
                    or self.prediction_mismatches)

    @property
    def exact(self) -> bool:
        """True when spikes, predictions and scores will equal the reference's."""
        return self.spikes_exact and self.max_score_diff == 0

    def summary(self) -> str:
        """One line: the counts that are not zero, and where the first problem is."""
        parts = [f"{n} {label}" for n, label in (
            (self.u_wraps, "wraps of the 24-bit current u"),
            (self.v_clips, "clips of the 24-bit voltage v"),
            (self.spike_mismatches, "differing spikes"),
            (self.close_calls, "threshold decisions within float rounding"),
            (self.prediction_mismatches, "differing predictions")) if n]
        parts.append(f"spike counts differ by up to {self.max_count_diff} per neuron, "
                     f"scores by up to {self.max_score_diff}")
        where = f"; first: {self.first}" if self.first else ""
        return f"over {self.inferences} inference(s): " + ", ".join(parts) + where


def tolerance(model: Model, inputs: np.ndarray, dt_ms: float = 1.0) -> PynnTolerance:
    """Predict, before any run, how NEST's results will differ from the integer reference.

    See :class:`PynnTolerance`. The float pass follows this module's mapping step for step
    (the decay factors are NEST's ``exp(-dt/tau)`` of the mapped time constants, the synaptic
    input is ``W * 2^exp`` unfloored, spikes on ``v >= vth * 64 + 0.5``, the same refractory
    hold), so its rasters and membrane values are what NEST computes, up to NEST's floating
    point; decisions closer than that are counted as close calls.
    """
    check_supported(model)
    x_all = check_input(model, inputs)
    if x_all.ndim == 2:
        x_all = x_all[None]
    batch, steps = x_all.shape[0], model.timesteps
    tol = PynnTolerance(inferences=batch)
    first: list[tuple[int, int, int, int, str]] = []
    causes = ("wraps", "saturates", "within rounding", "spikes differently")

    def note(layer: int, t: int, mask: np.ndarray, what: str) -> None:
        if mask.any():
            b, k = np.argwhere(mask)[0]
            rank = next(i for i, c in enumerate(causes) if c in what)  # the cause first
            first.append((t, layer, rank, int(b), f"inference {b}, layer {layer}, step {t}, "
                                                  f"neuron {k}: {what}"))

    x_int = x_all.astype(np.int64)
    x_flt = x_all.astype(np.float64)
    state = []
    for layer in model.layers:
        n = layer.neurons
        p = cell_parameters(n, layer.size, dt_ms)
        zeros = np.zeros((batch, layer.size))
        state.append({
            "w": layer.weights.integer_matrix(), "exp": layer.weights.exp,
            "r_u": math.exp(-dt_ms / p.tau_syn), "r_v": math.exp(-dt_ms / p.tau_m),
            "theta": _per_neuron(n.vth, layer.size, "vth") << 6,
            "bias": _per_neuron(n.bias_mant, layer.size, "bias_mant") << n.bias_exp,
            "u": zeros.astype(np.int64), "v": zeros.astype(np.int64),
            "ref": zeros.astype(np.int64), "uf": zeros.copy(), "vf": zeros.copy(),
            "reff": zeros.astype(np.int64),
            "r_int": np.zeros((batch, steps, layer.size), np.uint8),
            "r_flt": np.zeros((batch, steps, layer.size), np.uint8),
            "v_int": np.zeros((batch, steps, layer.size), np.int64),
            "v_flt": np.zeros((batch, steps, layer.size)),
        })
    for t in range(steps):
        xi, xf = x_int[:, t, :], x_flt[:, t, :]
        for li, (layer, st) in enumerate(zip(model.layers, state)):
            nrn = layer.neurons
            # integer: docs/SEMANTICS.md, wraps and clips counted
            pre_u = decay(st["u"], nrn.du) + (shift(xi @ st["w"], st["exp"]) << 6)
            st["u"] = wrap24(pre_u)
            wrapped = st["u"] != pre_u
            tol.u_wraps += int(wrapped.sum())
            note(li, t, wrapped, "the integer current u wraps at 24 bits")
            active = st["ref"] == 0
            pre_v = decay(st["v"], nrn.dv) + st["u"] + st["bias"]
            v_new = clip24(pre_v)
            clipped = active & (v_new != pre_v)
            tol.v_clips += int(clipped.sum())
            note(li, t, clipped, "the integer voltage v saturates at 24 bits")
            spike = active & (v_new > st["theta"])
            st["v"] = np.where(spike, 0, np.where(active, v_new, st["v"]))
            st["ref"] = np.where(active, np.where(spike, nrn.refractory, 0), st["ref"] - 1)
            st["r_int"][:, t] = spike
            st["v_int"][:, t] = st["v"]
            # float: what NEST integrates with this mapping
            st["uf"] = st["r_u"] * st["uf"] + (xf @ st["w"]) * (2.0 ** st["exp"]) * 64.0
            active_f = st["reff"] == 0
            vf_new = st["r_v"] * st["vf"] + st["uf"] + st["bias"]
            level = st["theta"] + 0.5
            close = active_f & (np.abs(vf_new - level)
                                <= CLOSE_CALL_UNITS + 1e-9 * np.abs(vf_new))
            tol.close_calls += int(close.sum())
            note(li, t, close, "the float voltage is within rounding of the threshold")
            spike_f = active_f & (vf_new >= level)
            st["vf"] = np.where(spike_f, 0.0, np.where(active_f, vf_new, 0.0))
            st["reff"] = np.where(active_f, np.where(spike_f, nrn.refractory, 0),
                                  st["reff"] - 1)
            st["r_flt"][:, t] = spike_f
            st["v_flt"][:, t] = st["vf"]
            differ = spike != spike_f
            note(li, t, differ, "the float run spikes differently")
            xi, xf = spike.astype(np.int64), spike_f.astype(np.float64)
    for st in state:
        tol.spike_mismatches += int((st["r_int"] != st["r_flt"]).sum())
        counts = np.abs(st["r_int"].sum(axis=1).astype(np.int64)
                        - st["r_flt"].sum(axis=1).astype(np.int64))
        tol.max_count_diff = max(tol.max_count_diff, int(counts.max(initial=0)))
    last = state[-1]
    s_int = _decode(model, last["r_int"], last["v_int"])
    s_flt = _decode(model, last["r_flt"], np.rint(last["v_flt"]).astype(np.int64))
    # NEST's v is rounded to integer units for the membrane scores: a float value within its
    # rounding of a half unit may round either way, one unit per such step
    vf = last["v_flt"]
    halfway = np.abs(vf - np.floor(vf) - 0.5) <= CLOSE_CALL_UNITS + 1e-9 * np.abs(vf)
    slack = np.zeros_like(s_int)
    if model.decoding == "membrane_last":
        slack = halfway[:, -1].astype(np.int64)
    elif model.decoding == "membrane_sum":
        slack = halfway.sum(axis=1).astype(np.int64)
    tol.max_score_diff = int((np.abs(s_int - s_flt) + slack).max(initial=0))
    tol.float_spikes = [st["r_flt"] for st in state]
    tol.float_scores = s_flt
    tol.float_v = last["v_flt"]
    pred_differ = np.argmax(s_int, axis=1) != np.argmax(s_flt, axis=1)
    tol.prediction_mismatches = int(pred_differ.sum())
    if first:
        tol.first = min(first)[4]
    elif pred_differ.any():
        tol.first = f"inference {int(np.argmax(pred_differ))}: the predicted class differs"
    return tol


def _decode(model: Model, raster: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Scores (batch x output) from a raster and per-step ``v`` (batch x steps x output)."""
    steps = model.timesteps
    if model.decoding == "spike_count":
        return raster.sum(axis=1).astype(np.int64)
    if model.decoding == "membrane_last":
        return v[:, -1].astype(np.int64)
    if model.decoding == "membrane_sum":
        return v.sum(axis=1).astype(np.int64)
    fired = raster.any(axis=1)
    return np.where(fired, steps - np.argmax(raster, axis=1), 0).astype(np.int64)


#: Values of ``inexact`` (see :func:`check_exact`).
INEXACT_POLICIES = ("auto", "raise", "warn")


def check_exact(model: Model, inputs: np.ndarray, *, inexact: str = "auto",
                dt_ms: float = 1.0) -> PynnTolerance:
    """Apply the policy of :func:`run_batch` (before a run) and return the tolerance.

    Outside PyNN's region (the integer ``u`` wraps or ``v`` saturates, which the float
    neurons do not model) the run is refused with :class:`PynnInexact`. Inside it, spikes that
    the rounding flips (``trunc0`` of the decays, the floor of a negative weight exponent, or a
    decision within NEST's floating point) warn with the predicted tolerance
    (:class:`PynnToleranceWarning`), and so do membrane scores off by rounding.

    Args:
        inexact: ``"auto"`` as above; ``"raise"`` also refuses any differing spike or
            prediction; ``"warn"`` only warns, even about wraps and clips.
    """
    if inexact not in INEXACT_POLICIES:
        raise EdgeSpikeError(f"inexact must be one of {', '.join(INEXACT_POLICIES)}, "
                             f"got {inexact!r}")
    tol = tolerance(model, inputs, dt_ms)
    outside = bool(tol.u_wraps or tol.v_clips)
    if not tol.spikes_exact:
        message = ("PyNN's float neurons would not reproduce the integer reference: "
                   + tol.summary() + ". Run it on the reference, the C core, a device or Lava "
                   "for exact results. To stay inside PyNN's exact region keep |u| and |v| "
                   "below 2^23 (smaller weights, exponent or inputs); du = 4096, dv = 0 and "
                   "weight exponents >= 0 leave no rounding to differ")
        if inexact == "raise" or (inexact == "auto" and outside):
            raise PynnInexact(message + "; or pass inexact='warn' to run anyway", tol)
        warnings.warn(PynnToleranceWarning(message), stacklevel=3)
    elif tol.max_score_diff:
        warnings.warn(PynnToleranceWarning(
            f"PyNN reproduces every spike and prediction, but its {model.decoding} scores differ "
            f"from the integer reference by up to {tol.max_score_diff} integer units of v "
            "(the trunc0 rounding of the decays and the floor of negative weight exponents, "
            "which PyNN's float neurons do not do)"), stacklevel=3)
    return tol


def run_batch(model: Model, inputs: np.ndarray, *, simulator: str = "nest",
              dt_ms: float = 1.0, inexact: str = "auto") -> list[RunOutput]:
    """Run a batch ``(n, timesteps, input_size)`` (or one input) on a PyNN simulator.

    Before anything is built, :func:`check_exact` predicts how the float simulation will differ
    from the integer reference on these inputs: a wrap of ``u`` or clip of ``v`` raises
    :class:`PynnInexact`; spikes or scores that rounding changes warn with the tolerance
    (``inexact="raise"`` refuses those too, ``"warn"`` only warns).

    Returns one :class:`~edgespike.sim.reference.RunOutput` per input: prediction, scores
    (by the model's decoding), per-layer spike rasters aligned to the integer steps, and the
    counters derived from them (SynOps counted as the reference does). ``u``/``v`` are left
    empty, except that membrane decodings read ``v`` of the output layer (in integer units).
    ``cycles`` is 0 (a simulator has no cycle count).
    """
    check_supported(model)
    x_all = check_input(model, inputs)
    if x_all.ndim == 2:
        x_all = x_all[None]
    n, steps = x_all.shape[0], model.timesteps
    if n == 0:
        return []
    check_exact(model, x_all, inexact=inexact, dt_ms=dt_ms)
    sim = _import_simulator(simulator)
    refractory = max(layer.neurons.refractory for layer in model.layers)
    timeline = Timeline(steps, len(model.layers), _FLUSH_STEPS + refractory)
    plan = InputPlan.for_model(model)

    per_source: list[list[np.ndarray]] = [[] for _ in range(plan.n_sources)]
    for b in range(n):
        raster = plan.source_raster(x_all[b])
        for s in range(plan.n_sources):
            ks = np.nonzero(raster[:, s])[0]
            if ks.size:
                per_source[s].append(timeline.source_step(b, ks) * dt_ms)
    times = [np.concatenate(t) if t else np.zeros(0) for t in per_source]

    membrane = model.decoding in ("membrane_last", "membrane_sum")
    with _quiet():
        sim.setup(timestep=dt_ms, min_delay=dt_ms, max_delay=dt_ms,
                  spike_precision="on_grid", verbosity="error")
        try:
            net = build(sim, model, times, dt_ms, timeline, n)
            for pop in net.populations:
                pop.record("spikes")
            if membrane:
                net.populations[-1].record("v", sampling_interval=dt_ms)
            for b in range(n):
                end = b * timeline.period
                sim.run_until((end + timeline.active) * dt_ms)
                _silence(net, dt_ms, on=True)
                sim.run_until((end + timeline.period) * dt_ms)
                _silence(net, dt_ms, on=False)
            spikes = [_spike_steps(pop, dt_ms) for pop in net.populations]
            vtrace = _v_trace(net.populations[-1], dt_ms) if membrane else None
        finally:
            sim.end()
    return [_output(model, b, timeline, spikes, vtrace, x_all[b]) for b in range(n)]


def _silence(net: PynnNetwork, dt_ms: float, on: bool) -> None:
    """Between samples: out-of-reach thresholds and drained currents (on), then reset (off)."""
    for pop, p in zip(net.populations, net.params):
        if on:
            fast = dt_ms / 64.0
            pop.set(v_thresh=_SILENT_THRESHOLD_MV, tau_syn_E=fast, tau_syn_I=fast)
        else:
            pop.set(v_thresh=p.v_thresh, tau_syn_E=p.tau_syn, tau_syn_I=p.tau_syn)
            pop.initialize(v=0.0)


def _spike_steps(pop: Any, dt_ms: float) -> list[np.ndarray]:
    """Per neuron, the integer time steps (stamp / dt) of its spikes."""
    seg = pop.get_data("spikes", clear=False).segments[-1]
    by_index = {int(st.annotations.get("source_index", i)): st
                for i, st in enumerate(seg.spiketrains)}
    return [np.rint(np.asarray(by_index[i].magnitude) / dt_ms).astype(np.int64)
            if i in by_index else np.zeros(0, dtype=np.int64) for i in range(pop.size)]


def _v_trace(pop: Any, dt_ms: float) -> np.ndarray:
    """``v`` of every neuron at every recorded step, in integer units (steps x size)."""
    sig = pop.get_data("v", clear=False).segments[-1].filter(name="v")[0]
    t = np.rint(np.asarray(sig.times.rescale("ms").magnitude) / dt_ms).astype(np.int64)
    vals = np.asarray(sig.magnitude) * UNITS_PER_MV
    out = np.zeros((int(t.max()) + 2, vals.shape[1]))
    out[t] = vals
    return out


def _output(model: Model, b: int, timeline: Timeline, spikes: list[list[np.ndarray]],
            vtrace: Optional[np.ndarray], x: np.ndarray) -> RunOutput:
    steps = model.timesteps
    start = b * timeline.period
    rasters = []
    for li, layer in enumerate(model.layers):
        r = np.zeros((steps, layer.size), dtype=np.uint8)
        base = start + timeline.layer_offset(li)
        for i, st in enumerate(spikes[li]):
            k = st - base
            k = k[(k >= 0) & (k < steps)]
            r[k, i] = 1
        rasters.append(r)
    out_r = rasters[-1]
    if model.decoding == "spike_count":
        scores = out_r.sum(axis=0).astype(np.int64)
    elif model.decoding == "first_spike":
        fired = out_r.any(axis=0)
        scores = np.where(fired, steps - np.argmax(out_r, axis=0), 0).astype(np.int64)
    else:
        assert vtrace is not None
        # v of integer step k of the output layer is NEST's V at that step's stamp
        base = start + timeline.layer_offset(len(model.layers) - 1)
        v = vtrace[base:base + steps]
        v = np.rint(v).astype(np.int64)
        scores = v[-1] if model.decoding == "membrane_last" else v.sum(axis=0)
    counters = counters_from_spikes(model, x, rasters)
    return RunOutput(prediction=int(np.argmax(scores)), scores=scores, spikes=rasters,
                     counters=counters, cycle_source="none")


def spike_count_tolerance(reference: RunOutput, other: RunOutput) -> int:
    """Largest absolute difference of any neuron's spike count between two runs (spikes)."""
    diffs = [np.abs(a.sum(axis=0).astype(np.int64) - b.sum(axis=0).astype(np.int64)).max()
             for a, b in zip(reference.spikes, other.spikes)]
    return int(max(diffs)) if diffs else 0


__all__ = [
    "CellParameters", "INEXACT_POLICIES", "InputPlan", "PynnInexact", "PynnNetwork",
    "PynnTolerance", "PynnToleranceWarning", "Timeline", "available", "build",
    "cell_parameters", "check_exact", "check_supported", "decay_to_tau", "propagator_p20", "propagator_p21", "run_batch",
    "spike_count_tolerance", "synapse_lists", "tau_to_decay", "tolerance",
]


# ------------------------------------------------------------------------------------------
# SpiNNaker 1 through sPyNNaker: mapping only (a virtual board places and routes, runs nothing)
# ------------------------------------------------------------------------------------------

SPYNNAKER_CFG = "[Machine]\nvirtual_board = True\nversion = 5\n"


@dataclass
class LayerWeightCheck:
    """How sPyNNaker's 16-bit fixed-point weights of one layer compare with our integers.

    Attributes:
        ring_buffer_shifts: per synapse type (excitatory, inhibitory), the left shift chosen.
        weight_scales: per synapse type, fixed-point units per nA.
        max_fixed: the largest 16-bit weight written (must stay <= 65535).
        max_error_units: largest |integer weight recovered from the fixed-point one - ours|,
            in units of our integer weight (below 0.5: every integer weight survives).
        exact: True if rounding the recovered weights gives back every integer weight.
    """

    layer: str
    ring_buffer_shifts: list[int]
    weight_scales: list[float]
    max_fixed: int
    max_error_units: float
    exact: bool


@dataclass
class SpinnakerMapping:
    """Placement, routing and weight representation of a model on a (virtual) SpiNNaker 1."""

    placements: list[tuple[str, int, int, int]]
    cores_used: int
    chips_used: int
    routing_entries: int
    max_routing_entries_per_chip: int
    weights: list[LayerWeightCheck]


@contextlib.contextmanager
def _spynnaker_home(home: Optional[os.PathLike[str] | str]) -> Iterator[None]:
    """HOME pointing at a folder with a virtual-board ``.spynnaker.cfg`` (restored after).

    The working directory moves to a temporary folder too: sPyNNaker writes its ``reports/``
    tree into the current directory, which must not litter the user's checkout.
    """
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    old = os.environ.get("HOME")
    with tempfile.TemporaryDirectory(prefix="edgespike-spynnaker-") as tmp:
        folder = Path(home) if home is not None else Path(tmp)
        cfg = folder / ".spynnaker.cfg"
        if not cfg.exists():
            cfg.write_text(SPYNNAKER_CFG)
        os.environ["HOME"] = str(folder)
        old_cwd = os.getcwd()
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old_cwd)
            if old is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = old


def spynnaker_available() -> bool:
    """True if sPyNNaker (``pyNN.spiNNaker``) is installed."""
    import importlib.util  # noqa: PLC0415

    return importlib.util.find_spec("spynnaker") is not None


def map_spinnaker(model: Model, inputs: Optional[np.ndarray] = None, *, dt_ms: float = 1.0,
                  home: Optional[str] = None) -> SpinnakerMapping:
    """Map ``model`` with sPyNNaker on a virtual SpiNNaker 1 board (no hardware).

    Builds the same populations and projections as the NEST run (inhibitory weights as
    magnitudes, as sPyNNaker wants), runs the tool chain for ``timesteps`` steps on a virtual
    board (placement, routing, data generation; a virtual run returns no spikes) and reports
    the placements, the routing tables and the 16-bit fixed-point weights sPyNNaker would
    load, checked against our integer weights.
    """
    check_supported(model)
    if not spynnaker_available():
        raise ToolMissing("sPyNNaker is not installed; install it with: "
                          "pip install 'sPyNNaker==1!7.4.1'")
    x = np.zeros((1, model.timesteps, model.input_size), dtype=np.int64)
    x[0, 0, :] = 1  # default input: every channel once (sPyNNaker rejects all-empty sources)
    if inputs is not None:
        x = check_input(model, inputs)
        x = x[None] if x.ndim == 2 else x[:1]
    timeline = Timeline(model.timesteps, len(model.layers), _FLUSH_STEPS)
    plan = InputPlan.for_model(model)
    raster = plan.source_raster(x[0])
    times = [timeline.source_step(0, np.nonzero(raster[:, s])[0]) * dt_ms
             for s in range(plan.n_sources)]
    with _spynnaker_home(home), _quiet():
        import warnings  # noqa: PLC0415
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pyNN.spiNNaker as sim  # noqa: PLC0415
            from spynnaker.pyNN.data import SpynnakerDataView  # noqa: PLC0415
        sim.setup(timestep=dt_ms)
        try:
            net = build(sim, model, times, dt_ms, timeline, 1, inhibitory_sign=1.0)
            sim.run(timeline.period * dt_ms)
            placements = [(pl.vertex.label or "", pl.x, pl.y, pl.p)
                          for pl in SpynnakerDataView.iterate_placemements()]
            tables = SpynnakerDataView.get_uncompressed()
            per_chip = [t.number_of_entries for t in tables.routing_tables]
            checks = [_weight_check(model.layers[li], pop, net.params[li], net.projections[li],
                                    li == 0, plan)
                      for li, pop in enumerate(net.populations)]
        finally:
            sim.end()
            # sPyNNaker leaves an at-exit hook that writes into the report folder, which the
            # temporary HOME removes when this block ends; the run is over, so drop the hook.
            import atexit  # noqa: PLC0415
            from spinn_utilities.data.utils_data_writer import UtilsDataWriter  # noqa: PLC0415
            atexit.unregister(UtilsDataWriter.write_errored_file)
    ours = [p for p in placements if not p[0].startswith("SYSTEM")]
    return SpinnakerMapping(
        placements=ours, cores_used=len(ours), chips_used=len({(p[1], p[2]) for p in ours}),
        routing_entries=int(sum(per_chip)), max_routing_entries_per_chip=int(max(per_chip, default=0)),
        weights=checks)


def _weight_check(layer: Layer, pop: Any, params: CellParameters, projections: tuple[Any, Any],
                  first: bool, plan: InputPlan) -> LayerWeightCheck:
    vertex = pop._vertex  # sPyNNaker's application vertex (no public accessor)
    shifts = [int(s) for s in vertex.get_ring_buffer_shifts()]
    scales = [float(s) for s in vertex.get_weight_scales(shifts)]
    w = layer.weights.integer_matrix().astype(np.float64)
    if first:
        w = w[plan.rows] * plan.scale[:, None]
    unit = params.weight_gain * 2.0 ** layer.weights.exp  # nA per integer weight unit
    max_fixed, max_err = 0, 0.0
    exact = True
    for syn_type, mask in ((0, w > 0), (1, w < 0)):
        mag = np.abs(w[mask]) * unit
        if mag.size == 0:
            continue
        fixed = np.round(mag * scales[syn_type])
        max_fixed = max(max_fixed, int(fixed.max()))
        back = fixed / scales[syn_type] / unit
        err = np.abs(back - np.abs(w[mask]))
        max_err = max(max_err, float(err.max()))
        exact &= bool(np.all(np.round(back) == np.abs(w[mask]))) and fixed.max() <= 65535
    return LayerWeightCheck(layer=pop.label, ring_buffer_shifts=shifts, weight_scales=scales,
                            max_fixed=max_fixed, max_error_units=max_err, exact=bool(exact))


__all__ += ["LayerWeightCheck", "SpinnakerMapping", "map_spinnaker", "spynnaker_available"]
