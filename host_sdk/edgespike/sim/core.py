"""The C core (``firmware/core``) on the host, through ctypes.

Same interface as :mod:`edgespike.sim.reference` (``run``, ``run_batch``, ``predict``), and
bit-identical results: it is how the SDK runs a model fast on the host and how tests check
that the C engine, compiled for the host, matches the numpy reference.

The library is ``build/host/libedgespike_host.so`` (see :func:`edgespike.paths.host_library`);
build it with ``bash firmware/build.sh``. Its entry points are documented in
``firmware/core/es_runner.h``; through ``es_parse_blob`` / ``es_run_parsed`` a
:class:`CoreModel` parses and checks its blob once and runs batches on the parsed model, on several threads if asked (each with its own arena;
the C call releases the GIL). The module functions reuse a :class:`CoreModel` while the
model's content is unchanged.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgespike import paths
from edgespike.errors import (
    BlobError,
    EdgeSpikeError,
    InputError,
    ModelError,
    ModelTooLarge,
    ToolMissing,
)
from edgespike.model import blob as blob_mod
from edgespike.model.quantized import Model
from edgespike.sim.checks import (INT32_MAX, INT32_MIN, UINT32_MAX, as_array, exact_integers,
                                  fingerprint)
from edgespike.sim.reference import LayerCounters, RunOutput

log = logging.getLogger(__name__)

#: es_status_t codes (the protocol's ErrorCode numbers) that matter here.
ES_OK = 0
ES_ERR_DECODE = 4
ES_ERR_MODEL_TOO_LARGE = 7
ES_ERR_MODEL_INVALID = 8
ES_ERR_MODEL_CRC = 9
ES_ERR_BAD_INPUT = 13
ES_ERR_UNSUPPORTED = 14

#: es_runner.h input flag: values hold one step, used at every step of the inference.
ES_INPUT_STATIC = 1
_COUNTERS = 5  # uint64 per layer: input_events, synops, neuron_updates, spikes, cycles
_ERR_LEN = 256
_DECODINGS = ("spike_count", "membrane_last", "membrane_sum", "first_spike")
#: Inputs per C call when rasters are recorded (bounds the host memory of one call).
_CHUNK = 256

_u8p = ctypes.POINTER(ctypes.c_uint8)
_u32p = ctypes.POINTER(ctypes.c_uint32)
_i32p = ctypes.POINTER(ctypes.c_int32)
_i64p = ctypes.POINTER(ctypes.c_int64)
_u64p = ctypes.POINTER(ctypes.c_uint64)


@functools.lru_cache(maxsize=None)
def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.es_core_version.restype = ctypes.c_uint32
    lib.es_core_version.argtypes = []
    lib.es_blob_info.restype = ctypes.c_int32
    lib.es_blob_info.argtypes = [ctypes.c_char_p, ctypes.c_uint32, _u32p, ctypes.c_uint32]
    lib.es_arena_bytes_for_blob.restype = ctypes.c_uint32
    lib.es_arena_bytes_for_blob.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
    lib.es_run_batch.restype = ctypes.c_int32
    lib.es_run_batch.argtypes = [
        ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,     # blob, len, n_inputs
        _u32p, _u32p, _i32p, ctypes.c_uint32,                  # events, offsets, values, flags
        ctypes.c_void_p, ctypes.c_uint32,                      # arena
        _i64p, _i32p, _u64p,                                   # scores, predictions, counters
        _u8p, _i32p, _i32p, _i32p,                             # rasters, u, v, th
        _u64p, ctypes.c_void_p, ctypes.c_void_p,               # cycles, cycle_fn, ctx
        _u32p, ctypes.c_char_p, ctypes.c_uint32,               # failed_input, err_text, len
    ]
    lib.es_run_blob.restype = ctypes.c_int32
    lib.es_run_blob.argtypes = [
        ctypes.c_char_p, ctypes.c_uint32,                      # blob, len
        _u32p, ctypes.c_uint32, _i32p, ctypes.c_uint32,        # events, values
        ctypes.c_uint32,                                       # input flags
        ctypes.c_void_p, ctypes.c_uint32,                      # arena
        _i64p, _i32p, _u64p,                                   # scores, prediction, counters
        _u8p, _i32p, _i32p, _i32p,                             # raster, u, v, th
        _u64p, ctypes.c_void_p, ctypes.c_void_p,               # cycles, cycle_fn, ctx
        ctypes.c_char_p, ctypes.c_uint32,                      # err_text, len
    ]
    if hasattr(lib, "es_run_parsed"):  # es_runner.h: parse once, run many
        lib.es_parsed_model_bytes.restype = ctypes.c_size_t
        lib.es_parsed_model_bytes.argtypes = []
        lib.es_parse_blob.restype = ctypes.c_int32
        lib.es_parse_blob.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint32,
            ctypes.c_char_p, ctypes.c_uint32,
        ]
        lib.es_run_parsed.restype = ctypes.c_int32
        lib.es_run_parsed.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32,                  # parsed model, n_inputs
            _u32p, _u32p, _i32p, ctypes.c_uint32,              # events, offsets, values, flags
            ctypes.c_void_p, ctypes.c_uint32,                  # arena
            _i64p, _i32p, _u64p,                               # scores, predictions, counters
            _u8p, _i32p, _i32p, _i32p,                         # rasters, u, v, th
            _u64p, ctypes.c_void_p, ctypes.c_void_p,           # cycles, cycle_fn, ctx
            _u32p, ctypes.c_char_p, ctypes.c_uint32,           # failed_input, err_text, len
        ]
    return lib


def library(path: Optional[Path] = None) -> ctypes.CDLL:
    """The loaded host library; raises :class:`ToolMissing` with the build command."""
    lib_path = Path(path) if path is not None else paths.host_library()
    try:
        return _load(str(lib_path))
    except OSError as exc:
        raise ToolMissing(f"cannot load the host C library {lib_path} ({exc}); rebuild it with: "
                          "bash firmware/build.sh") from exc


def _ptr(arr: Optional[np.ndarray], ptype):
    return None if arr is None else arr.ctypes.data_as(ptype)


def raise_for_status(code: int, text: str) -> None:
    """Turn a C status into the SDK's named exception (nothing for ES_OK)."""
    if code == ES_OK:
        return
    msg = f"C core: {text}" if text else f"C core: error code {code}"
    if code == ES_ERR_BAD_INPUT:
        raise InputError(msg)
    if code == ES_ERR_MODEL_TOO_LARGE:
        raise ModelTooLarge(msg)
    if code in (ES_ERR_MODEL_CRC, ES_ERR_DECODE, ES_ERR_MODEL_INVALID, ES_ERR_UNSUPPORTED):
        raise BlobError(msg)
    raise EdgeSpikeError(msg)


@dataclass(frozen=True)
class BlobInfo:
    """What the C core read from a blob (sizes in neurons, arena in bytes)."""

    input_size: int
    input_kind: str
    timesteps: int
    decoding: str
    layer_sizes: tuple[int, ...]
    arena_bytes: int

    @property
    def neurons(self) -> int:
        return sum(self.layer_sizes)

    @property
    def output_size(self) -> int:
        return self.layer_sizes[-1]


class CoreModel:
    """A model blob bound to the C core: parse once, run many inputs.

    Args:
        model_or_blob: a :class:`Model` (serialized here) or blob bytes as written by
            :func:`edgespike.model.blob.to_bytes`.
        lib_path: the shared library; default :func:`edgespike.paths.host_library`.

    Raises:
        BlobError: the C core rejected the blob (its text says why).
        ToolMissing: the library is not built.
    """

    def __init__(self, model_or_blob: Model | bytes, lib_path: Optional[Path] = None,
                 threads: int = 1) -> None:
        self.lib = library(lib_path)
        self.blob = bytes(model_or_blob) if isinstance(model_or_blob, (bytes, bytearray)) \
            else blob_mod.to_bytes(model_or_blob)
        self.info = self._read_info()
        # int64 backing store keeps the arena 8-byte aligned, as es_engine_init requires
        self._arena = np.zeros((self.info.arena_bytes + 7) // 8, dtype=np.int64)
        self.threads = max(1, int(threads))
        self._parsed = self._parse_once()

    def _parse_once(self) -> Optional[np.ndarray]:
        """The blob parsed and checked once (es_parse_blob), or None when the library predates
        that entry point (then every batch parses it again, through es_run_batch)."""
        if not hasattr(self.lib, "es_run_parsed"):
            return None
        parsed = np.zeros((int(self.lib.es_parsed_model_bytes()) + 7) // 8, dtype=np.int64)
        err = ctypes.create_string_buffer(_ERR_LEN)
        code = self.lib.es_parse_blob(parsed.ctypes.data, parsed.nbytes, self.blob,
                                      len(self.blob), err, _ERR_LEN)
        raise_for_status(code, err.value.decode("utf-8", "replace"))
        return parsed  # points into self.blob, which lives as long as self

    def _run_parsed(self, n: int, events, offsets, values, out: dict, flags: int) -> None:
        """Inputs 0..n-1 on the parsed model, split over ``self.threads`` threads (each with
        its own arena; outputs written in place)."""
        per_values = 0
        if values is not None:
            per_values = values.size // max(1, n)
        parts = self.threads if n >= 2 * self.threads else 1
        bounds = np.linspace(0, n, parts + 1).astype(np.int64)
        arenas = [self._arena] + [np.zeros_like(self._arena) for _ in range(parts - 1)]

        def view(key: str, a: int, ptype):
            arr = out.get(key)
            return None if arr is None else arr[a:].ctypes.data_as(ptype)

        def part(i: int) -> tuple[int, str, int]:
            a, b = int(bounds[i]), int(bounds[i + 1])
            failed = ctypes.c_uint32(0)
            err = ctypes.create_string_buffer(_ERR_LEN)
            code = self.lib.es_run_parsed(
                self._parsed.ctypes.data, b - a, _ptr(events, _u32p),
                None if offsets is None else offsets[a:].ctypes.data_as(_u32p),
                None if values is None else values[a * per_values:].ctypes.data_as(_i32p),
                flags, arenas[i].ctypes.data, arenas[i].nbytes,
                view("scores", a, _i64p), view("pred", a, _i32p), view("counters", a, _u64p),
                view("raster", a, _u8p), view("u", a, _i32p), view("v", a, _i32p),
                view("th", a, _i32p), None, None, None, ctypes.byref(failed), err, _ERR_LEN)
            return code, err.value.decode("utf-8", "replace"), a + int(failed.value)

        if parts == 1:
            results = [part(0)]
        else:
            with ThreadPoolExecutor(max_workers=parts) as pool:
                results = list(pool.map(part, range(parts)))
        for code, text, failed in results:
            if code != ES_OK:
                raise_for_status(code, f"input {failed}: {text}" if n > 1 else text)

    def _read_info(self) -> BlobInfo:
        buf = np.zeros(7 + 64, dtype=np.uint32)
        code = self.lib.es_blob_info(self.blob, len(self.blob), _ptr(buf, _u32p), buf.size)
        if code != ES_OK:
            # run an empty batch to get the C text of the rejection
            self._run_raw(0, None, None, None, None)
            raise_for_status(code, "")
        n_layers = int(buf[4])
        return BlobInfo(
            input_size=int(buf[0]), input_kind="values" if buf[1] else "spikes",
            timesteps=int(buf[2]), decoding=_DECODINGS[int(buf[3])],
            layer_sizes=tuple(int(s) for s in buf[7:7 + n_layers]), arena_bytes=int(buf[5]),
        )

    def _run_raw(self, n: int, events, offsets, values, outputs, flags: int = 0) -> None:
        """One es_run_batch call; outputs: dict of numpy buffers (or None to parse only);
        flags: ``ES_INPUT_STATIC`` when ``values`` hold one step per input."""
        out = outputs or {}
        arena = getattr(self, "_arena", None)
        failed = ctypes.c_uint32(0)
        err = ctypes.create_string_buffer(_ERR_LEN)
        dummy_scores = np.zeros(1, dtype=np.int64)
        code = self.lib.es_run_batch(
            self.blob, len(self.blob), n,
            _ptr(events, _u32p), _ptr(offsets, _u32p), _ptr(values, _i32p), flags,
            None if arena is None else arena.ctypes.data_as(ctypes.c_void_p),
            0 if arena is None else arena.nbytes,
            _ptr(out.get("scores", dummy_scores), _i64p), _ptr(out.get("pred"), _i32p),
            _ptr(out.get("counters"), _u64p), _ptr(out.get("raster"), _u8p),
            _ptr(out.get("u"), _i32p), _ptr(out.get("v"), _i32p), _ptr(out.get("th"), _i32p),
            None, None, None, ctypes.byref(failed), err, _ERR_LEN,
        )
        text = err.value.decode("utf-8", "replace")
        if code != ES_OK and n > 1 and failed.value < n:
            text = f"input {failed.value}: {text}"
        raise_for_status(code, text)

    # ---- inputs -----------------------------------------------------------------------------

    def _check_shape(self, inputs: np.ndarray) -> np.ndarray:
        """Inputs as exact integers, ``(n, timesteps, input_size)``: 0/1 for spike models, within
        int32 for values (the C core checks input_max_abs); never wrapped or truncated."""
        x = as_array(inputs, "input")
        shape = (self.info.timesteps, self.info.input_size)
        if x.ndim not in (2, 3) or x.shape[-2:] != shape:
            raise InputError(f"input shape {x.shape}; the model takes (..., {shape[0]}, "
                             f"{shape[1]}) (timesteps, input_size)")
        axes = ("input", "step", "index")
        if self.info.input_kind == "spikes":
            x = exact_integers(x, lo=0, hi=1, axes=axes, rule="spike input must be 0 or 1")
        else:
            x = exact_integers(x, lo=INT32_MIN, hi=INT32_MAX, axes=axes,
                               rule="direct-encoded values must fit int32 (and the model's "
                                    "input_max_abs); rescale or clip the input")
        return x[None] if x.ndim == 2 else x

    def _events_of(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact 0/1 inputs (from :meth:`_check_shape`) as sorted events and offsets."""
        b, t, i = np.nonzero(x)  # row-major: sorted by input, then step, then index
        events = ((t.astype(np.uint32) << 16) | i.astype(np.uint32)).astype(np.uint32)
        offsets = np.zeros(x.shape[0] + 1, dtype=np.uint32)
        np.cumsum(np.bincount(b, minlength=x.shape[0]), out=offsets[1:])
        return events, offsets

    def _values_of(self, x: np.ndarray) -> np.ndarray:
        """Exact int32-range inputs (from :meth:`_check_shape`) as contiguous int32."""
        return np.ascontiguousarray(x, dtype=np.int32)

    # ---- running ----------------------------------------------------------------------------

    def run_events(self, events: np.ndarray) -> RunOutput:
        """Run one spike input given as events ``(step << 16) | index`` (uint32). Python only
        checks that every code is exactly an integer in 0..2^32-1 (floats are refused); the C
        core validates them (sorted, in range) and raises :class:`InputError`. Uses the
        single-input entry point ``es_run_blob``."""
        ev = as_array(events, "events")
        if ev.ndim != 1:
            raise InputError(f"events must be a 1-D array of codes (step << 16) | index, got "
                             f"shape {ev.shape}")
        ev = exact_integers(ev, what="events", lo=0,
                            hi=UINT32_MAX, allow_float=False,
                            rule="event codes are (step << 16) | index, in 0..2^32-1",
                            float_hint="events are integer codes (step << 16) | index")
        return self._run_single(np.ascontiguousarray(ev, dtype=np.uint32), None)

    def run_values(self, values: np.ndarray, static: bool = False) -> RunOutput:
        """Run one direct-encoded input given as flat int32 values (exact integers within int32
        checked here; count and input_max_abs checked by the C core, through ``es_run_blob``).
        ``static``: the values are one step (``input_size`` of them), the same at every step."""
        vals = exact_integers(as_array(values, "input").ravel(), lo=INT32_MIN, hi=INT32_MAX,
                              rule="direct-encoded values must fit int32 (and the model's "
                                   "input_max_abs); rescale or clip the input")
        return self._run_single(None, np.ascontiguousarray(vals, dtype=np.int32),
                                ES_INPUT_STATIC if static else 0)

    def _run_single(self, events: Optional[np.ndarray], values: Optional[np.ndarray],
                    flags: int = 0) -> RunOutput:
        info = self.info
        n_layers, neurons, steps = len(info.layer_sizes), info.neurons, info.timesteps
        out = {
            "scores": np.zeros((1, info.output_size), dtype=np.int64),
            "pred": np.zeros(1, dtype=np.int32),
            "counters": np.zeros((1, n_layers, _COUNTERS), dtype=np.uint64),
            "raster": np.zeros((1, steps * neurons), dtype=np.uint8),
        }
        for key in ("u", "v", "th"):
            out[key] = np.zeros((1, neurons), dtype=np.int32)
        err = ctypes.create_string_buffer(_ERR_LEN)
        code = self.lib.es_run_blob(
            self.blob, len(self.blob),
            _ptr(events, _u32p), 0 if events is None else events.size,
            _ptr(values, _i32p), 0 if values is None else values.size, flags,
            self._arena.ctypes.data_as(ctypes.c_void_p), self._arena.nbytes,
            _ptr(out["scores"], _i64p), _ptr(out["pred"], _i32p), _ptr(out["counters"], _u64p),
            _ptr(out["raster"], _u8p), _ptr(out["u"], _i32p), _ptr(out["v"], _i32p),
            _ptr(out["th"], _i32p), None, None, None, err, _ERR_LEN,
        )
        raise_for_status(code, err.value.decode("utf-8", "replace"))
        return self._unpack(1, out, record=True)[0]

    def run_batch(self, inputs: np.ndarray, record: bool = True,
                  static: Optional[bool] = None) -> list[RunOutput]:
        """Run a batch (``batch x timesteps x input_size``, or one input) from reset state.

        With ``record=False`` the rasters and final states are left empty (faster, less memory).
        ``static`` (direct-input models): send one step per input and let the core compute the
        first layer once per inference; ``None`` does so when every input is the same at every
        step, ``True`` requires it. The results are the same either way.
        """
        x = self._check_shape(inputs)
        results: list[RunOutput] = []
        step = _CHUNK if record else max(1, x.shape[0])
        for start in range(0, x.shape[0], step):
            part = x[start:start + step]
            if self.info.input_kind == "spikes":
                events, offsets = self._events_of(part)
                results.extend(self._run(part.shape[0], events, offsets, None, record))
                continue
            values = self._values_of(part)
            same = bool(np.array_equal(values, np.broadcast_to(values[:, :1], values.shape)))
            if static and not same:
                raise InputError("static=True, but the input changes between time steps")
            if static or (static is None and same):
                results.extend(self._run(part.shape[0], None, None,
                                         np.ascontiguousarray(values[:, 0]).reshape(-1), record,
                                         ES_INPUT_STATIC))
            else:
                results.extend(self._run(part.shape[0], None, None, values.reshape(-1), record))
        return results

    def run(self, x: np.ndarray) -> RunOutput:
        """Run one inference (``timesteps x input_size``)."""
        x = as_array(x, "input")
        if x.ndim != 2:
            raise InputError(f"run takes one input (timesteps, input_size), got shape {x.shape}; "
                             "use run_batch for a batch")
        return self.run_batch(x[None])[0]

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Predicted class per input of a batch."""
        return np.array([r.prediction for r in self.run_batch(inputs, record=False)],
                        dtype=np.int64)

    def _run(self, n: int, events, offsets, values, record: bool,
             flags: int = 0) -> list[RunOutput]:
        info = self.info
        n_layers, neurons, steps = len(info.layer_sizes), info.neurons, info.timesteps
        out = {
            "scores": np.zeros((n, info.output_size), dtype=np.int64),
            "pred": np.zeros(n, dtype=np.int32),
            "counters": np.zeros((n, n_layers, _COUNTERS), dtype=np.uint64),
        }
        if record:
            out["raster"] = np.zeros((n, steps * neurons), dtype=np.uint8)
            for key in ("u", "v", "th"):
                out[key] = np.zeros((n, neurons), dtype=np.int32)
        if self._parsed is not None and n > 0:
            self._run_parsed(n, events, offsets, values, out, flags)
        else:
            self._run_raw(n, events, offsets, values, out, flags)
        return self._unpack(n, out, record)

    def _unpack(self, n: int, out: dict, record: bool) -> list[RunOutput]:
        info = self.info
        n_layers, steps = len(info.layer_sizes), info.timesteps
        bounds = np.cumsum((0,) + info.layer_sizes)
        results = []
        for b in range(n):
            spikes, u, v, th = [], [], [], []
            if record:
                for li, size in enumerate(info.layer_sizes):
                    lo, hi = bounds[li], bounds[li + 1]
                    spikes.append(out["raster"][b, steps * lo:steps * hi].reshape(steps, size))
                    u.append(out["u"][b, lo:hi])
                    v.append(out["v"][b, lo:hi])
                    th.append(out["th"][b, lo:hi])
            c = out["counters"][b]
            counters = [LayerCounters(input_events=int(c[li, 0]), synops=int(c[li, 1]),
                                      neuron_updates=int(c[li, 2]), spikes=int(c[li, 3]),
                                      cycles=int(c[li, 4])) for li in range(n_layers)]
            results.append(RunOutput(prediction=int(out["pred"][b]), scores=out["scores"][b],
                                     spikes=spikes, u=u, v=v, th=th, counters=counters))
        return results


_CACHE_MAX = 16
_cache: "OrderedDict[tuple, CoreModel]" = OrderedDict()
_cache_lock = threading.Lock()


def core_model(model: Model, threads: int = 1) -> CoreModel:
    """A :class:`CoreModel` for ``model``, reused while its content is unchanged: the model is
    validated and serialized, and the blob parsed, once (a model changed in place gets a new
    one, validated again)."""
    lib_path = paths.host_library()  # ToolMissing when it is not built (any more)
    key = fingerprint(model)
    if key is None:
        return CoreModel(model, lib_path, threads=threads)
    full = (key, threads, str(lib_path))
    with _cache_lock:
        cm = _cache.get(full)
        if cm is not None:
            _cache.move_to_end(full)
            return cm
    cm = CoreModel(model, lib_path, threads=threads)
    with _cache_lock:
        _cache[full] = cm
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return cm


def run_batch(model: Model, inputs: np.ndarray, *, threads: int = 1) -> list[RunOutput]:
    """Run a batch of inferences (``batch x timesteps x input_size``) in the C core."""
    return core_model(model, threads).run_batch(inputs)


def run(model: Model, x: np.ndarray) -> RunOutput:
    """Run one inference (``timesteps x input_size``) in the C core."""
    return core_model(model).run(x)


def predict(model: Model, inputs: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """Predicted class per input of a batch, from the C core."""
    return core_model(model, threads).predict(inputs)


def arena_bytes(model_or_blob: Model | bytes, lib_path: Optional[Path] = None) -> int:
    """Bytes of state (arena) the C core needs for a model: ``es_engine_arena_bytes``."""
    return CoreModel(model_or_blob, lib_path).info.arena_bytes


__all__: Sequence[str] = ("CoreModel", "BlobInfo", "run", "run_batch", "predict", "arena_bytes",
                          "core_model", "library", "raise_for_status", "ModelError")
