"""Exact checks of what a simulator, back-end or device is given: integer inputs and models.

No input is ever wrapped, truncated or rounded on its way to a model (docs/SEMANTICS.md,
"Inputs"): :func:`exact_integers` takes any array-like and returns its values as integers
only if every one of them is exactly an integer within the allowed range, else raises
:class:`~edgespike.errors.InputError` naming the first offending value, where it is, and what
to change. Accepted: bool, signed and unsigned integer dtypes, float arrays whose values are
all finite and integral (``1.0`` is taken as ``1``: the conversion is exact and unambiguous),
object arrays and Python lists of ints (any size: a big int is compared exactly, never
wrapped). Refused: non-integral or non-finite floats, complex, strings, anything else.

:func:`require_valid` runs :meth:`Model.validate` once per distinct model *content*: the
content (every field, every array's bytes) is hashed on each call and remembered when it
validated, so an unchanged model is not re-validated while a model mutated after validation
is validated again before it runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Optional, Sequence

import numpy as np

from edgespike.errors import InputError

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
UINT32_MAX = (1 << 32) - 1

#: What to do with non-integer model inputs.
QUANTIZE_HINT = "quantize it first, e.g. with QuantizedSNN.integer_input"

_FLOAT_EXACT = 1 << 53  # beyond this a float64 made from a Python int may have been rounded


def _where(index: tuple[int, ...], axes: Optional[Sequence[str]]) -> str:
    """``index`` as ``"input 0, step 2, index 1"`` (trailing axes named) or ``"[0, 2, 1]"``."""
    if not index:
        return "(scalar)"
    if axes:
        names = list(axes)[-len(index):] if len(index) <= len(axes) else None
        if names is not None and len(names) == len(index):
            return ", ".join(f"{n} {i}" for n, i in zip(names, index))
    return "[" + ", ".join(str(i) for i in index) + "]"


def _first(mask: np.ndarray) -> tuple[int, ...]:
    flat = int(np.flatnonzero(mask.ravel())[0])
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def as_array(x: Any, what: str = "input") -> np.ndarray:
    """``np.asarray(x)`` with ragged or otherwise unconvertible input as :class:`InputError`.

    A Python list whose ints became float64 beyond 2^53 (numpy promotes ``[-1, 2**63]`` to
    float) is rebuilt as an object array so that every value is compared exactly.
    """
    if isinstance(x, np.ndarray):
        return x
    try:
        a = np.asarray(x)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{what} is not a rectangular array of numbers ({exc}); pass a numpy "
                         "array of integers") from exc
    if a.dtype.kind == "f" and a.size and np.isfinite(a).all() \
            and float(np.abs(a).max()) >= _FLOAT_EXACT:
        a = np.asarray(x, dtype=object)
    return a


def _python_int(e: Any) -> Optional[int]:
    """The exact integer value of one object-array element, or None if it is not one."""
    if isinstance(e, (bool, np.bool_)):
        return int(e)
    if isinstance(e, (int, np.integer)):
        return int(e)
    if isinstance(e, (float, np.floating)):
        if np.isfinite(e) and e == np.trunc(e):
            return int(e)
    return None


def exact_integers(x: Any, *, what: str = "input", lo: int = INT64_MIN, hi: int = INT64_MAX,
                   rule: str = "", axes: Optional[Sequence[str]] = None,
                   allow_float: bool = True, float_hint: str = QUANTIZE_HINT) -> np.ndarray:
    """``x`` as an integer array whose every value is exactly the given one, in ``lo..hi``.

    Args:
        what: what ``x`` is, for messages ("input", "stream row"...).
        lo, hi: inclusive bounds, within int64.
        rule: the range rule and how to meet it, for messages (default ``"keep values in
            lo..hi"``).
        axes: names of the trailing axes (``("step", "index")``) to say where a bad value is.
        allow_float: accept integral finite floats (False: any float dtype is refused, for
            packed codes such as events).
        float_hint: what to do about non-integer values.

    Returns:
        An integer (or bool) array of ``x``'s shape: the original array if it already has an
        integer or bool dtype, else a new int64 array. Every value is within ``lo..hi``, so it
        converts to int64 (and any narrower type that holds ``lo..hi``) exactly.

    Raises:
        InputError: a value that is not an integer (NaN, inf, 0.5, a string...), or outside
            ``lo..hi`` (including anything beyond int64, which is never wrapped).
    """
    assert INT64_MIN <= lo <= hi <= INT64_MAX
    a = as_array(x, what)
    rule = rule or f"keep values in {lo}..{hi}"
    kind = a.dtype.kind

    def not_integer(index: tuple[int, ...], value: Any) -> InputError:
        return InputError(f"{what} must hold integers ({float_hint}): {value!r} at "
                          f"{_where(index, axes)} is not one")

    def out_of_range(index: tuple[int, ...], value: Any) -> InputError:
        return InputError(f"{what} value {value} at {_where(index, axes)} is out of range: "
                          f"{rule}")

    if kind == "O":
        vals: list[int] = []
        for k, e in enumerate(a.ravel()):
            v = _python_int(e)
            if v is None or (not allow_float and isinstance(e, (float, np.floating))):
                raise not_integer(_index(k, a.shape), e)
            if not lo <= v <= hi:
                raise out_of_range(_index(k, a.shape), v)
            vals.append(v)
        return np.array(vals, dtype=np.int64).reshape(a.shape)
    if kind == "f":
        if not allow_float and a.size:
            raise InputError(f"{what} must be an integer array, got {a.dtype} ({float_hint})")
        if a.size:
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(a) | (a != np.trunc(a))
            if bad.any():
                idx = _first(bad)
                raise not_integer(idx, a[idx].item() if a.dtype.itemsize <= 8 else a[idx])
            mn, mx = float(a.min()), float(a.max())  # Python compares float and int exactly
            if mn < lo or mx > hi:
                wide = a.astype(np.float64) if a.dtype.itemsize < 8 else a  # float16: no overflow
                bad = (wide < float(lo)) | (wide > float(hi))
                if not bad.any():  # only the float rounding of lo or hi hid it
                    bad = wide == (float(lo) if mn < lo else float(hi))
                idx = _first(bad)
                v = float(a[idx])
                raise out_of_range(idx, int(v) if abs(v) < 1e20 else repr(v))
        return a.astype(np.int64)
    if kind in "iu":
        if a.size:
            mn, mx = int(a.min()), int(a.max())
            if mn < lo or mx > hi:
                info = np.iinfo(a.dtype)
                lo_c, hi_c = max(lo, info.min), min(hi, info.max)
                bad = (a < a.dtype.type(lo_c)) | (a > a.dtype.type(hi_c))
                idx = _first(bad)
                raise out_of_range(idx, int(a[idx]))
        return a
    if kind == "b":
        if a.size and (lo > 0 or hi < 1):
            bad = (a.astype(np.int64) < lo) | (a.astype(np.int64) > hi)
            if bad.any():
                idx = _first(bad)
                raise out_of_range(idx, int(a[idx]))
        return a
    raise InputError(f"{what} must hold integers, got dtype {a.dtype} ({float_hint})")


def as_int64(x: Any, **kwargs: Any) -> np.ndarray:
    """:func:`exact_integers` as an int64 array (same keyword arguments)."""
    return exact_integers(x, **kwargs).astype(np.int64, copy=False)


def check_events(events: Any, timesteps: int, size: int, what: str = "events") -> np.ndarray:
    """Packed spike events ``(step << 16) | index`` as uint32, each exactly given and in range.

    ``events`` must be one-dimensional (a ``(n, 2)`` array of ``(step, index)`` pairs is not
    events: build those with :func:`edgespike.sim.reference.events_from_spikes` or stream them
    with ``EventArraySource``) and integer: floats are refused, not truncated.

    Raises:
        InputError: wrong shape, non-integer dtype, a code outside 0..2^32-1, a step
            ``>= timesteps`` or an index ``>= size``.
    """
    a = as_array(events, what)
    if a.ndim != 1:
        raise InputError(f"{what} must be a 1-D array of codes (step << 16) | index, got shape "
                         f"{a.shape}")
    hint = "events are integer codes (step << 16) | index, e.g. from events_from_spikes"
    ev = exact_integers(a, what=what, lo=0, hi=UINT32_MAX, allow_float=False, float_hint=hint,
                        rule="event codes are (step << 16) | index, in 0..2^32-1")
    ev = ev.astype(np.uint32)
    if ev.size:
        t, i = ev >> 16, ev & 0xFFFF
        bad = (t >= timesteps) | (i >= size)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InputError(f"{what}: event out of range: event {k} is step {int(t[k])}, index "
                             f"{int(i[k])}; the model takes steps < {timesteps}, indices < {size}")
    return ev


def model_input(model: Any, x: Any) -> np.ndarray:
    """One input ``(timesteps, input_size)`` or a batch ``(n, timesteps, input_size)`` for
    ``model`` as exact integers, without copying an integer array (the shared body of every
    simulator's input check: :func:`edgespike.sim.reference.check_input` and the batched
    simulator). ``model`` needs only ``timesteps``, ``input_size``, ``input_kind`` and
    ``input_max_abs``; it is not validated here.

    Returns an integer (or bool) array whose every value is 0/1 for spike models and within
    ``|x| <= input_max_abs`` for direct encoding (docs/SEMANTICS.md, "Inputs").

    Raises:
        InputError: wrong shape, a non-integer value (NaN, inf, 0.5), or a value out of range.
    """
    x = as_array(x, "input")
    shape = (model.timesteps, model.input_size)
    if x.ndim not in (2, 3) or x.shape[-2:] != shape:
        raise InputError(f"input shape {x.shape}; the model takes ({shape[0]}, {shape[1]}) "
                         f"(timesteps, input_size) or a batch (n, {shape[0]}, {shape[1]})")
    axes = ("input", "step", "index")
    if model.input_kind == "spikes":
        return exact_integers(x, lo=0, hi=1, axes=axes,
                              rule="spike input must be 0 or 1 (a spike or none per step and "
                                   "channel)")
    m = int(model.input_max_abs)
    return exact_integers(x, lo=-m, hi=m, axes=axes,
                          rule=f"the model takes |x| <= input_max_abs {m}; rescale or clip the "
                               "input")


# ---- models ----------------------------------------------------------------------------------

_VALID_MAX = 256
_valid: "OrderedDict[bytes, None]" = OrderedDict()
_valid_lock = threading.Lock()


_LEAVES = (int, float, complex, str, bytes, type(None), np.generic)


def _feed(parts: list, obj: Any) -> bool:
    """Append ``obj``'s content to ``parts``: every attribute of dataclasses, array
    dtype/shape/bytes, containers element by element, plain values by type and repr.

    Returns False when ``obj`` holds something whose content cannot be captured this way (an
    object of unknown kind): such a model is validated on every call, never cached.
    """
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            parts.append(f"O{obj.shape}")
            return _feed(parts, obj.tolist())
        parts.append(f"A{obj.dtype.str}{obj.shape}")
        parts.append(obj.tobytes())
        return True
    if isinstance(obj, _LEAVES):
        parts.append(f"{type(obj).__qualname__}={obj!r}")
        return True
    if isinstance(obj, (list, tuple)):
        parts.append(f"L{type(obj).__qualname__}{len(obj)}")
        return all([_feed(parts, e) for e in obj])
    if isinstance(obj, dict):
        parts.append(f"M{len(obj)}")
        return all([_feed(parts, k) and _feed(parts, v) for k, v in obj.items()])
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and hasattr(obj, "__dict__"):
        # Model, Layer, Weights, Neurons...: every instance attribute, fields or not
        attrs = vars(obj)
        parts.append(f"D{type(obj).__qualname__}{len(attrs)}")
        ok = True
        for name in sorted(attrs):
            parts.append(name)
            ok = _feed(parts, attrs[name]) and ok
        return ok
    if hasattr(obj, "__array__"):  # a tensor or other array-like: its values as they are now
        parts.append(f"T{type(obj).__qualname__}")
        return _feed(parts, np.asarray(obj))
    return False


def fingerprint(model: Any) -> Optional[bytes]:
    """A digest of everything in ``model`` (every attribute and array byte): equal digests,
    equal content. About 1 ms per MB of weights. None if the model holds an object whose
    content cannot be read (then it cannot be cached)."""
    parts: list = []
    if not _feed(parts, model):
        return None
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode()
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no two contents collide
        h.update(data)
    return h.digest()


def require_valid(model: Any) -> Any:
    """Raise :class:`~edgespike.errors.ModelError` unless ``model`` validates; returns it.

    Validation runs once per distinct content (see the module docstring): a model changed in
    place after it validated (a weight, a field) is validated again.
    """
    key = fingerprint(model)
    if key is not None:
        with _valid_lock:
            if key in _valid:
                _valid.move_to_end(key)
                return model
    model.validate()
    if key is None:
        return model
    with _valid_lock:
        _valid[key] = None
        while len(_valid) > _VALID_MAX:
            _valid.popitem(last=False)
    return model


__all__ = ["INT32_MAX", "INT32_MIN", "INT64_MAX", "INT64_MIN", "UINT32_MAX", "as_array",
           "as_int64", "check_events", "exact_integers", "fingerprint", "model_input",
           "require_valid"]
