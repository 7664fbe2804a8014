"""Small models and inputs for the hil suite (kept small: QEMU's UART takes ~25 KiB/s)."""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np

from edgespike import paths
from edgespike.errors import ToolMissing
from edgespike.model import Layer, Model, Neurons, Weights, to_bytes
from edgespike.model.blob import HASH_TAG, to_message
from edgespike.protocol.framing import crc32


def dense_model(seed: int = 0, sizes=(24, 32, 10), timesteps: int = 12,
                decoding: str = "spike_count") -> Model:
    """A random int8 feed-forward model that spikes a fair amount."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-90, 100, (a, b)).astype(np.int8)
        w[rng.random((a, b)) < 0.3] = 0
        layers.append(Layer(weights=Weights(w, exp=-2), name=f"fc{i}",
                            neurons=Neurons(du=512 * (i + 1), dv=300, vth=40 + 10 * i,
                                            bias_mant=2)))
    return Model(name=f"dense{seed}", input_size=sizes[0], timesteps=timesteps, layers=layers,
                 decoding=decoding)


def feature_model(seed: int = 1) -> Model:
    """Ternary weights, a recurrent layer, refractory and adaptive neurons, reset-by-subtraction."""
    rng = np.random.default_rng(seed)
    w0 = rng.integers(-1, 2, (16, 20)).astype(np.int8)
    r1 = rng.integers(-1, 2, (8, 8)).astype(np.int8)
    w1 = rng.integers(-1, 2, (20, 8)).astype(np.int8)
    return Model(
        name="features", input_size=16, timesteps=15, decoding="membrane_sum",
        layers=[
            Layer(weights=Weights(w0, exp=3, encoding="ternary", a_pos=3, a_neg=2),
                  neurons=Neurons(du=4096, dv=200, vth=np.arange(20) + 5, refractory=2,
                                  adapt_step=4, adapt_decay=300), name="tern"),
            Layer(weights=Weights(w1, exp=4, encoding="ternary",
                                  a_pos=rng.integers(1, 5, 8), a_neg=rng.integers(1, 5, 8)),
                  recurrent=Weights(r1, exp=3, encoding="ternary", a_pos=2, a_neg=3),
                  neurons=Neurons(du=2048, dv=100, vth=30, reset="subtract",
                                  bias_mant=np.arange(8) - 4, bias_exp=2), name="rec"),
        ])


def values_model(seed: int = 2) -> Model:
    """Direct encoding: signed integer values into the first layer; membrane decoding."""
    rng = np.random.default_rng(seed)
    return Model(
        name="values", input_size=6, timesteps=8, input_kind="values", input_max_abs=50,
        decoding="membrane_last",
        layers=[Layer(weights=Weights(rng.integers(-40, 40, (6, 12)).astype(np.int8), exp=-2),
                      neurons=Neurons(vth=60, dv=200), name="in"),
                Layer(weights=Weights(rng.integers(-80, 80, (12, 4)).astype(np.int8), exp=0),
                      neurons=Neurons(vth=50, dv=400), name="out")])


def _vectors_generator():
    """protocol/vectors/generate.py as a module (its models are the golden ones)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "protocol" / "vectors" / "generate.py"
    spec = importlib.util.spec_from_file_location("es_vectors_generate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def late_spikes_model() -> Model:
    """64 outputs that spike at every input step from step 4096 on (2,560 output events of
    5 bytes each): a RunResult at its largest (generate.py late_spikes_model)."""
    return _vectors_generator().late_spikes_model()


def late_spikes_input() -> np.ndarray:
    """The ``(timesteps, 1)`` raster for :func:`late_spikes_model`."""
    gen = _vectors_generator()
    model = gen.late_spikes_model()
    x = np.zeros((model.timesteps, model.input_size), dtype=np.uint8)
    for ev in gen.late_spikes_events():
        x[ev >> 16, ev & 0xFFFF] = 1
    return x


def spike_inputs(model: Model, n: int, seed: int = 0, rate: float = 0.3) -> np.ndarray:
    """``n`` random spike rasters ``(n, timesteps, input_size)``."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, model.timesteps, model.input_size)) < rate).astype(np.uint8)


def value_inputs(model: Model, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random value inputs within ``input_max_abs``."""
    rng = np.random.default_rng(seed)
    m = model.input_max_abs
    return rng.integers(-m, m + 1, (n, model.timesteps, model.input_size))


def seal(body: bytes) -> bytes:
    """Append a correct content hash to a serialized Model body (docs/SEMANTICS.md)."""
    return body + HASH_TAG + struct.pack("<I", crc32(body))


def broken_chain_blob() -> bytes:
    """A blob with a correct hash whose second layer's fan_in does not match the first's size."""
    msg = to_message(dense_model(5, sizes=(8, 6, 4)))
    msg.layers[1].weights.fan_in = 5
    msg.layers[1].weights.data = msg.layers[1].weights.data[:5 * 4]
    return seal(msg.SerializeToString(deterministic=True))


def ternary_11_blob() -> bytes:
    """A blob with a correct hash holding the invalid ternary code 0b11."""
    msg = to_message(feature_model())
    data = bytearray(msg.layers[0].weights.data)
    data[3] |= 0x03
    msg.layers[0].weights.data = bytes(data)
    return seal(msg.SerializeToString(deterministic=True))


def blob(model: Model) -> bytes:
    """The model's blob bytes."""
    return to_bytes(model)


def board_missing(board: str) -> str | None:
    """Why ``board`` cannot be started here, or None."""
    try:
        if board == "host":
            paths.hostdev_executable()
        else:
            if shutil.which("qemu-system-arm") is None:
                return "qemu-system-arm not installed (sudo apt-get install qemu-system-arm)"
            paths.firmware_image(board)
    except ToolMissing as exc:
        return str(exc)
    return None
