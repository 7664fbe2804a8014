"""The firmware's C core on the emulated Cortex-M4, without the link.

Runs the semihosting runner image (``edgespike-runner-<board>.elf``, see
``firmware/ports/mps2-an386/RUNNER.md``) in QEMU with ``-icount shift=0``: the model blob and a
batch of inputs go in as files, every result (spikes of all layers, final state, counters,
instruction counts) comes back as a file. Same interface as :mod:`edgespike.sim.reference`.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from edgespike import paths
from edgespike.errors import EmulatorError, InputError, ModelError, ToolMissing
from edgespike.model import Model, to_bytes
from edgespike.sim.checks import as_array
from edgespike.sim.reference import LayerCounters, RunOutput, check_input, events_from_spikes

_FLAG_RASTER, _FLAG_STATE, _FLAG_STATIC = 1, 2, 4
_IN_MAGIC = 0x31495345
_OUT_MAGIC = 0x314F5345
_HEADER = 128
_ERR_BAD_INPUT = 13

#: Instructions per SysTick tick on mps2 boards under -icount shift=0 (25 MHz SysTick).
QEMU_BOARDS = {"mps2-an386": "mps2-an386"}


def qemu_command(image: Path, board: str = "mps2-an386") -> list[str]:
    """The QEMU command line that runs a bare-metal image with semihosting and icount."""
    exe = shutil.which("qemu-system-arm")
    if exe is None:
        raise ToolMissing("qemu-system-arm not found: apt-get install qemu-system-arm")
    return [exe, "-M", QEMU_BOARDS.get(board, board), "-nographic", "-monitor", "none",
            "-icount", "shift=0", "-semihosting-config", "enable=on,target=native",
            "-serial", "null", "-kernel", str(image)]


def _write_inputs(model: Model, x: np.ndarray, flags: int) -> bytes:
    kind = 0 if model.input_kind == "spikes" else 1
    parts = [struct.pack("<4I", _IN_MAGIC, kind, len(x), flags)]
    for sample in x:
        if kind == 0:
            items = events_from_spikes(sample)
        elif flags & _FLAG_STATIC:
            items = sample[0].astype("<i4")
        else:
            items = sample.astype("<i4").reshape(-1)
        parts.append(struct.pack("<I", len(items)))
        parts.append(np.asarray(items, dtype="<u4" if kind == 0 else "<i4").tobytes())
    return b"".join(parts)


def _parse_outputs(model: Model, raw: bytes, n_inputs: int, flags: int) -> list[RunOutput]:
    magic, status, n, rflags, n_layers, n_out, n_all, steps = struct.unpack("<IiIIIIII", raw[:32])
    reason = raw[32:_HEADER].split(b"\0")[0].decode(errors="replace")
    if magic != _OUT_MAGIC:
        raise EmulatorError("runner output has a bad magic number")
    if status != 0:
        raise ModelError(f"the firmware rejected the model: {reason} (code {status})")
    if n != n_inputs or rflags != flags:
        raise EmulatorError(f"runner wrote {n} records for {n_inputs} inputs")
    sizes = [layer.size for layer in model.layers]
    offs = np.cumsum([0] + sizes)
    off = _HEADER
    results = []
    for _ in range(n):
        st, pred = struct.unpack("<ii", raw[off:off + 8]); off += 8
        scores = np.frombuffer(raw, "<i8", n_out, off).astype(np.int64); off += 8 * n_out
        counters = np.frombuffer(raw, "<u8", 5 * n_layers, off).reshape(n_layers, 5); off += 40 * n_layers
        (cycles,) = struct.unpack("<Q", raw[off:off + 8]); off += 8
        spikes, u, v, th = [], [], [], []
        if flags & _FLAG_RASTER:
            flat = np.frombuffer(raw, "u1", steps * n_all, off); off += steps * n_all
            start = 0
            for size in sizes:
                spikes.append(flat[start:start + steps * size].reshape(steps, size).copy())
                start += steps * size
        if flags & _FLAG_STATE:
            state = np.frombuffer(raw, "<i4", 3 * n_all, off).reshape(3, n_all); off += 12 * n_all
            for i in range(len(sizes)):
                u.append(state[0, offs[i]:offs[i + 1]].copy())
                v.append(state[1, offs[i]:offs[i + 1]].copy())
                th.append(state[2, offs[i]:offs[i + 1]].copy())
        if st == _ERR_BAD_INPUT:
            raise InputError("the firmware rejected an input as out of range for the model")
        if st != 0:
            raise EmulatorError(f"the firmware failed an input with error code {st}")
        results.append(RunOutput(
            prediction=pred, scores=scores, spikes=spikes, u=u, v=v, th=th,
            counters=[LayerCounters(*(int(c) for c in row)) for row in counters],
            cycles=int(cycles), cycle_source="qemu_icount",
        ))
    return results


def run_batch(model: Model, inputs: np.ndarray, board: str = "mps2-an386",
              record: bool = True, timeout_s: float = 120.0, static: Optional[bool] = None,
              kernels: str = "default") -> list[RunOutput]:
    """Run a batch (``batch x timesteps x input_size``) on the emulated board's C core.

    Args:
        record: also return every layer's spike raster and the final u / v / th.
        timeout_s: wall-clock limit for the QEMU process, in seconds.
        static: direct-input models: send one step per input, the first layer's sums computed
            once per inference; ``None``: when every input is the same at every step.
        kernels: ``"default"`` (the board's fastest path: DSP on the Cortex-M4) or ``"plain"``
            (the portable C kernels built for the same board).

    Raises:
        ModelError: the model fails validation (checked before anything runs).
        InputError: an input does not fit the model (:func:`~edgespike.sim.reference.check_input`).
    """
    x = check_input(model, inputs)  # validates the model first
    if x.ndim == 2:
        x = x[None]
    flags = _FLAG_RASTER | _FLAG_STATE if record else 0
    if model.input_kind == "values":
        same = bool(np.array_equal(x, np.broadcast_to(x[:, :1], x.shape)))
        if static and not same:
            raise InputError("static=True, but the input changes between time steps")
        if static or (static is None and same):
            flags |= _FLAG_STATIC
    image = paths.runner_image(board, kernels)
    with tempfile.TemporaryDirectory(prefix="edgespike-qemu-") as tmp:
        work = Path(tmp)
        (work / "model.bin").write_bytes(to_bytes(model))
        (work / "input.bin").write_bytes(_write_inputs(model, x, flags))
        try:
            proc = subprocess.run(qemu_command(image, board), cwd=work, capture_output=True,
                                  timeout=timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise EmulatorError(f"QEMU runner did not finish in {timeout_s:.0f} s") from exc
        out = work / "output.bin"
        if not out.exists():
            raise EmulatorError(f"QEMU runner wrote no output (exit {proc.returncode}): "
                                f"{proc.stderr.decode(errors='replace')[-500:]}")
        raw = out.read_bytes()
        if proc.returncode not in (0, 1, 2):
            raise EmulatorError(f"QEMU runner exited with {proc.returncode}; see RUNNER.md")
        return _parse_outputs(model, raw, len(x), flags)


def run(model: Model, x: np.ndarray, board: str = "mps2-an386") -> RunOutput:
    """Run one inference on the emulated board's C core."""
    x = as_array(x, "input")
    if x.ndim != 2:
        raise InputError(f"run takes one input (timesteps, input_size), got shape {x.shape}; "
                         "use run_batch for a batch")
    return run_batch(model, x[None], board)[0]


def predict(model: Model, inputs: np.ndarray, board: str = "mps2-an386") -> np.ndarray:
    """Predicted class per input, computed on the emulated board."""
    return np.array([r.prediction for r in run_batch(model, inputs, board, record=False)])
