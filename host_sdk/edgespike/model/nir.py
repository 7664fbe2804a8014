"""NIR (Neuromorphic Intermediate Representation) export and import.

Export (:func:`to_nir`, :func:`save_nir`): each layer becomes ``Linear`` (weights ``W * 2^exp``
as floats, NIR's ``(out, in)`` layout) followed by ``CubaLIF``; a recurrent layer adds a
``Linear`` from the ``CubaLIF`` back to itself. The float parameters follow snnTorch's
discretisation (forward Euler with the model's ``dt``), so other tools read a close float
network:

* ``tau_syn = dt * 4096 / du``, ``w_in = tau_syn / dt`` (the input enters ``u`` with gain 1),
* ``tau_mem = dt * 4096 / dv``, ``r = tau_mem / dt`` (``u`` enters ``v`` with gain 1),
* a decay of 0 ("no leak") is written as ``dt * 2^24``,
* ``v_threshold = vth`` and ``v_leak = bias / 64 * 4096 / dv`` in the weight unit
  (1.0 = 64 integer units of ``v``), ``v_reset = 0``.

NIR has no place for what makes the network integer (exponents, encodings, ``a_pos``/``a_neg``,
the integer decays and thresholds, reset mode, refractory, adaptive threshold, input kind,
decoding, timesteps, ``dt``, labels, encoder), so all of it goes into a JSON *sidecar* in the
graph's metadata (key ``"edgespike"``), with the CRC-32 of the model blob. :func:`from_nir`
rebuilds the model from the sidecar and checks the CRC: ours -> NIR -> ours is bit-identical.

Import of foreign graphs (snnTorch's ``export_to_nir``, Norse's ``to_nir``): a chain
``Input -> (Flatten) -> Affine|Linear -> LIF|CubaLIF -> ... -> Output`` is quantized to int8:

* ``dv = round(4096 * dt / tau_mem)``, ``du = round(4096 * dt / tau_syn)`` (``LIF``:
  ``du = 4096``); ``dt`` is the exporter's step (snnTorch writes ``1e-4`` s, Norse ``1e-3`` s);
* the Euler input gains ``g_u = w_in dt / tau_syn`` and ``g_v = r dt / tau_mem`` are folded into
  the weights; per layer one float unit becomes ``U`` integer units, ``U`` chosen so the
  largest weight is 127 (halved while the threshold or the 2^17 input bound does not fit);
  ``vth = round(v_threshold * U)``;
* an ``Affine`` bias is a constant input: on ``LIF`` (no current state) it becomes the integer
  bias; on ``CubaLIF`` its steady-state current ``b g_u / (du / 4096)`` does.

Known differences on import: snnTorch subtracts the threshold one step after the spike (we
subtract at once), Norse's ``LIFCell`` lets the input reach ``v`` one step later, and per-neuron
time constants that differ are replaced by their median (a warning is logged).
"""
from __future__ import annotations

import json
import logging
import math
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgespike.errors import ModelError, ToolMissing
from edgespike.model.blob import to_bytes
from edgespike.model.quantized import (
    A_IN_LIMIT, VTH_MAX, EncoderSpec, Layer, Model, Neurons, Weights, _per_neuron,
)

log = logging.getLogger(__name__)

SIDECAR_KEY = "edgespike"
SIDECAR_VERSION = 1
#: Stand-in for an infinite time constant (decay 0), in steps.
_NO_LEAK_STEPS = float(1 << 24)


def _nir() -> Any:
    try:
        import nir  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        raise ToolMissing(f"NIR support needs the 'nir' package ({exc}); "
                          "install it with: pip install nir==1.0.8") from exc
    return nir


# ------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------

def _tau(decay: int, dt: float) -> float:
    return dt * _NO_LEAK_STEPS if decay == 0 else dt * 4096.0 / decay


def _int_list(value: int | np.ndarray) -> int | list[int]:
    arr = np.asarray(value)
    return int(arr) if arr.ndim == 0 else [int(v) for v in arr]


def _weights_meta(w: Weights) -> dict[str, Any]:
    return {"encoding": w.encoding, "exp": int(w.exp), "a_pos": _int_list(w.a_pos),
            "a_neg": _int_list(w.a_neg), "fan_in": w.fan_in, "fan_out": w.fan_out}


def sidecar(model: Model) -> dict[str, Any]:
    """Everything integer about ``model`` that NIR has no field for (a JSON-able dict)."""
    layers = []
    for layer in model.layers:
        n = layer.neurons
        layers.append({
            "name": layer.name, "kind": layer.kind, "size": layer.size,
            "weights": _weights_meta(layer.weights),
            "recurrent": None if layer.recurrent is None else _weights_meta(layer.recurrent),
            "neurons": {"du": int(n.du), "dv": int(n.dv), "vth": _int_list(n.vth),
                        "bias_mant": _int_list(n.bias_mant), "bias_exp": int(n.bias_exp),
                        "reset": n.reset, "refractory": int(n.refractory),
                        "adapt_step": int(n.adapt_step), "adapt_decay": int(n.adapt_decay)},
        })
    enc = model.encoder
    return {
        "sidecar_version": SIDECAR_VERSION, "name": model.name, "input_size": model.input_size,
        "input_kind": model.input_kind, "input_max_abs": int(model.input_max_abs),
        "timesteps": int(model.timesteps), "decoding": model.decoding, "dt_us": int(model.dt_us),
        "labels": list(model.labels),
        "encoder": {"kind": enc.kind, "channels": int(enc.channels),
                    "thresholds": [int(t) for t in enc.thresholds], "params_json": enc.params_json},
        "bit_widths": {"weights": 8, "ternary_code": 2, "u": 24, "v": 24, "vth": 17,
                       "bias_mant": 13, "decay": 12},
        "layers": layers,
        "blob_crc32": zlib.crc32(to_bytes(model)) & 0xFFFFFFFF,
    }


def _float_weights(w: Weights) -> np.ndarray:
    """NIR weight ``(out, in)``: the integer weights times ``2^exp``, exact in float64."""
    return (w.integer_matrix().astype(np.float64) * math.ldexp(1.0, w.exp)).T.copy()


def to_nir(model: Model) -> Any:
    """``model`` as a ``nir.NIRGraph`` with the integer sidecar in its metadata."""
    nir = _nir()
    model.validate()
    dt = model.dt_us * 1e-6
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([model.input_size])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for i, layer in enumerate(model.layers):
        n = layer.neurons
        size = layer.size
        fc, lif = f"fc{i}", f"lif{i}"
        nodes[fc] = nir.Linear(weight=_float_weights(layer.weights))
        tau_syn, tau_mem = _tau(n.du, dt), _tau(n.dv, dt)
        bias = (_per_neuron(n.bias_mant, size, "bias_mant") << n.bias_exp) / 64.0
        v_leak = bias * 4096.0 / n.dv if n.dv else np.zeros(size)
        if n.dv == 0 and np.any(bias != 0):
            log.warning("layer %d: a bias without leak (dv=0) has no NIR float form; "
                        "it is kept in the sidecar only", i)
        nodes[lif] = nir.CubaLIF(
            tau_syn=np.full(size, tau_syn), tau_mem=np.full(size, tau_mem),
            r=np.full(size, tau_mem / dt), v_leak=np.asarray(v_leak, dtype=np.float64),
            v_threshold=_per_neuron(n.vth, size, "vth").astype(np.float64),
            v_reset=np.zeros(size), w_in=np.full(size, tau_syn / dt),
        )
        edges += [(prev, fc), (fc, lif)]
        if layer.recurrent is not None:
            rec = f"rec{i}"
            nodes[rec] = nir.Linear(weight=_float_weights(layer.recurrent))
            edges += [(lif, rec), (rec, lif)]
        prev = lif
    nodes["output"] = nir.Output(output_type={"output": np.array([model.output_size])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={SIDECAR_KEY: json.dumps(sidecar(model), sort_keys=True)})


def save_nir(model: Model, path: str | Path) -> Path:
    """Write ``model`` as a NIR HDF5 file (sidecar inside); returns the path."""
    path = Path(path)
    _nir().write(path, to_nir(model))
    return path


# ------------------------------------------------------------------------------------------
# import
# ------------------------------------------------------------------------------------------

def load_nir(path: str | Path, **kwargs: Any) -> Model:
    """Read a NIR file and return the integer model (see :func:`from_nir` for ``kwargs``)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"NIR file not found: {path}")
    try:
        graph = _nir().read(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable NIR file ({exc})") from exc
    return from_nir(graph, **kwargs)


def from_nir(graph: Any, *, use_sidecar: bool = True, dt: Optional[float] = None,
             timesteps: int = 16, input_kind: str = "spikes", input_scale: float = 1.0,
             input_max_abs: int = 1, reset: str = "zero", decoding: str = "spike_count",
             name: str = "nir", source: str = "nir") -> Model:
    """A ``nir.NIRGraph`` as an integer :class:`Model`.

    With an EdgeSpike sidecar (and ``use_sidecar``) the model is rebuilt exactly and checked
    against the sidecar's CRC. Otherwise the float parameters are quantized to int8:

    Args:
        dt: the exporter's time step in seconds (snnTorch 1e-4, Norse 1e-3). Required.
        timesteps: steps per inference of the imported model.
        input_kind: ``"spikes"`` or ``"values"``; for values, one integer input unit is
            ``input_scale`` float units and ``|x| <= input_max_abs``.
        reset: ``"zero"`` or ``"subtract"`` (snnTorch's default is subtract, Norse's zero).
        decoding: how the output layer becomes a prediction.
        source: ``"nir"`` (NIR's documented meaning, which snnTorch follows) or ``"norse"``:
            Norse 1.1 writes ``tau = dt / tau_inv`` (``dt`` times the real time constant) and
            adds its input to the current with gain ``w_in``.
    """
    meta = getattr(graph, "metadata", None) or {}
    if use_sidecar and SIDECAR_KEY in meta:
        return _from_sidecar(graph, json.loads(meta[SIDECAR_KEY]))
    if dt is None:
        raise ModelError("this NIR graph has no EdgeSpike sidecar: pass dt= (the exporter's step "
                         "in seconds: snnTorch writes 1e-4, Norse 1e-3) to quantize it")
    if source not in ("nir", "norse"):
        raise ModelError(f"unknown NIR source convention {source!r}; use 'nir' or 'norse'")
    return _quantize_graph(graph, dt=dt, timesteps=timesteps, input_kind=input_kind,
                           input_scale=input_scale, input_max_abs=input_max_abs, reset=reset,
                           decoding=decoding, name=name, source=source)


def _weights_from(arr: np.ndarray, meta: dict[str, Any], where: str) -> Weights:
    ints = np.asarray(arr, dtype=np.float64).T / math.ldexp(1.0, meta["exp"])
    if not np.all(ints == np.round(ints)):
        raise ModelError(f"{where}: NIR weights are not integers times 2^exp; the graph was "
                         "changed after export: import with use_sidecar=False to quantize it")
    ints = np.round(ints).astype(np.int64)
    a_pos = np.asarray(meta["a_pos"]) if isinstance(meta["a_pos"], list) else meta["a_pos"]
    a_neg = np.asarray(meta["a_neg"]) if isinstance(meta["a_neg"], list) else meta["a_neg"]
    if meta["encoding"] == "int8":
        return Weights(ints.astype(np.int8), exp=meta["exp"], encoding="int8")
    codes = np.sign(ints).astype(np.int8)
    w = Weights(codes, exp=meta["exp"], encoding="ternary", a_pos=a_pos, a_neg=a_neg)
    if not np.array_equal(w.integer_matrix(), ints):
        raise ModelError(f"{where}: ternary weights do not match a_pos/a_neg of the sidecar")
    return w


def _scalar_or_array(value: int | list[int]) -> int | np.ndarray:
    return np.asarray(value, dtype=np.int64) if isinstance(value, list) else int(value)


def _from_sidecar(graph: Any, meta: dict[str, Any]) -> Model:
    if meta.get("sidecar_version") != SIDECAR_VERSION:
        raise ModelError(f"EdgeSpike sidecar version {meta.get('sidecar_version')} is not "
                         f"supported (this SDK reads version {SIDECAR_VERSION})")
    layers = []
    for i, lm in enumerate(meta["layers"]):
        for key in (f"fc{i}", f"lif{i}"):
            if key not in graph.nodes:
                raise ModelError(f"NIR graph has a sidecar but no node {key!r}")
        w = _weights_from(graph.nodes[f"fc{i}"].weight, lm["weights"], f"layer {i}")
        rec = None
        if lm["recurrent"] is not None:
            rec = _weights_from(graph.nodes[f"rec{i}"].weight, lm["recurrent"], f"layer {i} rec")
        nm = lm["neurons"]
        neurons = Neurons(du=nm["du"], dv=nm["dv"], vth=_scalar_or_array(nm["vth"]),
                          bias_mant=_scalar_or_array(nm["bias_mant"]), bias_exp=nm["bias_exp"],
                          reset=nm["reset"], refractory=nm["refractory"],
                          adapt_step=nm["adapt_step"], adapt_decay=nm["adapt_decay"])
        layers.append(Layer(weights=w, neurons=neurons, recurrent=rec, name=lm["name"]))
    enc = meta["encoder"]
    model = Model(
        input_size=meta["input_size"], timesteps=meta["timesteps"], layers=layers,
        input_kind=meta["input_kind"], input_max_abs=meta["input_max_abs"],
        decoding=meta["decoding"], name=meta["name"], dt_us=meta["dt_us"],
        encoder=EncoderSpec(kind=enc["kind"], channels=enc["channels"],
                            thresholds=list(enc["thresholds"]), params_json=enc["params_json"]),
        labels=list(meta["labels"]),
    ).validate()
    crc = zlib.crc32(to_bytes(model)) & 0xFFFFFFFF
    if crc != meta["blob_crc32"]:
        raise ModelError(f"the model rebuilt from the NIR sidecar has CRC {crc:#010x}, the sidecar "
                         f"says {meta['blob_crc32']:#010x}: the graph was changed after export; "
                         "import with use_sidecar=False to quantize its float parameters")
    return model


def _chain(graph: Any) -> list[tuple[str, Any]]:
    """The graph's nodes from input to output, which must form a simple chain."""
    nir = _nir()
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise ModelError(f"NIR import needs exactly one Input node, found {len(inputs)}")
    order, cur, seen = [], inputs[0], set()
    while True:
        if cur in seen:
            raise ModelError("NIR import supports feed-forward chains only (found a cycle: "
                             "recurrent graphs are read only with an EdgeSpike sidecar)")
        seen.add(cur)
        order.append((cur, graph.nodes[cur]))
        nxt = succ.get(cur, [])
        if not nxt:
            break
        if len(nxt) > 1:
            raise ModelError(f"NIR node {cur!r} feeds {len(nxt)} nodes; only chains are supported")
        cur = nxt[0]
    return order


def _one_value(arr: Any, what: str, where: str) -> float:
    a = np.asarray(arr, dtype=np.float64).ravel()
    med = float(np.median(a))
    if a.size > 1 and not np.allclose(a, med, rtol=1e-6):
        log.warning("%s: per-neuron %s differ (%.4g..%.4g); using the median %.4g",
                    where, what, a.min(), a.max(), med)
    return med


def _decay(tau: float, dt: float) -> int:
    if not math.isfinite(tau) or tau <= 0:
        return 0 if not math.isfinite(tau) else 4096
    return int(min(4096, max(0, round(4096.0 * dt / tau))))


def _quantize_graph(graph: Any, *, dt: float, timesteps: int, input_kind: str,
                    input_scale: float, input_max_abs: int, reset: str, decoding: str,
                    name: str, source: str = "nir") -> Model:
    nir = _nir()
    chain = _chain(graph)
    layers: list[Layer] = []
    pending: Optional[tuple[np.ndarray, np.ndarray]] = None  # (W (in, out), bias) before a neuron
    input_size: Optional[int] = None
    for key, node in chain:
        where = f"NIR node {key!r}"
        if isinstance(node, (nir.Input, nir.Output)):
            if isinstance(node, nir.Input):
                input_size = int(np.prod(next(iter(node.input_type.values()))))
            continue
        if isinstance(node, nir.Flatten):
            continue
        if isinstance(node, (nir.Affine, nir.Linear)):
            if pending is not None:
                raise ModelError(f"{where}: two weight layers in a row are not supported")
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2:
                raise ModelError(f"{where}: only dense (2-D) weights are supported, got {w.shape}")
            b = np.asarray(getattr(node, "bias", np.zeros(w.shape[0])), dtype=np.float64)
            pending = (w.T, np.broadcast_to(b, (w.shape[0],)).astype(np.float64))
            continue
        if isinstance(node, (nir.LIF, nir.CubaLIF)):
            if pending is None:
                raise ModelError(f"{where}: a neuron node must follow an Affine/Linear node")
            layers.append(_quantize_layer(node, pending, dt, reset, where,
                                          first=not layers, input_kind=input_kind,
                                          input_scale=input_scale, input_max_abs=input_max_abs,
                                          source=source))
            pending = None
            continue
        raise ModelError(f"{where}: {type(node).__name__} is not supported by the NIR import "
                         "(supported: Input, Flatten, Affine, Linear, LIF, CubaLIF, Output)")
    if pending is not None:
        raise ModelError("the NIR graph ends in a weight layer without neurons")
    if not layers:
        raise ModelError("the NIR graph has no LIF/CubaLIF layer")
    if input_size is None or input_size != layers[0].weights.fan_in:
        input_size = layers[0].weights.fan_in
    return Model(input_size=input_size, timesteps=timesteps, layers=layers,
                 input_kind=input_kind, input_max_abs=input_max_abs if input_kind == "values" else 1,
                 decoding=decoding, name=name, dt_us=max(1, int(round(dt * 1e6)))).validate()


def _quantize_layer(node: Any, pending: tuple[np.ndarray, np.ndarray], dt: float, reset: str,
                    where: str, *, first: bool, input_kind: str, input_scale: float,
                    input_max_abs: int, source: str = "nir") -> Layer:
    nir = _nir()
    w, b = pending
    size = w.shape[1]
    tau_unit = 1.0 / dt if source == "norse" else 1.0  # Norse's taus are dt * tau
    if isinstance(node, nir.CubaLIF):
        tau_syn = np.asarray(node.tau_syn, dtype=np.float64) * np.ones(size) * tau_unit
        tau_mem = np.asarray(node.tau_mem, dtype=np.float64) * np.ones(size) * tau_unit
        w_in = np.asarray(node.w_in, dtype=np.float64) * np.ones(size)
        g_u = w_in if source == "norse" else w_in * dt / tau_syn
        du = _decay(_one_value(tau_syn, "tau_syn", where), dt)
    else:
        tau_mem = np.asarray(node.tau, dtype=np.float64) * np.ones(size) * tau_unit
        g_u = np.ones(size)
        du = 4096
    g_v = np.asarray(node.r, dtype=np.float64) * dt / tau_mem
    dv = _decay(_one_value(tau_mem, "tau_mem", where), dt)
    gain = g_u * g_v
    w_eff = w * gain[None, :]
    # constant input into u: its steady state reaches v as a per-step bias
    bias_v = b * gain / (du / 4096.0) if du else b * gain
    v_leak = np.asarray(node.v_leak, dtype=np.float64) * np.ones(size)
    bias_v = bias_v + v_leak * dv / 4096.0
    thr = np.asarray(node.v_threshold, dtype=np.float64) * np.ones(size)
    if np.any(thr <= 0):
        raise ModelError(f"{where}: thresholds must be positive to quantize")
    v_reset = np.asarray(node.v_reset if node.v_reset is not None else 0.0) * np.ones(size)
    if np.any(v_reset != 0):
        log.warning("%s: v_reset != 0 is not representable; resetting to 0", where)

    in_scale = input_scale if (first and input_kind == "values") else 1.0
    in_bound = input_max_abs if (first and input_kind == "values") else 1
    w_scaled = w_eff * in_scale
    wmax = float(np.abs(w_scaled).max()) or 1.0
    unit = 127.0 / wmax  # integer a_in units per float unit of v
    while True:
        w_int = np.clip(np.round(w_scaled * unit), -127, 127).astype(np.int8)
        vth = np.round(thr * unit).astype(np.int64)
        worst = max(np.clip(w_int, 0, None).sum(axis=0).max(),
                    np.clip(-w_int.astype(np.int64), 0, None).sum(axis=0).max()) * in_bound
        if vth.max() <= VTH_MAX and worst < A_IN_LIMIT:
            break
        unit /= 2.0
    if vth.min() < 1:
        raise ModelError(f"{where}: a threshold rounds to 0 at the int8 weight scale "
                         "(weights far larger than the threshold); check dt and the source convention")
    vth = np.clip(vth, 0, VTH_MAX)
    bias_int = np.round(bias_v * unit * 64.0).astype(np.int64)
    bias_exp = 0
    while np.abs(bias_int >> bias_exp).max(initial=0) > 4095 and bias_exp < 7:
        bias_exp += 1
    bias_mant = np.clip(np.round(bias_int / (1 << bias_exp)), -4096, 4095).astype(np.int64)
    vth_field: int | np.ndarray = int(vth[0]) if np.all(vth == vth[0]) else vth
    bias_field: int | np.ndarray = int(bias_mant[0]) if np.all(bias_mant == bias_mant[0]) else bias_mant
    return Layer(weights=Weights(w_int, exp=0, encoding="int8"),
                 neurons=Neurons(du=du, dv=dv, vth=vth_field, bias_mant=bias_field,
                                 bias_exp=bias_exp, reset=reset), name=where.split("'")[1])


__all__ = ["SIDECAR_KEY", "from_nir", "load_nir", "save_nir", "sidecar", "to_nir"]
