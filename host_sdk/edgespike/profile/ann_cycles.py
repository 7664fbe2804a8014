"""The ANN baseline in cycles: CMSIS-NN's int8 fully connected loops costed with the same cycle
model as the SNN's traces (:mod:`edgespike.profile.cycles`).

:mod:`edgespike.profile.ann` counts the ANN's instructions from the structure of CMSIS-NN's
``arm_nn_vec_mat_mult_t_s8`` (two output rows by four input columns per inner iteration on the
DSP path, a scalar loop for left-over columns, a requantize/clamp/store epilogue per output).
Here each of those pieces is written out as the instruction sequence it compiles to (our
rendering of the loops that docstring describes, not CMSIS-NN's code) and priced per core;
the ANN's cycles are its instruction count times the cycles per instruction of that mix, so
they follow whatever instruction figure :mod:`~edgespike.profile.ann` gives.

The Cortex-M0 has no DSP extension: CMSIS-NN takes its portable path there, one MAC at a time
(load, offset, multiply, add), and requantizes with a library 64-bit multiply. Its sequences
below are an estimate of that path, said plainly; the M4/M7/M33 share the DSP path.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

from edgespike.profile.ann import AnnBaseline
from edgespike.profile.cycles import CASES, Range, parse_sequence, sequence_cycles

#: Two output rows x four input columns (8 MACs): 15 instructions (ann.CMSIS_NN_INNER_INSTR_2ROWS).
INNER_2ROWS = """
ldr.w r6, [r0], #4          ; four inputs
sxtab16 r7, r10, r6         ; inputs 0, 2 plus the input offset, as 16-bit lanes
sxtab16 r6, r10, r6, ror #8 ; inputs 1, 3
ldr.w r8, [r1], #4          ; four weights of row 0
sxtb16 r9, r8
sxtb16 r8, r8, ror #8
smlad r2, r9, r7, r2
smlad r2, r8, r6, r2
ldr.w r8, [r5], #4          ; four weights of row 1
sxtb16 r9, r8
sxtb16 r8, r8, ror #8
smlad r3, r9, r7, r3
smlad r3, r8, r6, r3
subs r4, #1
bne.n 1000                  ; back to the first ldr.w
"""
#: The same for the last, odd row (4 MACs): 10 instructions.
INNER_1ROW = """
ldr.w r6, [r0], #4
sxtab16 r7, r10, r6
sxtab16 r6, r10, r6, ror #8
ldr.w r8, [r1], #4
sxtb16 r9, r8
sxtb16 r8, r8, ror #8
smlad r2, r9, r7, r2
smlad r2, r8, r6, r2
subs r4, #1
bne.n 1000
"""
#: A left-over input column for a row pair: 8 instructions.
TAIL_2ROWS = """
ldrsb.w r6, [r0], #1
add r6, r10
ldrsb.w r7, [r1], #1
mla r2, r6, r7, r2
ldrsb.w r7, [r5], #1
mla r3, r6, r7, r3
subs r4, #1
bne.n 1000
"""
#: ... for a single row: 6 instructions.
TAIL_1ROW = """
ldrsb.w r6, [r0], #1
add r6, r10
ldrsb.w r7, [r1], #1
mla r2, r6, r7, r2
subs r4, #1
bne.n 1000
"""
#: Per output: bias, requantize (doubling high multiply with rounding, rounding shift), output
#: offset, clamp, store, loop: 26 instructions (ann.CMSIS_NN_EPILOGUE_INSTR).
EPILOGUE = """
ldr.w r7, [r9], #4          ; bias
add r2, r7
smull r6, r7, r2, ip        ; doubling high multiply with rounding
adds.w r6, r6, #1073741824
adc r7, r7, #0
lsls r7, r7, #1
orr.w r7, r7, r6, lsr #31
asr.w r6, r7, r8            ; rounding divide by a power of two
and.w r2, r7, lr
asr.w r3, lr, #1
cmp r6, #0
it lt
addlt r3, #1
cmp r2, r3
it gt
addgt r6, #1
add r6, r4                  ; output offset
cmn.w r6, #128              ; clamp to int8 (activation min/max)
it lt
mvnlt r6, #127
cmp r6, #127
it gt
movgt r6, #127
strb.w r6, [sl], #1
subs r0, #1
bne.n 1000
"""

#: Cortex-M0 (no DSP): one input column for a row pair, one MAC at a time: 11 instructions
#: for 2 MACs.
M0_COLUMN_2ROWS = """
ldrsb r6, [r0, r3]
adds r6, r6, r7
ldrsb r5, [r1, r3]
muls r5, r6
adds r2, r2, r5
ldrsb r5, [r4, r3]
muls r5, r6
add ip, r5
adds r3, #1
cmp r3, lr
bne.n 1000
"""
#: Cortex-M0: requantize with the library's 64-bit multiply (__aeabi_lmul, its body included
#: as its ARMv6-M instruction mix), rounding shift, offset, clamp, store: 52 instructions.
M0_EPILOGUE = """
ldr r5, [r1]
adds r1, #4
adds r2, r2, r5
asrs r3, r2, #31
mov r0, r2
mov r1, r3
ldr r2, [sp, #8]
asrs r3, r2, #31
bl 2000
push {r4, r5, r6, lr}
lsrs r4, r0, #16
uxth r5, r0
lsrs r6, r2, #16
uxth r2, r2
movs r0, r5
muls r0, r2
muls r5, r6
muls r2, r4
muls r4, r6
adds r2, r2, r5
lsrs r5, r2, #16
adds r4, r4, r5
lsls r2, r2, #16
adds r0, r0, r2
lsrs r2, r0, #16
pop {r4, r5, r6, pc}
movs r2, #1
lsls r2, r2, #30
adds r0, r0, r2
adcs r1, r3
lsrs r0, r0, #31
lsls r1, r1, #1
orrs r0, r1
ldr r2, [sp, #12]
asrs r0, r2
ands r5, r0
cmp r5, r6
ble.n 2100
adds r0, #1
adds r0, r0, r7
movs r2, #128
negs r2, r2
cmp r0, r2
bge.n 2200
movs r0, r2
cmp r0, #127
ble.n 2300
movs r0, #127
strb r0, [r4]
adds r4, #1
subs r5, #1
bne.n 1000
"""


@dataclass
class AnnCycles:
    """The ANN baseline on one core, per inference: instructions and cycles (low / central /
    high); ``cpi`` of its instruction mix; ``note`` says how the figure was made."""

    core: str
    instructions: float
    cycles: Range
    note: str = ""

    @property
    def cpi(self) -> Range:
        return self.cycles / self.instructions if self.instructions else Range(0, 0, 0)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cpi"] = self.cpi.as_dict()
        return d


@lru_cache(maxsize=64)
def _piece(seq: str, core: str) -> tuple[int, tuple[float, ...]]:
    """Instructions and cycles (per case) of one loop iteration: the closing branch (the last
    instruction) and every unconditional one jump, the other conditional ones fall through."""
    ops = parse_sequence(seq)
    sites = [i for i, op in enumerate(ops) if op.pc]
    taken = [i == len(ops) - 1 or not ops[i].cond for i in sites]
    return len(ops), tuple(sequence_cycles(ops, core, c, taken) for c in CASES)


def _mix(fan_in: int, fan_out: int, core: str) -> tuple[float, list[float]]:
    """Instructions and cycles (per case) of one dense pass ``fan_in -> fan_out``."""
    if core == "cortex-m0":
        col, col_c = _piece(M0_COLUMN_2ROWS, core)
        epi, epi_c = _piece(M0_EPILOGUE, core)
        pairs = (fan_out + 1) // 2
        n = pairs * fan_in * col + fan_out * epi
        cyc = [pairs * fan_in * col_c[i] + fan_out * epi_c[i] for i in range(len(CASES))]
        return float(n), cyc
    pairs, odd = divmod(fan_out, 2)
    quads, tail = divmod(fan_in, 4)
    parts = [(INNER_2ROWS, pairs * quads), (INNER_1ROW, odd * quads),
             (TAIL_2ROWS, pairs * tail), (TAIL_1ROW, odd * tail), (EPILOGUE, fan_out)]
    n = 0.0
    cyc = [0.0] * len(CASES)
    for seq, times in parts:
        ni, ci = _piece(seq, core)
        n += ni * times
        for i in range(len(CASES)):
            cyc[i] += ci[i] * times
    return n, cyc


def ann_cycles(ann: AnnBaseline, core: str) -> AnnCycles:
    """The ANN baseline's cycles per inference on ``core``.

    M4/M7/M33 (CMSIS-NN's DSP path): ``ann.instructions`` times the cycles per instruction of
    the modelled loop mix of these layer shapes. M0: the portable path's own instruction count
    and cycles, from the sequences above (an estimate).
    """
    n = 0.0
    cyc = [0.0] * len(CASES)
    for layer in ann.layers:
        passes = ann.passes
        ni, ci = _mix(layer.fan_in, layer.size, core)
        extra = layer.macs // max(passes, 1) - layer.fan_in * layer.size  # recurrent part
        if extra > 0:
            nr, cr = _mix(layer.size, layer.size, core)
            ni, ci = ni + nr, [a + b for a, b in zip(ci, cr)]
        n += ni * passes
        cyc = [a + b * passes for a, b in zip(cyc, ci)]
    if n == 0:
        return AnnCycles(core, 0.0, Range(0, 0, 0), "no layers")
    if core == "cortex-m0":
        return AnnCycles(core, n, Range(*cyc),
                         "CMSIS-NN's portable path (no DSP), modelled one MAC at a time")
    cpi = [c / n for c in cyc]
    return AnnCycles(core, float(ann.instructions), Range(*(ann.instructions * k for k in cpi)),
                     "CMSIS-NN instructions x the cycles per instruction of its DSP loop mix")
