"""Lava (Loihi 2) back-end: runs a model on Lava's bit-accurate Loihi CPU models.

Each layer becomes Lava processes: a ``Dense`` (integer weights with ``weight_exp``, 8-bit
``num_weight_bits``, an explicit sign mode) into a ``LIF`` whose fixed-point model
(``PyLifModelBitAcc``, selected with ``Loihi2SimCfg(select_tag="fixed_pt")``) is Loihi's
arithmetic; a recurrent layer adds a second ``Dense`` from the LIF's ``s_out`` back to its
``a_in``. The mapping follows the table in ``docs/SEMANTICS.md``:

* ``du`` (ours) is Lava's ``du + 1`` (Lava's hidden ``ds_offset``); our ``du = 0`` has no Lava
  equivalent and is refused; ``dv`` is equal (``dv = 4096`` does not fit the 12-bit register).
* ``bias = bias_mant << bias_exp`` maps one to one; ``vth`` is Lava's ``vth``.
* Dense clips weights to 9 bits and drops the lowest bit of mixed-sign weights, so a
  mixed-sign matrix is passed as ``2w / 2^m`` (m: the common power of two) with
  ``weight_exp - 1 + m``; one-signed matrices go in unchanged (0..255). Mixed-sign matrices
  outside -128..127 (times a common power of two; e.g. ternary ``a_pos = 200``) are split into
  an excitatory and an inhibitory Dense when ``exp >= 0`` (the left shift distributes over the
  sum) and refused otherwise (the floor of the shift does not).
* Lava's LIF has one threshold per process: a layer with per-neuron thresholds becomes one
  LIF per distinct threshold (at most :data:`MAX_GROUPS_PER_LAYER`). Lava 0.10 cannot
  concatenate ports, so each such LIF feeds its own Dense; the weights it feeds must then have
  ``exp >= 0`` (separately floored partial sums would differ), otherwise the model is refused.
* Each Dense delivers one Lava step late, so layer ``l`` (0-based) computes our step ``t`` at
  Lava step ``t + l + 1``; the worker holds biases at 0 until then and returns aligned rasters.

Lava 0.10 needs Python 3.10 and numpy < 2, so it lives in its own environment (made by
``scripts/setup_lava.sh``) and :mod:`edgespike.backends.lava_worker` runs there in a subprocess;
the two exchange a JSON plan and npz arrays through a temporary folder.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgespike.errors import EdgeSpikeError, ModelError, ToolMissing
from edgespike.model.quantized import Model, _per_neuron
from edgespike.paths import build_dir
from edgespike.sim.reference import RunOutput, check_input, counters_from_spikes

log = logging.getLogger(__name__)

#: Lava's sign modes (lava.utils.weightutils.SignMode values).
SIGN_EXCITATORY, SIGN_INHIBITORY, SIGN_MIXED = 2, 3, 1
#: Populations (LIF processes) one layer may be split into for per-neuron thresholds.
MAX_GROUPS_PER_LAYER = 8
#: Graded-spike width used for direct ("values") input, bits.
VALUE_MESSAGE_BITS = 24
#: Lava's graded Dense sums in int32: every |unshifted sum| must stay below this.
INT32_LIMIT = 1 << 31
WORKER = Path(__file__).with_name("lava_worker.py")


class LavaRunError(EdgeSpikeError):
    """The Lava worker process failed (its stderr is in the message)."""


class LavaInt32Overflow(ModelError):
    """A Dense fed with direct (graded) input could overflow Lava's int32 sum; refused up front.

    Raised by :func:`check_model` (and so before any run) from the exact worst case
    :func:`dense_accumulator_bound` of every graded Dense the mapping would create.
    """


@dataclass
class DenseSpec:
    """One Lava Dense: ``weights`` in Lava's (fan_out, fan_in) layout, already scaled."""

    weights: np.ndarray
    weight_exp: int
    sign_mode: int


@dataclass
class LavaResult:
    """What one Lava batch produced.

    Attributes:
        outputs: one :class:`RunOutput` per input.
        seconds_build: wall time to compile and start the Lava runtime, in seconds.
        seconds_run: wall time of the time steps themselves (all inputs), in seconds.
        seconds_total: wall time of the whole subprocess call, in seconds.
        lava_steps: Lava time steps run in all (``batch * (timesteps + layers)``).
    """

    outputs: list[RunOutput]
    seconds_build: float = 0.0
    seconds_run: float = 0.0
    seconds_total: float = 0.0
    lava_steps: int = 0


@dataclass
class _Plan:
    plan: dict
    arrays: dict[str, np.ndarray]
    # per layer: list of (population index, neuron indices of the layer it holds)
    groups: list[list[tuple[int, np.ndarray]]] = field(default_factory=list)


# --------------------------------------------------------------------------- environment

def lava_python() -> Path:
    """The Lava environment's interpreter: ``$EDGESPIKE_LAVA_PYTHON`` or ``build/lava-venv``."""
    env = os.environ.get("EDGESPIKE_LAVA_PYTHON")
    if env:
        return Path(env)
    return build_dir() / "lava-venv" / "bin" / "python"


def available() -> bool:
    """True when the Lava environment exists and ``import lava`` works there (about 1 s)."""
    py = lava_python()
    if not py.exists():
        return False
    try:
        done = subprocess.run(
            [str(py), "-I", "-c", "import lava.magma.core.run_configs, lava.proc.lif.process"],
            capture_output=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# --------------------------------------------------------------------------- mapping

def check_model(model: Model) -> None:
    """Raise :class:`ModelError` if the model uses something Lava's bit-accurate LIF lacks."""
    model.validate()
    for i, layer in enumerate(model.layers):
        n = layer.neurons
        where = f"layer {i}"
        if n.reset != "zero":
            raise ModelError(f"{where}: reset-by-subtraction has no bit-accurate Lava model "
                             "(PyLifModelBitAcc resets to zero); use reset='zero' for Lava")
        if n.refractory:
            raise ModelError(f"{where}: refractory={n.refractory} has no bit-accurate Lava model; "
                             "set refractory=0 for the Lava back-end")
        if n.adapt_step:
            raise ModelError(f"{where}: the adaptive threshold has no bit-accurate Lava model; "
                             "set adapt_step=0 for the Lava back-end")
        if n.du == 0:
            raise ModelError(f"{where}: du=0 (a current that never decays) cannot be expressed in "
                             "Lava: its du is ours - 1 in 12 bits (0..4095), so our du is 1..4096")
        if n.dv == 4096:
            raise ModelError(f"{where}: dv=4096 does not fit Lava's 12-bit dv (0..4095)")
        vth = np.unique(_per_neuron(n.vth, layer.size, "vth"))
        if vth.size > MAX_GROUPS_PER_LAYER:
            raise ModelError(
                f"{where}: {vth.size} distinct thresholds; Lava's LIF has one vth per process, so "
                f"each distinct value needs its own process (at most {MAX_GROUPS_PER_LAYER} here). "
                "Share thresholds across neurons (e.g. per-layer vth) for the Lava back-end")
        if vth.size > 1:
            # Lava 0.10 cannot concatenate ports, so the spikes of each population reach the
            # next Dense separately; partial sums shifted separately floor differently, unless
            # the shift is to the left.
            users = []
            if i + 1 < len(model.layers):
                users.append((f"layer {i + 1}", model.layers[i + 1].weights))
            if layer.recurrent is not None:
                users.append((f"{where} recurrent", layer.recurrent))
            for name, w in users:
                if w.exp < 0:
                    raise ModelError(
                        f"{where}: its {vth.size} distinct thresholds need one Lava LIF each, and "
                        f"the weights fed by them ({name}) have exponent {w.exp} < 0: separately "
                        "shifted partial sums would round differently. Use one threshold per "
                        "layer, or a weight exponent >= 0 there, for the Lava back-end")
    for _ in dense_blocks(model):
        pass  # raises ModelError for weights no Lava Dense holds exactly, or could overflow


def _layout(model: Model) -> list[list[tuple[int, np.ndarray]]]:
    """Per layer, (population index, neuron indices) of each LIF: one per distinct threshold."""
    out, pi = [], 0
    for layer in model.layers:
        vth = _per_neuron(layer.neurons.vth, layer.size, "vth")
        entries = []
        for v in np.unique(vth):
            entries.append((pi, np.flatnonzero(vth == v)))
            pi += 1
        out.append(entries)
    return out


@dataclass
class DenseBlock:
    """One Lava Dense of the mapping and where it sits.

    Attributes:
        layer: the layer (0-based) whose synaptic input it carries.
        recurrent: True for a block of the layer's recurrent weights.
        src: "input" or the source population; ``rows``: the presynaptic indices it reads
            (input channels, or neurons of the previous or own layer).
        dst: the destination population; ``cols``: the layer's neurons it feeds.
        spec: the Dense itself.
    """

    layer: int
    recurrent: bool
    src: object
    rows: np.ndarray
    dst: int
    cols: np.ndarray
    spec: DenseSpec


def dense_blocks(model: Model, layout: Optional[list[list[tuple[int, np.ndarray]]]] = None):
    """Yield a :class:`DenseBlock` for every Lava Dense the mapping creates.

    One Dense per (source population, destination population, weight part, sign/exponent
    group): Lava 0.10 cannot concatenate ports, and all-zero blocks need no Dense. Raises
    :class:`ModelError` (or :class:`LavaInt32Overflow`) for weights no Dense holds exactly.
    """
    layout = _layout(model) if layout is None else layout
    for li, layer in enumerate(model.layers):
        if li == 0:
            sources: list[tuple[object, np.ndarray]] = [("input", np.arange(model.input_size))]
        else:
            sources = list(layout[li - 1])
        graded = model.input_bound() if (li == 0 and model.input_kind == "values") else 0
        parts = [(layer.weights, sources, f"layer {li}", graded, False)]
        if layer.recurrent is not None:
            parts.append((layer.recurrent, list(layout[li]), f"layer {li} recurrent", 0, True))
        for weights, srcs, where, bound, rec in parts:
            mat = weights.integer_matrix()
            for src, rows in srcs:
                for pi, idx in layout[li]:
                    for spec in _encode_weights(mat[np.ix_(rows, idx)], weights.exp, where,
                                                bound):
                        yield DenseBlock(li, rec, src, rows, pi, idx, spec)


def _pow2_divisor(w: np.ndarray, limit: int = 8) -> int:
    """Largest m <= limit with every entry of ``w`` divisible by 2^m."""
    m = 0
    while m < limit and not np.any(w & ((1 << (m + 1)) - 1)):
        m += 1
    return m


def dense_accumulator_bound(spec: DenseSpec, input_bound: int) -> int:
    """Largest |unshifted sum| one Lava Dense can form from graded inputs |x| <= input_bound.

    Lava's ``PyDenseModelBitAcc`` forms ``weights.dot(s_in)`` in int32 for graded (direct
    value) input before it shifts by ``weight_exp``. Every input may independently be
    ``+input_bound`` or ``-input_bound``, so the exact worst case of row k is
    ``sum_j |w'_kj| * input_bound`` (not ``max(positive, negative) * bound``, which is the
    worst case for 0/1 spikes only). Binary spikes are summed by numpy in 64 bits.
    """
    return int(np.abs(spec.weights.astype(np.int64)).sum(axis=1).max()) * int(input_bound)


def _encode_whole(w: np.ndarray, exp: int) -> Optional[list[DenseSpec]]:
    """One exact Lava encoding of a (fan_in x fan_out) matrix, or None if none exists."""
    lw = w.T  # Lava: (fan_out, fan_in)
    if w.min() >= 0 and w.max() <= 255:
        return [DenseSpec(lw.astype(np.int32), exp, SIGN_EXCITATORY)]
    if w.max() <= 0 and w.min() >= -255:
        return [DenseSpec(lw.astype(np.int32), exp, SIGN_INHIBITORY)]
    if w.min() < 0 < w.max():
        # Mixed sign: Lava keeps only even values in [-256, 254]; scale by 2^(1-m).
        m = _pow2_divisor(w)
        scaled = (lw << 1) >> m
        if scaled.min() >= -256 and scaled.max() <= 254:
            return [DenseSpec(scaled.astype(np.int32), exp - 1 + m, SIGN_MIXED)]
        if exp >= 0 and w.max() <= 255 and w.min() >= -255:
            # left shifts distribute over the sum: excitatory + inhibitory Dense is exact
            return [DenseSpec(np.clip(lw, 0, None).astype(np.int32), exp, SIGN_EXCITATORY),
                    DenseSpec(np.clip(lw, None, 0).astype(np.int32), exp, SIGN_INHIBITORY)]
    return None


def _fits(specs: list[DenseSpec], input_bound: int) -> bool:
    return input_bound == 0 or all(dense_accumulator_bound(s, input_bound) < INT32_LIMIT
                                   for s in specs)


def _encode_weights(w: np.ndarray, exp: int, where: str, input_bound: int = 0) -> list[DenseSpec]:
    """Map an integer matrix (fan_in x fan_out) and exponent to exact Lava Dense processes.

    ``input_bound`` is the largest |graded input| (direct encoding) or 0 for binary spikes.
    Returns [] for an all-zero matrix (no Dense needed). The sum a Dense computes,
    ``shift(sum_j x_j w'_j, e')``, equals ``shift(sum_j x_j w_j, exp)`` for every input, and
    no graded Dense's int32 accumulator can overflow.

    One encoding for the whole matrix is tried first. If there is none, or its int32 sum could
    overflow (a mixed-sign matrix is passed doubled), each output neuron (column) gets its own
    cheapest encoding (one-signed or even columns need no doubling), and columns with the same
    sign mode and exponent share one Dense (zero rows elsewhere): every neuron's sum is still
    formed in one Dense, so its shift floors exactly once.
    """
    w = np.asarray(w, dtype=np.int64)
    if not w.any():
        return []
    specs = _encode_whole(w, exp)
    if specs is not None and _fits(specs, input_bound):
        return specs
    fan_in, fan_out = w.shape
    groups: dict[tuple[int, int], np.ndarray] = {}
    for k in range(fan_out):
        col = w[:, k:k + 1]
        if not col.any():
            continue
        col_specs = _encode_whole(col, exp)
        if col_specs is None:
            raise ModelError(
                f"{where}: neuron {k}: mixed-sign weights in [{col.min()}, {col.max()}] with "
                f"exponent {exp} do not fit a Loihi Dense exactly (mixed-sign weights have 8 "
                "bits including the sign: -128..127 times a power of two, and a negative "
                "exponent cannot be split into excitatory and inhibitory parts without changing "
                "the rounding); keep ternary magnitudes a_pos <= 127 and a_neg <= 128, or use "
                "exp >= 0")
        for cs in col_specs:
            if not _fits([cs], input_bound):
                bound = dense_accumulator_bound(cs, input_bound)
                per_unit = bound // input_bound
                doubled = cs.sign_mode == SIGN_MIXED and cs.weight_exp < exp
                raise LavaInt32Overflow(
                    f"{where}: neuron {k}: with direct input up to +-{input_bound} its Lava "
                    f"Dense sum can reach {bound} >= 2^31 (sum of |w| = {per_unit}"
                    + (", mixed-sign weights passed doubled" if doubled else "")
                    + "), which overflows Lava's int32 arithmetic before the shift by the "
                    f"weight exponent {exp}. Lower input_max_abs to at most "
                    f"{(INT32_LIMIT - 1) // per_unit}, or the fan-in or weight magnitudes "
                    "into this neuron; the reference, the C core and devices run it exactly")
            mat = groups.setdefault((cs.sign_mode, cs.weight_exp),
                                    np.zeros((fan_out, fan_in), np.int32))
            mat[k] = cs.weights[0]
    return [DenseSpec(mat, e, mode) for (mode, e), mat in sorted(groups.items())]


def plan(model: Model, inputs: np.ndarray, record_v: bool = False) -> _Plan:
    """Build the worker's plan (JSON-able dict + npz arrays) for a batch of inputs."""
    check_model(model)
    x = check_input(model, inputs)
    if x.ndim == 2:
        x = x[None]
    n_layers = len(model.layers)
    layout = _layout(model)
    pops: list[dict] = []
    arrays: dict[str, np.ndarray] = {"input": x.astype(np.int32)}
    for li, layer in enumerate(model.layers):
        n = layer.neurons
        vth = _per_neuron(n.vth, layer.size, "vth")
        bias = _per_neuron(n.bias_mant, layer.size, "bias_mant")
        for pi, idx in layout[li]:
            pops.append({"size": int(idx.size), "du": int(n.du) - 1, "dv": int(n.dv),
                         "vth": int(vth[idx[0]]), "lag": li + 1,
                         "bias": bool(np.any(bias[idx]))})
            arrays[f"pop{pi}_bias_mant"] = bias[idx].astype(np.int32)
            arrays[f"pop{pi}_bias_exp"] = np.full(idx.size, n.bias_exp, dtype=np.int32)

    bits_in = 0 if model.input_kind == "spikes" else VALUE_MESSAGE_BITS
    conns: list[dict] = []
    for block in dense_blocks(model, layout):
        src, spec = block.src, block.spec
        arrays[f"conn{len(conns)}_w"] = spec.weights
        conns.append({"src": src, "dst": block.dst, "weight_exp": int(spec.weight_exp),
                      "sign_mode": spec.sign_mode,
                      "num_message_bits": bits_in if src == "input" else 0})
    # Lava compiles only the processes connected to the one it runs (pops[0]): every LIF not
    # connected to the input through some chain of Denses (all-zero feed-forward blocks, a
    # population fed only by recurrent weights, itself or its layer's other populations, or
    # by such populations) gets a zero Dense from the input, so it is part of the run.
    for pi, pop in enumerate(pops):
        if pi not in _reachable_from_input(conns):
            arrays[f"conn{len(conns)}_w"] = np.zeros((pop["size"], model.input_size), np.int32)
            conns.append({"src": "input", "dst": pi, "weight_exp": 0,
                          "sign_mode": SIGN_EXCITATORY, "num_message_bits": bits_in})

    record = [pi for pi, _ in layout[-1]] if record_v else []
    plan_dict = {
        "batch": int(x.shape[0]), "timesteps": int(model.timesteps),
        "period": int(model.timesteps + n_layers),
        "input": {"size": int(model.input_size), "graded": bool(bits_in)},
        "pops": pops, "conns": conns, "record_v": record,
    }
    return _Plan(plan_dict, arrays, layout)


def _reachable_from_input(conns: list[dict]) -> set:
    """Populations connected to the input through Denses, in either direction (as Lava's
    compiler walks the process graph)."""
    seen, todo = {"input"}, ["input"]
    while todo:
        node = todo.pop()
        for c in conns:
            for a, b in ((c["src"], c["dst"]), (c["dst"], c["src"])):
                if a == node and b not in seen:
                    seen.add(b)
                    todo.append(b)
    return seen


# --------------------------------------------------------------------------- running

def _scores(model: Model, raster: np.ndarray, v_last: np.ndarray,
            v_trace: Optional[np.ndarray]) -> np.ndarray:
    steps = model.timesteps
    if model.decoding == "spike_count":
        return raster.sum(axis=0).astype(np.int64)
    if model.decoding == "membrane_last":
        return v_last.astype(np.int64)
    if model.decoding == "membrane_sum":
        assert v_trace is not None
        return v_trace.astype(np.int64).sum(axis=0)
    fired = raster.any(axis=0)
    first = np.argmax(raster, axis=0)
    return np.where(fired, steps - first, 0).astype(np.int64)


def default_timeout_s(p: _Plan) -> float:
    """A generous limit for one worker call, in seconds: start-up plus the steps.

    Lava's runtime can hang instead of failing when one of its processes dies, so every call
    has a limit. Measured here: ~1-2 s to start, ~1 ms per Lava step per process.
    """
    n_procs = 2 + 2 * len(p.plan["pops"]) + len(p.plan["conns"])
    steps = p.plan["batch"] * p.plan["period"]
    return 120.0 + 0.02 * steps * n_procs


def _run_worker(cmd: list[str], cwd: str, timeout_s: float) -> tuple[int, str]:
    """Run the worker in its own process group; kill the whole group (Lava forks) on timeout."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONHASHSEED="0"))
    try:
        text, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise LavaRunError(f"the Lava worker did not finish in {timeout_s:.0f} s (Lava hangs "
                           "rather than failing when one of its processes dies)") from exc
    except BaseException:
        _kill_group(proc)
        raise
    _kill_group(proc)  # a clean exit can still leave Lava's forked children behind
    return proc.returncode, text or ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_batch_detailed(model: Model, inputs: np.ndarray, *,
                       timeout_s: Optional[float] = None) -> LavaResult:
    """Run a batch (``batch x timesteps x input_size``) in one Lava runtime, with timings.

    Raises:
        ModelError: the model uses a feature Lava's bit-accurate models lack.
        InputError: the inputs do not match the model.
        ToolMissing: the Lava environment is not set up.
        LavaRunError: the worker failed or timed out.
    """
    p = plan(model, inputs, record_v=model.decoding == "membrane_sum")
    py = lava_python()
    if not py.exists():
        raise ToolMissing(f"the Lava environment is missing ({py}); create it with: "
                          "bash scripts/setup_lava.sh (or set EDGESPIKE_LAVA_PYTHON)")
    x = p.arrays["input"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgespike-lava-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "plan.json").write_text(json.dumps(p.plan))
        np.savez(tmpd / "arrays.npz", **p.arrays)
        cmd = [str(py), "-I", str(WORKER), str(tmpd / "plan.json"), str(tmpd / "arrays.npz"),
               str(tmpd / "out.npz")]
        log.debug("running %s", " ".join(cmd))
        if timeout_s is None:
            timeout_s = default_timeout_s(p)
        rc, text = _run_worker(cmd, tmp, timeout_s)
        if rc != 0 or not (tmpd / "out.npz").exists():
            raise LavaRunError(f"the Lava worker failed (exit {rc}):\n{text[-3000:]}")
        with np.load(tmpd / "out.npz", allow_pickle=False) as f:
            res = {k: f[k] for k in f.files}
    total = time.perf_counter() - t0

    batch, steps = x.shape[0], model.timesteps
    outputs = []
    for b in range(batch):
        rasters, us, vs = [], [], []
        for li, layer in enumerate(model.layers):
            r = np.zeros((steps, layer.size), np.uint8)
            u = np.zeros(layer.size, np.int32)
            v = np.zeros(layer.size, np.int32)
            for pi, idx in p.groups[li]:
                r[:, idx] = res[f"spikes{pi}"][b]
                u[idx] = res[f"u{pi}"][b]
                v[idx] = res[f"v{pi}"][b]
            rasters.append(r)
            us.append(u)
            vs.append(v)
        v_trace = None
        if model.decoding == "membrane_sum":
            v_trace = np.zeros((steps, model.output_size), np.int64)
            for pi, idx in p.groups[-1]:
                v_trace[:, idx] = res[f"vtrace{pi}"][b]
        scores = _scores(model, rasters[-1], vs[-1], v_trace)
        outputs.append(RunOutput(
            prediction=int(np.argmax(scores)), scores=scores, spikes=rasters, u=us, v=vs,
            th=[np.zeros(layer.size, np.int32) for layer in model.layers],
            counters=counters_from_spikes(model, x[b], rasters),
        ))
    return LavaResult(outputs=outputs, seconds_build=float(res["seconds_build"]),
                      seconds_run=float(res["seconds_run"]), seconds_total=total,
                      lava_steps=int(res["lava_steps"]))


def run_batch(model: Model, inputs: np.ndarray) -> list[RunOutput]:
    """Run a batch of inferences on Lava's bit-accurate Loihi models (see the module doc)."""
    return run_batch_detailed(model, inputs).outputs
