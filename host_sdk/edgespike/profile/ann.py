"""The same network as an ANN on the same Cortex-M core: MACs and CMSIS-NN-class cost.

An int8 dense layer ``K -> N`` run by CMSIS-NN's ``arm_nn_vec_mat_mult_t_s8`` (CMSIS-NN
v6.2.0, ``Source/NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c``, the ``ARM_MATH_DSP`` path
every Cortex-M4/M7 takes, weights without offset) processes two output rows at a time and four
input columns per loop iteration. Its inner loop is, per iteration (8 MACs):

    1 LDR (4 inputs) + 2 SXTAB16 (inputs + offset to 2x16 bit)
    + 2 x [1 LDR (4 weights) + 2 SXTB16 + 2 SMLAD]  + SUBS + BNE         = 15 instructions

so 15 / 8 = 1.875 instructions per MAC. With the Cortex-M4 instruction timings (Arm Cortex-M4
Technical Reference Manual, DDI 0439B, Table 3-1: LDR 2 cycles when not pipelined with another
load, SXTB16/SXTAB16/SMLAD/SUBS 1 cycle, a taken branch 1 + P with P >= 1 for the refill) the
same loop takes 6 + 6 + 4 + 1 + 2 = 19 cycles, 2.375 cycles per MAC. Columns left over when K
is not a multiple of 4 take a scalar loop (LDRSB, ADD, LDRSB, MLA per row, plus the loop:
8 instructions per column for a row pair, 6 for a single row). Each output row then pays the
requantization (``arm_nn_requantize``: 64-bit multiply, rounding, shift), output offset, clamp
(ReLU folded in), store and its share of the row-pair setup: about 26 instructions, counted from
the C source (an estimate, not a measurement).

Instructions are what QEMU's ``-icount`` counts, so on the emulated board the ANN's
instruction count is compared with the SNN's measured instructions; on a real core (DWT
cycles) the cycle estimate is used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from edgespike.model import Model

#: Instructions of one inner-loop iteration over 2 rows x 4 columns (8 MACs), CMSIS-NN v6.2.0
#: arm_nn_vec_mat_mult_t_s8, ARM_MATH_DSP path (see the module docstring).
CMSIS_NN_INNER_INSTR_2ROWS = 15
#: The same loop for the last, odd row (4 MACs): LDR, 2 SXTAB16, LDR, 2 SXTB16, 2 SMLAD, SUBS, BNE.
CMSIS_NN_INNER_INSTR_1ROW = 10
#: Cortex-M4 cycles of the 2-row iteration (TRM DDI 0439B Table 3-1): 3 LDR x 2 + 6 SXT + 4 SMLAD
#: + SUBS 1 + taken branch 2.
CMSIS_NN_INNER_CYCLES_2ROWS = 19
#: ... and of the 1-row iteration: 2 LDR x 2 + 4 SXT + 2 SMLAD + 1 + 2.
CMSIS_NN_INNER_CYCLES_1ROW = 13
#: Scalar left-over column (K % 4), per column, for a row pair / a single row (instructions;
#: the cycle estimate adds one cycle per LDRSB).
CMSIS_NN_TAIL_INSTR_2ROWS = 8
CMSIS_NN_TAIL_INSTR_1ROW = 6
#: Per output row: requantize, offset, clamp, store, row-pair setup (estimated from the source).
CMSIS_NN_EPILOGUE_INSTR = 26

#: Instructions per MAC of the inner loop: 15 / 8.
CMSIS_NN_INSTR_PER_MAC = CMSIS_NN_INNER_INSTR_2ROWS / 8
#: Cortex-M4 cycles per MAC of the inner loop: 19 / 8.
CMSIS_NN_CYCLES_PER_MAC_M4 = CMSIS_NN_INNER_CYCLES_2ROWS / 8

SOURCE = ("CMSIS-NN v6.2.0 arm_nn_vec_mat_mult_t_s8 (ARM_MATH_DSP path): 15 instructions per "
          "8 MACs in the inner loop (1.875/MAC); 19 Cortex-M4 cycles (2.375/MAC) with the "
          "timings of the Cortex-M4 TRM (DDI 0439B, Table 3-1); about 26 instructions per "
          "output for requantize/clamp/store (estimated from the source)")


def dense_cost(fan_in: int, fan_out: int) -> tuple[int, float, float]:
    """One pass of an int8 dense layer ``fan_in -> fan_out`` on CMSIS-NN:
    ``(MACs, instructions, Cortex-M4 cycles)``."""
    pairs, odd = divmod(fan_out, 2)
    quads, tail = divmod(fan_in, 4)
    instr = (pairs * (quads * CMSIS_NN_INNER_INSTR_2ROWS + tail * CMSIS_NN_TAIL_INSTR_2ROWS)
             + odd * (quads * CMSIS_NN_INNER_INSTR_1ROW + tail * CMSIS_NN_TAIL_INSTR_1ROW)
             + fan_out * CMSIS_NN_EPILOGUE_INSTR)
    cycles = (pairs * (quads * CMSIS_NN_INNER_CYCLES_2ROWS + tail * (CMSIS_NN_TAIL_INSTR_2ROWS + 3))
              + odd * (quads * CMSIS_NN_INNER_CYCLES_1ROW + tail * (CMSIS_NN_TAIL_INSTR_1ROW + 2))
              + fan_out * CMSIS_NN_EPILOGUE_INSTR)
    return fan_in * fan_out, float(instr), float(cycles)


@dataclass
class AnnLayer:
    """One layer of the ANN, per inference (all passes)."""

    layer: int
    fan_in: int
    size: int
    macs: int
    instructions: float
    cycles: float


@dataclass
class AnnBaseline:
    """The same network (same layer sizes, int8) as an ANN, per inference.

    Attributes:
        passes: forward passes per inference: 1 when the input is the same at every time step
            (a static image), else one per time step (a time series seen frame by frame).
        macs: multiply-accumulates per inference.
        instructions: CMSIS-NN-class instructions per inference (comparable to QEMU icount).
        cycles: Cortex-M4 cycles per inference (comparable to DWT).
        source: where the per-MAC figures come from.
    """

    passes: int
    macs: int
    instructions: float
    cycles: float
    layers: list[AnnLayer] = field(default_factory=list)
    source: str = SOURCE
    passes_reason: str = ""

    def cost(self, cycle_source: str) -> float:
        """The figure in the unit of ``cycle_source``: instructions for ``qemu_icount``,
        cycles otherwise."""
        return self.instructions if cycle_source == "qemu_icount" else self.cycles

    def as_dict(self) -> dict:
        return asdict(self)


def static_input(inputs: np.ndarray) -> bool:
    """True when every input is the same at every time step (``(n, T, C)`` or ``(T, C)``)."""
    x = np.asarray(inputs)
    if x.ndim == 2:
        x = x[None]
    return bool(x.shape[1] <= 1 or np.array_equal(x, np.repeat(x[:, :1], x.shape[1], axis=1)))


def ann_baseline(model: Model, inputs: Optional[np.ndarray] = None,
                 passes: Optional[int] = None) -> AnnBaseline:
    """MACs and CMSIS-NN-class cost of ``model``'s network run as an int8 ANN.

    ``passes`` (forward passes per inference) defaults to 1 when ``inputs`` are static over
    time (an image repeated by direct encoding) and to ``model.timesteps`` otherwise (a series
    the ANN sees frame by frame; an ANN on a rate-coded image would also need one pass: give
    ``passes=1``). A recurrent SNN layer becomes a recurrent ANN layer (``size x size`` more).
    """
    if passes is None:
        if inputs is not None and static_input(inputs):
            passes, reason = 1, "input identical at every step: one forward pass"
        else:
            passes, reason = model.timesteps, "input changes over time: one pass per time step"
    else:
        reason = "given"
    layers = []
    for li, layer in enumerate(model.layers):
        macs, instr, cyc = dense_cost(layer.weights.fan_in, layer.size)
        if layer.recurrent is not None:
            m2, i2, c2 = dense_cost(layer.size, layer.size)
            macs, instr, cyc = macs + m2, instr + i2, cyc + c2
        layers.append(AnnLayer(li, layer.weights.fan_in, layer.size, macs * passes,
                               instr * passes, cyc * passes))
    return AnnBaseline(passes=passes, macs=sum(la.macs for la in layers),
                       instructions=float(sum(la.instructions for la in layers)),
                       cycles=float(sum(la.cycles for la in layers)), layers=layers,
                       passes_reason=reason)
