"""Block traces of inferences on the emulated board: the QEMU runner under the es_blocktrace
plugin (``firmware/qemu-plugin/``).

The runner image runs a batch of inputs as :func:`edgespike.sim.qemu.run_batch` does; the
plugin records every block executed inside ``es_engine_run`` (one window per inference),
split by layer step (``layer_step``, sub-window k of a step is layer k), with how often each
block ran, which jumps were taken and which memory accesses were misaligned. The markers are
code addresses from the image's symbol table, so the firmware needs no change:

- window: entry of :data:`WINDOW_FUNCTION` to the return address of each call to it;
- sub-windows: entry of :data:`LAYER_FUNCTION` to the return address of its calls (per-layer
  figures; when the symbol is missing, the whole inference only);
- marks: entry of :data:`MARK_FUNCTION` (the SysTick read), for checking against SysTick.

:mod:`edgespike.profile.cycles` turns the record into cycles.
"""
from __future__ import annotations

import logging
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgespike import paths
from edgespike.errors import EmulatorError, InputError, ToolMissing
from edgespike.model import Model, to_bytes
from edgespike.sim import elf, qemu
from edgespike.sim.reference import RunOutput, check_input

log = logging.getLogger(__name__)

#: The inference: one window per call (the core's whole run of one input).
WINDOW_FUNCTION = "es_engine_run"
#: One layer for one time step (called once per layer per step, in layer order).
LAYER_FUNCTION = "layer_step"
#: The port's cycle counter read (SysTick), marked to compare with SysTick's counts.
MARK_FUNCTION = "es_systick_cycles"


@dataclass
class InsnStat:
    """One instruction of a block: address, size, bytes, and per bucket its memory accesses
    and misaligned ones (``mis1``: one extra bus access, ``mis2``: two)."""

    vaddr: int
    size: int
    hex: str
    mem: list[int]
    mis1: list[int]
    mis2: list[int]


@dataclass
class TbStat:
    """One translation block and, per bucket, its executions (``cuts`` of them stopped after
    ``cut_at`` instructions by an I/O access), jumps into and out of it."""

    vaddr: int
    n: int
    cut_mixed: bool
    cut_at: int
    execs: list[int]
    jumps_in: list[int]
    jumps_out: list[int]
    cuts: list[int]
    insns: list[InsnStat] = field(default_factory=list)

    def reach(self, i: int, b: int) -> int:
        """Executions that ran instruction ``i`` of the block, in bucket ``b``."""
        return self.execs[b] - self.cuts[b] + (self.cuts[b] if i < self.cut_at else 0)


@dataclass
class EdgeStat:
    """A jump from block ``src`` to block ``dst`` (keys ``(vaddr, n)``), count per bucket."""

    src: tuple[int, int]
    dst: tuple[int, int]
    count: list[int]


@dataclass
class BlockTrace:
    """The plugin's record of one run.

    Attributes:
        buckets: 1 + the number of sub-window buckets (bucket 0: the window outside them).
        windows: windows (inferences) seen; window_insns: instructions of each.
        bucket_insns: instructions per bucket, all windows.
        sub_windows: sub-windows opened, all windows.
        marks: ``(window, instructions into the window)`` at each marked address.
    """

    buckets: int
    windows: int
    window_insns: list[int]
    bucket_insns: list[int]
    sub_windows: int
    marks: list[tuple[int, int]]
    tbs: list[TbStat]
    edges: list[EdgeStat]


def _buckets(text: str) -> list[int]:
    return [int(v) for v in text.split()]


def parse(text: str) -> BlockTrace:
    """Read the plugin's text record (format in firmware/qemu-plugin/es_blocktrace.c)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("edgespike-blocktrace 1"):
        raise EmulatorError("not an es_blocktrace record (version 1)")
    head: dict[str, str] = {}
    marks: list[tuple[int, int]] = []
    tbs: list[TbStat] = []
    edges: list[EdgeStat] = []
    for line in lines[1:]:
        tag, _, rest = line.partition(" ")
        if tag == "tb":
            fields = rest.split("|")
            v, n, mixed, cut_at = fields[0].split()
            tbs.append(TbStat(int(v, 16), int(n), mixed == "1", int(cut_at),
                              *(_buckets(f) for f in fields[1:5])))
        elif tag == "insn":
            fields = rest.split("|")
            v, size, hx = fields[0].split()
            tbs[-1].insns.append(InsnStat(int(v, 16), int(size), hx,
                                          *(_buckets(f) for f in fields[1:4])))
        elif tag == "edge":
            fields = rest.split("|")
            a, an, b, bn = fields[0].split()
            edges.append(EdgeStat((int(a, 16), int(an)), (int(b, 16), int(bn)),
                                  _buckets(fields[1])))
        elif tag == "mark":
            w, c = rest.split()
            marks.append((int(w), int(c)))
        else:
            head[tag] = rest
    return BlockTrace(buckets=int(head["buckets"]), windows=int(head["windows"]),
                      window_insns=_buckets(head.get("window_insns", "")),
                      bucket_insns=_buckets(head.get("bucket_insns", "")),
                      sub_windows=int(head.get("sub_windows", "0")), marks=marks, tbs=tbs,
                      edges=edges)


@dataclass
class TracedRun:
    """A traced batch: the runner's outputs (as :func:`edgespike.sim.qemu.run_batch`), the
    block trace, the image it ran, and whether the trace splits by layer."""

    outputs: list[RunOutput]
    trace: BlockTrace
    image: Path
    layers_split: bool
    kernels: str = "default"


def plugin_args(image: elf.ElfImage, out: Path, n_layers: int) -> tuple[str, bool]:
    """The ``-plugin`` argument for a runner image: window, layer sub-windows, mark.
    Returns ``(argument, layers_split)``."""
    begin = image.symbol(WINDOW_FUNCTION)
    ends = image.call_returns(WINDOW_FUNCTION)
    if begin is None or not ends:
        raise ToolMissing(f"{image.path.name} has no direct calls to {WINDOW_FUNCTION}: the "
                          "block trace cannot find the inference (edgespike.sim.trace)")
    parts = [f"out={out}", f"begin={begin:x}", "end=" + ":".join(f"{a:x}" for a in ends)]
    sub = image.symbol(LAYER_FUNCTION)
    sub_ends = image.call_returns(LAYER_FUNCTION)
    split = sub is not None and bool(sub_ends) and len(sub_ends) <= 16 and 0 < n_layers <= 64
    if split:
        parts += [f"sub_begin={sub:x}", "sub_end=" + ":".join(f"{a:x}" for a in sub_ends),
                  f"subs={n_layers}"]
    mark = image.symbol(MARK_FUNCTION)
    if mark is not None:
        parts.append(f"mark={mark:x}")
    return ",".join(parts), split


def available() -> Optional[str]:
    """None when the plugin is built, else the reason it is not (what to do)."""
    try:
        paths.trace_plugin()
    except ToolMissing as exc:
        return str(exc)
    return None


def trace_batch(model: Model, inputs: np.ndarray, board: str = "mps2-an386",
                kernels: str = "default", timeout_s: float = 300.0,
                static: Optional[bool] = None) -> TracedRun:
    """Run a batch on the emulated board's runner under the block-trace plugin.

    ``kernels``: ``"default"``, ``"plain"`` (portable C kernels) or ``"m0"`` (the runner
    built for the Cortex-M0, ARMv6-M code, run on the same board).

    Raises:
        ToolMissing: the plugin (``bash firmware/build.sh``) or the runner image is missing.
        ModelError, InputError: as :func:`edgespike.sim.qemu.run_batch`.
    """
    plugin = paths.trace_plugin()
    x = check_input(model, inputs)
    if x.ndim == 2:
        x = x[None]
    flags = 0
    if model.input_kind == "values":
        same = bool(np.array_equal(x, np.broadcast_to(x[:, :1], x.shape)))
        if static and not same:
            raise InputError("static=True, but the input changes between time steps")
        if static or (static is None and same):
            flags |= qemu._FLAG_STATIC
    image_path = paths.runner_image(board, kernels)
    image = elf.load(image_path)
    with tempfile.TemporaryDirectory(prefix="edgespike-trace-") as tmp:
        work = Path(tmp)
        arg, split = plugin_args(image, work / "trace.txt", len(model.layers))
        (work / "model.bin").write_bytes(to_bytes(model))
        (work / "input.bin").write_bytes(qemu._write_inputs(model, x, flags))
        cmd = qemu.qemu_command(image_path, board) + ["-plugin", f"{plugin},{arg}"]
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, timeout=timeout_s,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise EmulatorError(f"traced QEMU run did not finish in {timeout_s:.0f} s") from exc
        out, rec = work / "output.bin", work / "trace.txt"
        if not out.exists() or not rec.exists():
            raise EmulatorError(f"traced QEMU run wrote no output (exit {proc.returncode}): "
                                f"{proc.stderr.decode(errors='replace')[-500:]}")
        if proc.returncode not in (0, 1, 2):
            raise EmulatorError(f"traced QEMU run exited with {proc.returncode}")
        outputs = qemu._parse_outputs(model, out.read_bytes(), len(x), flags)
        trace = parse(rec.read_text())
    if trace.windows != len(x):
        raise EmulatorError(f"the block trace saw {trace.windows} inferences for {len(x)} "
                            f"inputs: its markers ({WINDOW_FUNCTION}) do not fit {image_path.name}")
    expected = len(x) * model.timesteps * len(model.layers)
    if split and trace.sub_windows != expected:
        log.warning("block trace: %d layer steps seen, %d expected: no per-layer split",
                    trace.sub_windows, expected)
        split = False
    return TracedRun(outputs=outputs, trace=trace, image=image_path, layers_split=split,
                     kernels=kernels)
