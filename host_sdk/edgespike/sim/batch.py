"""The batched exact simulator: the integer model of docs/SEMANTICS.md at BLAS speed.

Same interface and bit-identical results as the numpy reference (:mod:`edgespike.sim.reference`,
the readable definition): every layer's spikes, the final ``u`` / ``v`` / ``th``, scores,
predictions and counters. It is what the SDK runs on the host by default (``edgespike run``,
``profile``, ``parity``, quantize's exactness check).

How it is fast and still exact:

* **Layer by layer, all steps at once.** A feed-forward layer's synaptic sums at step ``t``
  depend only on the layer's input at ``t`` (the previous layer's spikes of the same step, or
  the model's input), so one matrix product gives them for the whole batch and every step:
  ``(n * timesteps, fan_in) @ (fan_in, size)``. A direct-encoded input that is the same at every
  step (a still image) is multiplied once, not ``timesteps`` times. Recurrent sums (one step
  of delay) are added step by step, event by event.
* **The product is exact in floating point.** Every weight and input is an integer, and any
  partial sum of ``sum_j x_j W[j, k]`` lies within ``bound * max(P_k, N_k)`` (``P_k`` / ``N_k``:
  the sums of the positive / negative weights into neuron ``k``, ``bound``: the largest
  ``|x|``), which the model validator keeps below ``2^31``. Integers that small are exact in
  float64 (53-bit mantissa), whatever order BLAS adds them in. Where the bound is at most
  ``2^24`` (every spike layer of an int8 model with fan-in up to 131,072, and most first
  layers) float32 is exact too and twice as fast, so each weight matrix uses float32 when its
  own bound allows and float64 otherwise.
* **The neuron update runs over the batch.** In C (``es_host_lif_layer`` in the host library,
  built by ``firmware/build.sh``), input by input with every state in cache, or, when the
  library is not built, in numpy vectorised over the batch (slower, same bits).
* **Threads.** ``threads > 1`` splits the batch into chunks run concurrently: BLAS and the C
  kernel release the GIL. BLAS's own thread count is left as it is (limit it with
  ``threadpoolctl`` or ``OPENBLAS_NUM_THREADS`` when you count threads).

Usage::

    sim = BatchSim(model)                  # validate and prepare once
    res = sim.run(inputs)                  # BatchResult: arrays over the batch
    preds = sim.predict(inputs)            # (n,) int64
    outs = run_batch(model, inputs)        # list[RunOutput], as reference.run_batch
"""
from __future__ import annotations

import ctypes
import functools
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import numpy as np

from edgespike.errors import InputError, ToolMissing
from edgespike.model.quantized import Model, Weights, _per_neuron
from edgespike.sim.checks import as_array, fingerprint, model_input, require_valid
from edgespike.sim.reference import LayerCounters, RunOutput

log = logging.getLogger(__name__)

Kernel = Literal["auto", "c", "numpy"]

#: Integers up to 2^24 in magnitude are exact in float32 (24-bit significand).
F32_EXACT = 1 << 24
#: Bytes of working memory one chunk of the batch may take (a guide; one input may exceed it).
CHUNK_BYTES = 48 << 20
_MAX24 = 1 << 23
#: Counter columns of :attr:`BatchResult.counters`.
COUNTERS = ("input_events", "synops", "neuron_updates", "spikes")


# ---- the C kernel --------------------------------------------------------------------------

class _LayerArgs(ctypes.Structure):
    """es_host_layer_t (firmware/ports/host/es_host_lif.h), field for field."""

    _fields_ = [
        ("n", ctypes.c_uint32), ("steps", ctypes.c_uint32), ("size", ctypes.c_uint32),
        ("fan_in", ctypes.c_uint32), ("in_kind", ctypes.c_uint32),
        ("in_sums", ctypes.c_void_p), ("in_spikes", ctypes.c_void_p), ("w", ctypes.c_void_p),
        ("wt8", ctypes.c_void_p), ("wt16", ctypes.c_void_p), ("w_nnz", ctypes.c_void_p),
        ("w_exp", ctypes.c_int32), ("rec", ctypes.c_void_p), ("rec_t8", ctypes.c_void_p),
        ("rec_t16", ctypes.c_void_p), ("rec_nnz", ctypes.c_void_p), ("rec_exp", ctypes.c_int32),
        ("du", ctypes.c_uint32), ("dv", ctypes.c_uint32), ("adapt_decay", ctypes.c_uint32),
        ("adapt_step6", ctypes.c_int32), ("refractory", ctypes.c_uint32),
        ("reset_subtract", ctypes.c_uint32), ("vth6", ctypes.c_void_p), ("bias", ctypes.c_void_p),
        ("spikes", ctypes.c_void_p), ("u", ctypes.c_void_p), ("v", ctypes.c_void_p),
        ("th", ctypes.c_void_p), ("vsum", ctypes.c_void_p), ("counts", ctypes.c_void_p),
        ("events", ctypes.c_void_p), ("synops", ctypes.c_void_p), ("ref", ctypes.c_void_p),
        ("acc", ctypes.c_void_p), ("acc_rec", ctypes.c_void_p), ("idx", ctypes.c_void_p),
    ]


#: es_host_layer_t.in_kind
_IN_SUMS, _IN_STATIC, _IN_SPIKES = 0, 1, 2
_KERNEL_VERSION = 4


#: es_host_value_range kinds, by numpy dtype
_RANGE_KINDS = {np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int16): 3,
                np.dtype(np.uint16): 4, np.dtype(np.int32): 5, np.dtype(np.uint32): 6,
                np.dtype(np.int64): 7}


@dataclass(frozen=True)
class _Kernel:
    layer: Any      # es_host_lif_layer
    static: Any     # es_host_static_input
    range: Any      # es_host_value_range


@functools.lru_cache(maxsize=1)
def _c_kernel() -> Optional[_Kernel]:
    """The host library's neuron update, or None when it is not built (or too old)."""
    from edgespike import paths

    try:
        lib = ctypes.CDLL(str(paths.host_library()))
        version = lib.es_host_lif_version
        version.restype = ctypes.c_uint32
        if version() != _KERNEL_VERSION:
            raise AttributeError(f"es_host_lif version {version()}, need {_KERNEL_VERSION}")
        layer, static = lib.es_host_lif_layer, lib.es_host_static_input
        value_range = lib.es_host_value_range
    except (ToolMissing, OSError, AttributeError) as exc:
        log.info("batched simulator: C neuron kernel unavailable (%s); using numpy", exc)
        return None
    layer.restype = ctypes.c_int32
    layer.argtypes = [ctypes.POINTER(_LayerArgs)]
    static.restype = ctypes.c_int32
    static.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64]
    value_range.restype = ctypes.c_int32
    value_range.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint64,
                            ctypes.c_uint64, ctypes.POINTER(ctypes.c_int64),
                            ctypes.POINTER(ctypes.c_int64)]
    return _Kernel(layer, static, value_range)


def kernel_available() -> bool:
    """True when the C neuron kernel of the host library can be used."""
    return _c_kernel() is not None


def _ptr(a: Optional[np.ndarray]) -> Optional[int]:
    return None if a is None else a.ctypes.data


# ---- the prepared model --------------------------------------------------------------------

@dataclass(frozen=True)
class _Proj:
    """One weight matrix, ready for the product (integer values in a float type that holds
    every partial sum exactly)."""

    mat: np.ndarray          # fan_in x fan_out, float32 or float64
    exp: int
    nnz: np.ndarray          # float64 per row: non-zero weights (SynOps per event)
    ints: np.ndarray         # int32 fan_in x fan_out (the rows the C kernel adds per event)
    trans8: Optional[np.ndarray]   # int8 fan_out x fan_in (its dot products), if weights fit
    trans16: Optional[np.ndarray]  # int16 fan_out x fan_in, otherwise (|w| <= 255)
    nnz32: np.ndarray        # uint32 per row, for the C kernel

    @staticmethod
    def of(w: Weights, bound: int) -> "_Proj":
        m = w.integer_matrix()
        worst = int(max(np.clip(m, 0, None).sum(axis=0).max(),
                        np.clip(-m, 0, None).sum(axis=0).max())) * int(bound)
        dtype = np.float32 if worst <= F32_EXACT else np.float64
        nnz = (m != 0).sum(axis=1)
        fits8 = m.size == 0 or (int(m.min()) >= -128 and int(m.max()) <= 127)
        return _Proj(mat=np.ascontiguousarray(m, dtype=dtype), exp=int(w.exp),
                     nnz=nnz.astype(np.float64), ints=np.ascontiguousarray(m, dtype=np.int32),
                     trans8=np.ascontiguousarray(m.T, dtype=np.int8) if fits8 else None,
                     trans16=None if fits8 else np.ascontiguousarray(m.T, dtype=np.int16),
                     nnz32=nnz.astype(np.uint32))


@dataclass(frozen=True)
class _Layer:
    size: int
    ff: _Proj
    rec: Optional[_Proj]
    du: int
    dv: int
    adapt_decay: int
    adapt_step: int
    refractory: int
    subtract: bool
    vth6: np.ndarray         # int32 per neuron: vth << 6
    bias: np.ndarray         # int32 per neuron: bias_mant << bias_exp


@dataclass(frozen=True)
class _InputSpec:
    """What the input check needs of a model (kept so a prepared model is not re-read)."""

    timesteps: int
    input_size: int
    input_kind: str
    input_max_abs: int


@dataclass
class BatchResult:
    """Everything a batch of inferences produced, as arrays over the batch.

    Attributes:
        predictions: ``(n,)`` int64, the index of the largest score (ties: the lowest).
        scores: ``(n, output_size)`` int64, meaning set by the model's decoding.
        counters: ``(n, layers, 4)`` int64: input events, SynOps, neuron updates, spikes
            (:data:`COUNTERS`; docs/SEMANTICS.md, "Counters").
        spikes: per layer ``(n, timesteps, size)`` uint8 rasters (None unless recorded).
        u, v, th: per layer ``(n, size)`` int32 final state (None unless recorded).
    """

    predictions: np.ndarray
    scores: np.ndarray
    counters: np.ndarray
    spikes: Optional[list[np.ndarray]] = None
    u: Optional[list[np.ndarray]] = None
    v: Optional[list[np.ndarray]] = None
    th: Optional[list[np.ndarray]] = None

    def __len__(self) -> int:
        return int(self.predictions.shape[0])

    def outputs(self) -> list[RunOutput]:
        """One :class:`RunOutput` per input, as :func:`edgespike.sim.reference.run_batch`
        returns them (rasters and states empty when they were not recorded)."""
        out = []
        c = self.counters.tolist()
        preds = self.predictions.tolist()
        rec = self.spikes is not None
        for b in range(len(self)):
            out.append(RunOutput(
                prediction=preds[b], scores=self.scores[b],
                spikes=[s[b] for s in self.spikes] if rec else [],
                u=[a[b] for a in self.u] if rec else [],
                v=[a[b] for a in self.v] if rec else [],
                th=[a[b] for a in self.th] if rec else [],
                counters=[LayerCounters(input_events=ce, synops=cs, neuron_updates=cn,
                                        spikes=cp) for ce, cs, cn, cp in c[b]],
            ))
        return out


class BatchSim:
    """A validated model prepared for batched, exact simulation on the host.

    Args:
        model: the quantized model; validated here (:class:`~edgespike.errors.ModelError`
            if it fails). The prepared form is a copy: changing ``model`` afterwards does not
            change what this object runs.
        threads: worker threads over chunks of a batch (1: the calling thread only).
        kernel: ``"c"`` (the host library's neuron update; :class:`ToolMissing` if not built),
            ``"numpy"``, or ``"auto"`` (C when built, else numpy).
    """

    def __init__(self, model: Model, threads: int = 1, kernel: Kernel = "auto") -> None:
        require_valid(model)
        if threads < 1:
            raise InputError(f"threads={threads}: give 1 or more")
        if kernel not in ("auto", "c", "numpy"):
            raise InputError(f"kernel={kernel!r}: choose 'auto', 'c' or 'numpy'")
        self.threads = int(threads)
        self._c = None if kernel == "numpy" else _c_kernel()
        if kernel == "c" and self._c is None:
            raise ToolMissing("the batched simulator's C kernel (es_host_lif_layer) is not in the "
                              "host library; build it with: bash firmware/build.sh")
        self.kernel = "c" if self._c is not None else "numpy"
        self._local = threading.local()
        self.spec = _InputSpec(int(model.timesteps), int(model.input_size),
                               str(model.input_kind), int(model.input_max_abs))
        self.decoding = str(model.decoding)
        self.layers: list[_Layer] = []
        for li, layer in enumerate(model.layers):
            bound = model.input_bound() if li == 0 else 1
            n = layer.neurons
            self.layers.append(_Layer(
                size=layer.size, ff=_Proj.of(layer.weights, bound),
                rec=_Proj.of(layer.recurrent, 1) if layer.recurrent is not None else None,
                du=int(n.du), dv=int(n.dv), adapt_decay=int(n.adapt_decay),
                adapt_step=int(n.adapt_step), refractory=int(n.refractory),
                subtract=n.reset == "subtract",
                vth6=(_per_neuron(n.vth, layer.size, "vth") << 6).astype(np.int32),
                bias=(_per_neuron(n.bias_mant, layer.size, "bias_mant") << n.bias_exp
                      ).astype(np.int32),
            ))
        t, f = self.spec.timesteps, self.spec.input_size
        sizes = sum(layer.size for layer in self.layers)
        # bytes per input, generously: the first layer's float operand and sums (float and
        # int32), every layer's raster, the states
        per_input = t * (8 * f + 17 * sizes) + 64 * sizes
        self.chunk = max(1, CHUNK_BYTES // max(1, per_input))

    @property
    def output_size(self) -> int:
        return self.layers[-1].size

    # ---- public entry points ----------------------------------------------------------------

    def check_input(self, inputs: Any) -> np.ndarray:
        """The input as exact integers ``(n, timesteps, input_size)`` (no copy of an integer
        array); :class:`InputError` exactly as :func:`edgespike.sim.reference.check_input`."""
        return self._checked(inputs)[0]

    def _checked(self, inputs: Any) -> tuple[np.ndarray, Optional[bool]]:
        """:meth:`check_input`, and whether the whole batch is static when that was found on
        the way (None: not looked at). A contiguous integer array of the right shape is
        accepted in one pass of the C kernel when every value is in range (for a static input:
        its first steps, which then hold every value); anything else, and anything out of
        range, goes through the exact check (:func:`~edgespike.sim.checks.model_input`), which
        accepts or refuses it exactly as the reference and says why."""
        x = as_array(inputs, "input")
        x = x[None] if x.ndim == 2 else x
        spec = self.spec
        kind = _RANGE_KINDS.get(x.dtype) if self._c is not None else None
        if (kind is None or x.ndim != 3 or x.shape[1:] != (spec.timesteps, spec.input_size)
                or x.size == 0):
            return model_input(spec, x), None
        n, t, f = x.shape
        lo, hi = ctypes.c_int64(), ctypes.c_int64()
        if x.strides[1] == 0 and x[:, :1].flags.c_contiguous:
            # a view repeating one step (np.broadcast_to, torch's expand): that step is all
            static = True
            self._c.range(x.ctypes.data, kind, n, f, x.strides[0] // x.itemsize,
                          ctypes.byref(lo), ctypes.byref(hi))
        elif x.flags.c_contiguous:
            static = None
            if spec.input_kind == "values":
                static = t == 1 or bool(self._c.static(x.ctypes.data, n, t, f * x.itemsize))
            rows, stride = (n, t * f) if static else (n * t, f)
            self._c.range(x.ctypes.data, kind, rows, f, stride, ctypes.byref(lo),
                          ctypes.byref(hi))
        else:
            return model_input(spec, x), None
        bound = 1 if spec.input_kind == "spikes" else spec.input_max_abs
        low = 0 if spec.input_kind == "spikes" else -bound
        if low <= lo.value and hi.value <= bound:
            return x, static if spec.input_kind == "values" else None
        return model_input(spec, x), None  # raises, saying which value and where

    def run(self, inputs: Any, record: bool = True, static: Optional[bool] = None
            ) -> BatchResult:
        """Run a batch ``(n, timesteps, input_size)`` (or one input) from reset state.

        Args:
            record: keep every layer's raster and final state (False: predictions, scores and
                counters only; less memory).
            static: direct-input models: the input is the same at every step, so the first
                layer's sums are computed once per input. None: detected per chunk; True:
                required (:class:`InputError` otherwise). The results are the same either way.
        """
        x, all_static = self._checked(inputs)
        known = all_static if static is None else None  # found by the check, for every chunk
        n, t = x.shape[0], self.spec.timesteps
        sizes = [layer.size for layer in self.layers]
        res = BatchResult(
            predictions=np.zeros(n, dtype=np.int64),
            scores=np.zeros((n, self.output_size), dtype=np.int64),
            counters=np.zeros((n, len(self.layers), 4), dtype=np.int64),
        )
        if record:  # every element is written by the chunks
            res.spikes = [np.empty((n, t, s), dtype=np.uint8) for s in sizes]
            res.u = [np.empty((n, s), dtype=np.int32) for s in sizes]
            res.v = [np.empty((n, s), dtype=np.int32) for s in sizes]
            res.th = [np.empty((n, s), dtype=np.int32) for s in sizes]
        if n == 0:
            return res
        chunk = self.chunk
        if self.threads > 1:
            chunk = min(chunk, -(-n // self.threads))
        bounds = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
        if self.threads > 1 and len(bounds) > 1:
            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                for f in [pool.submit(self._run_chunk, x, a, b, res, static, known)
                          for a, b in bounds]:
                    f.result()
        else:
            for a, b in bounds:
                self._run_chunk(x, a, b, res, static, known)
        res.predictions[:] = np.argmax(res.scores, axis=1)
        return res

    def run_batch(self, inputs: Any) -> list[RunOutput]:
        """As :func:`edgespike.sim.reference.run_batch`: one :class:`RunOutput` per input."""
        return self.run(inputs).outputs()

    def predict(self, inputs: Any) -> np.ndarray:
        """Predicted class per input of a batch, ``(n,)`` int64."""
        return self.run(inputs, record=False).predictions

    # ---- one chunk ----------------------------------------------------------------------------

    def _buffer(self, name: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A work array of this thread, kept between calls (a fresh large array costs page
        faults on every call); its contents are whatever the last user left."""
        store = self._local.__dict__.setdefault("buffers", {})
        buf = store.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            store[name] = buf
        return buf

    def _is_static(self, x: np.ndarray, static: Optional[bool]) -> bool:
        """Whether every input of ``x`` is the same at every step (direct-input models)."""
        if self.spec.input_kind != "values" or static is False:
            return False
        t = x.shape[1]
        if t == 1 or x.strides[1] == 0:  # one step, or a view repeating one step
            same = True
        elif self._c is not None and x.flags.c_contiguous:
            same = bool(self._c.static(x.ctypes.data, x.shape[0], t, x.shape[2] * x.itemsize))
        else:
            same = all(np.array_equal(x[:, s], x[:, 0]) for s in range(1, t))
        if static and not same:
            raise InputError("static=True, but the input changes between time steps")
        return same

    def _run_chunk(self, x_all: np.ndarray, a: int, b: int, res: BatchResult,
                   static: Optional[bool], known: Optional[bool] = None) -> None:
        """Inputs ``a..b-1``: every layer, written into ``res``'s rows ``a..b-1``. ``known``:
        whether the whole batch is static, when the input check found it."""
        x = x_all[a:b]
        n, t = x.shape[0], self.spec.timesteps
        is_static = known if known is not None else self._is_static(x, static)
        counters = res.counters[a:b]
        counters[:, :, 2] = [t * layer.size for layer in self.layers]
        record = res.spikes is not None
        spikes = self.spec.input_kind == "spikes"
        if spikes and self._c is not None:
            operand = np.ascontiguousarray(x, dtype=np.uint8)   # 0/1: checked
        elif is_static:
            operand = x[:, 0, :]
        else:
            operand = x.reshape(n * t, -1)
        counts = None
        last = len(self.layers) - 1
        for li, layer in enumerate(self.layers):
            size = layer.size
            want_vsum = li == last and self.decoding == "membrane_sum"
            if record:
                raster, u, v, th = (res.spikes[li][a:b], res.u[li][a:b], res.v[li][a:b],
                                    res.th[li][a:b])
            else:
                raster = self._buffer(("raster", li), (n, t, size), np.uint8)
                u, v, th = (self._buffer((key, li), (n, size), np.int32) for key in "uvt")
            vsum = self._buffer("vsum", (n, size), np.int64) if want_vsum else None
            by_events = self._c is not None and (li > 0 or spikes)
            if not by_events:
                # one exact product for the batch (and every step, unless static)
                if li == 0 and is_static:
                    nz = (operand != 0).astype(np.float64) * t
                elif li == 0:
                    nz = (x != 0).sum(axis=1, dtype=np.int64).astype(np.float64)
                else:
                    nz = counts.astype(np.float64)
                counters[:, li, 0] = nz.sum(axis=1).astype(np.int64)
                counters[:, li, 1] = (nz @ layer.ff.nnz).astype(np.int64)
                sums = np.matmul(operand.astype(layer.ff.mat.dtype, copy=False), layer.ff.mat)
                sums = sums.astype(np.int32)
            if self._c is not None:
                counts = self._buffer(("counts", li), (n, size), np.int32)
                ev = np.zeros(n, dtype=np.int64)
                ops = np.zeros(n, dtype=np.int64)
                if by_events:
                    kind, sums = _IN_SPIKES, None
                else:
                    kind = _IN_STATIC if li == 0 and is_static else _IN_SUMS
                    sums = np.ascontiguousarray(sums)
                self._lif_c(layer, n, kind, sums, operand if by_events else None,
                            raster, u, v, th, vsum, counts, ev, ops)
                counters[:, li, 0] += ev
                counters[:, li, 1] += ops
            else:
                _lif_numpy(layer, sums, n, t, li == 0 and is_static, raster, u, v, th, vsum)
                counts = raster.sum(axis=1, dtype=np.int64)
                if layer.rec is not None:
                    prev = (counts - raster[:, -1, :]).astype(np.float64)  # steps 0..T-2
                    counters[:, li, 0] += prev.sum(axis=1).astype(np.int64)
                    counters[:, li, 1] += (prev @ layer.rec.nnz).astype(np.int64)
            counters[:, li, 3] = counts.sum(axis=1)
            if li == last:
                self._decode(res.scores[a:b], raster, counts, v, vsum, t)
            elif self._c is not None:
                operand = raster
            else:
                operand = raster.reshape(n * t, size)

    def _decode(self, scores: np.ndarray, raster: np.ndarray, counts: np.ndarray,
                v: np.ndarray, vsum: Optional[np.ndarray], t: int) -> None:
        if self.decoding == "spike_count":
            scores[:] = counts
        elif self.decoding == "membrane_last":
            scores[:] = v
        elif self.decoding == "membrane_sum":
            scores[:] = vsum
        else:  # first_spike
            fired = counts > 0
            first = np.argmax(raster, axis=1)
            scores[:] = np.where(fired, t - first, 0)

    def _lif_c(self, layer: _Layer, n: int, kind: int, sums: Optional[np.ndarray],
               spikes_in: Optional[np.ndarray], raster: np.ndarray, u: np.ndarray,
               v: np.ndarray, th: np.ndarray, vsum: Optional[np.ndarray], counts: np.ndarray,
               events: np.ndarray, synops: np.ndarray) -> None:
        size = layer.size
        rec = layer.rec
        ref = self._buffer("ref", (size,), np.uint8) if layer.refractory else None
        acc = self._buffer("acc", (size,), np.int32) if kind == _IN_SPIKES else None
        acc_rec = self._buffer("acc_rec", (size,), np.int32) if rec is not None else None
        fan_in = layer.ff.ints.shape[0]
        idx = self._buffer("idx", (max(fan_in, size),), np.uint32) \
            if kind == _IN_SPIKES or rec is not None else None
        args = _LayerArgs(
            n=n, steps=self.spec.timesteps, size=size, fan_in=fan_in,
            in_kind=kind, in_sums=_ptr(sums), in_spikes=_ptr(spikes_in),
            w=_ptr(layer.ff.ints), wt8=_ptr(layer.ff.trans8), wt16=_ptr(layer.ff.trans16),
            w_nnz=_ptr(layer.ff.nnz32), w_exp=layer.ff.exp,
            rec=_ptr(rec.ints) if rec is not None else None,
            rec_t8=_ptr(rec.trans8) if rec is not None else None,
            rec_t16=_ptr(rec.trans16) if rec is not None else None,
            rec_nnz=_ptr(rec.nnz32) if rec is not None else None,
            rec_exp=rec.exp if rec is not None else 0,
            du=layer.du, dv=layer.dv, adapt_decay=layer.adapt_decay,
            adapt_step6=layer.adapt_step << 6, refractory=layer.refractory,
            reset_subtract=int(layer.subtract), vth6=_ptr(layer.vth6), bias=_ptr(layer.bias),
            spikes=_ptr(raster), u=_ptr(u), v=_ptr(v), th=_ptr(th), vsum=_ptr(vsum),
            counts=_ptr(counts), events=_ptr(events), synops=_ptr(synops), ref=_ptr(ref),
            acc=_ptr(acc), acc_rec=_ptr(acc_rec), idx=_ptr(idx),
        )
        if self._c.layer(ctypes.byref(args)) != 0:
            raise RuntimeError("es_host_lif_layer refused its arguments (a bug in batch.py)")


# ---- the numpy neuron update (no host library) -----------------------------------------------

def _shift(a: np.ndarray, e: int) -> np.ndarray:
    return a << e if e >= 0 else a >> (-e)


def _decay(x: np.ndarray, d: int) -> np.ndarray:
    if d == 0:
        return x
    if d == 4096:
        return np.zeros_like(x)
    p = x * (4096 - d)
    return np.sign(p) * (np.abs(p) >> 12)


def _lif_numpy(layer: _Layer, sums: np.ndarray, n: int, t: int, static: bool,
               raster: np.ndarray, u_out: np.ndarray, v_out: np.ndarray, th_out: np.ndarray,
               vsum_out: Optional[np.ndarray]) -> None:
    """The neuron update of docs/SEMANTICS.md vectorised over the batch, step by step; writes
    the raster, the final states and (if given) the sum of v over the steps."""
    size = layer.size
    ff = _shift(sums.astype(np.int64).reshape(n, 1 if static else t, size), layer.ff.exp)
    u = np.zeros((n, size), dtype=np.int64)
    v = np.zeros_like(u)
    th = np.zeros_like(u)
    ref = np.zeros_like(u)
    prev = np.zeros_like(u)
    vsum = np.zeros_like(u) if vsum_out is not None else None
    vth6, bias = layer.vth6.astype(np.int64), layer.bias.astype(np.int64)
    for step in range(t):
        a_in = ff[:, 0 if static else step, :]
        if layer.rec is not None:
            rec = np.matmul(prev.astype(layer.rec.mat.dtype), layer.rec.mat).astype(np.int64)
            a_in = a_in + _shift(rec, layer.rec.exp)
        uu = _decay(u, layer.du) + (a_in << 6)
        uu = np.where(uu > _MAX24, uu - 2 * _MAX24, uu)
        u = np.where(uu <= -_MAX24, uu + 2 * _MAX24, uu)
        active = ref == 0
        v_new = np.clip(_decay(v, layer.dv) + u + bias, -_MAX24 + 1, _MAX24 - 1)
        theta = vth6 + th
        spike = active & (v_new > theta)
        vv = np.where(active, v_new, v)
        v = np.where(spike, vv - theta if layer.subtract else 0, vv)
        if layer.refractory:
            ref = np.where(active, np.where(spike, layer.refractory, 0), ref - 1)
        if layer.adapt_step:
            th = _decay(th, layer.adapt_decay) + spike * (layer.adapt_step << 6)
        prev = spike.astype(np.int64)
        raster[:, step, :] = spike
        if vsum is not None:
            vsum += v
    u_out[:], v_out[:], th_out[:] = u, v, th
    if vsum_out is not None:
        vsum_out[:] = vsum


# ---- module-level functions (prepared models cached by content) -------------------------------

_CACHE_MAX = 8  # each keeps its work buffers (up to about CHUNK_BYTES per thread)
_cache: "OrderedDict[tuple, BatchSim]" = OrderedDict()
_cache_lock = threading.Lock()


def prepared(model: Model, threads: int = 1, kernel: Kernel = "auto") -> BatchSim:
    """A :class:`BatchSim` for ``model``, reused while the model's content is unchanged (a
    model changed in place is validated and prepared again)."""
    key = fingerprint(model)
    if key is None:
        return BatchSim(model, threads, kernel)
    full = (key, threads, kernel)
    with _cache_lock:
        sim = _cache.get(full)
        if sim is not None:
            _cache.move_to_end(full)
            return sim
    sim = BatchSim(model, threads, kernel)
    with _cache_lock:
        _cache[full] = sim
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return sim


def run_batch(model: Model, inputs: Any, *, threads: int = 1) -> list[RunOutput]:
    """Run a batch (``n x timesteps x input_size``) from reset state: one :class:`RunOutput` per
    input, bit-identical to :func:`edgespike.sim.reference.run_batch`.

    Raises :class:`~edgespike.errors.ModelError` / :class:`InputError` exactly as the reference.
    """
    return prepared(model, threads).run_batch(inputs)


def run(model: Model, x: Any) -> RunOutput:
    """Run one inference (``timesteps x input_size``) from reset state."""
    sim = prepared(model)
    x = as_array(x, "input")
    if x.ndim != 2:
        raise InputError(f"run takes one input (timesteps, input_size), got shape {x.shape}; "
                         "use run_batch for a batch")
    return sim.run_batch(x[None])[0]


def predict(model: Model, inputs: Any, *, threads: int = 1) -> np.ndarray:
    """Predicted class per input of a batch (``n x timesteps x input_size``), int64."""
    return prepared(model, threads).predict(inputs)


def available() -> bool:
    """Always True: without the host library the neuron update runs in numpy."""
    return True


__all__: Sequence[str] = ("BatchResult", "BatchSim", "COUNTERS", "available", "kernel_available",
                          "predict", "prepared", "run", "run_batch")
