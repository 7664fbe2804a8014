"""The same network as an ANN on the same Cortex-M core: MACs and CMSIS-NN's measured cost.

The baseline is CMSIS-NN's ``arm_fully_connected_s8`` (DSP path, -O2, batch 1, layers chained)
run on the same emulated board (QEMU mps2-an386 under -icount), instructions per inference,
as measured for issue 11 (``CMSIS_NN_MEASURED``): a network of one of those shapes is costed
with its measured figure; any other with a model fitted to the six measurements, per layer
``K -> N``:

    1.873 x MACs of whole 4-column groups + 4.40 x (K mod 4) x N + 50.45 x N + 198.5

(least squares; the residuals on the six measured networks are below 145 instructions, 0.6 %
of the smallest). The inner loop is CMSIS-NN v6.2.0's ``arm_nn_vec_mat_mult_t_s8``: two output
rows by four input columns per iteration, 15 instructions per 8 MACs (1.875/MAC, counted from
the source); the per-output figure (about 50) is the requantisation epilogue, which an estimate
from the source had put at 26.

Instructions are what QEMU's ``-icount`` counts, so on the emulated board the ANN's figure is
compared with the SNN's measured instructions; cycles (for a real core's DWT) come from the
cycle model (:mod:`edgespike.profile.ann_cycles`) or, without it, the inner loop's Cortex-M4
timing (19 cycles per 15 instructions, TRM DDI 0439B Table 3-1).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from edgespike.model import Model

#: CMSIS-NN arm_fully_connected_s8 (DSP path, -O2, batch 1, layers chained), instructions per
#: inference measured on QEMU mps2-an386 -icount (issue 11), by layer sizes.
CMSIS_NN_MEASURED: dict[tuple[int, ...], int] = {
    (6, 64, 4): 5_350, (64, 128, 10): 24_961, (40, 256, 10): 37_940,
    (784, 256, 10): 394_680, (128, 128): 37_260, (512, 512): 517_080,
}
#: The least-squares fit to CMSIS_NN_MEASURED, per layer: instructions per MAC of whole
#: 4-column groups, per left-over column and output row, per output row, per layer.
CMSIS_NN_FIT = (1.873, 4.40, 50.45, 198.5)

#: Instructions of one inner-loop iteration over 2 rows x 4 columns (8 MACs), CMSIS-NN v6.2.0
#: arm_nn_vec_mat_mult_t_s8, ARM_MATH_DSP path (counted from the source).
CMSIS_NN_INNER_INSTR_2ROWS = 15
#: The same loop for the last, odd row (4 MACs): LDR, 2 SXTAB16, LDR, 2 SXTB16, 2 SMLAD, SUBS, BNE.
CMSIS_NN_INNER_INSTR_1ROW = 10
#: Cortex-M4 cycles of the 2-row iteration (TRM DDI 0439B Table 3-1): 3 LDR x 2 + 6 SXT + 4 SMLAD
#: + SUBS 1 + taken branch 2.
CMSIS_NN_INNER_CYCLES_2ROWS = 19
#: ... and of the 1-row iteration: 2 LDR x 2 + 4 SXT + 2 SMLAD + 1 + 2.
CMSIS_NN_INNER_CYCLES_1ROW = 13
#: Scalar left-over column (K % 4), per column, for a row pair / a single row (instructions).
CMSIS_NN_TAIL_INSTR_2ROWS = 8
CMSIS_NN_TAIL_INSTR_1ROW = 6
#: Per output row: requantize, offset, clamp, store, row-pair setup, as first estimated from
#: the source; the measurement puts it at about 50 (CMSIS_NN_FIT).
CMSIS_NN_EPILOGUE_INSTR = 26

#: Instructions per MAC of the inner loop: 15 / 8.
CMSIS_NN_INSTR_PER_MAC = CMSIS_NN_INNER_INSTR_2ROWS / 8
#: Cortex-M4 cycles per MAC of the inner loop: 19 / 8.
CMSIS_NN_CYCLES_PER_MAC_M4 = CMSIS_NN_INNER_CYCLES_2ROWS / 8
#: Cortex-M4 cycles per instruction of the inner loop (19 / 15), for cycles without the model.
_INNER_CPI_M4 = CMSIS_NN_INNER_CYCLES_2ROWS / CMSIS_NN_INNER_INSTR_2ROWS

SOURCE = ("CMSIS-NN arm_fully_connected_s8 (DSP path, -O2, batch 1, layers chained) measured on "
          "QEMU mps2-an386 -icount: 6-64-4 5,350; 64-128-10 24,961; 40-256-10 37,940; "
          "784-256-10 394,680; 128x128 37,260; 512x512 517,080 instructions per inference "
          "(issue 11); other shapes from a fit to them (1.873/MAC + 50.45/output + 198.5/layer)")


def dense_cost(fan_in: int, fan_out: int) -> tuple[int, float, float]:
    """One pass of an int8 dense layer ``fan_in -> fan_out`` on CMSIS-NN, from the fit to the
    measured figures: ``(MACs, instructions, Cortex-M4 cycles)`` (cycles: the instructions at
    the inner loop's cycles per instruction)."""
    per_mac, per_tail, per_out, per_layer = CMSIS_NN_FIT
    quads, tail = divmod(fan_in, 4)
    instr = (per_mac * 4 * quads * fan_out + per_tail * tail * fan_out + per_out * fan_out
             + per_layer)
    return fan_in * fan_out, float(instr), float(instr * _INNER_CPI_M4)


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
    shape = (model.input_size, *(la.size for la in model.layers))
    measured = CMSIS_NN_MEASURED.get(shape) if all(la.recurrent is None for la in model.layers) \
        else None
    if measured is not None:
        # this very network was measured: scale the fitted layers to the measured total
        k = measured * passes / sum(la.instructions for la in layers)
        for la in layers:
            la.instructions *= k
            la.cycles *= k
    return AnnBaseline(passes=passes, macs=sum(la.macs for la in layers),
                       instructions=float(sum(la.instructions for la in layers)),
                       cycles=float(sum(la.cycles for la in layers)), layers=layers,
                       passes_reason=reason,
                       source=SOURCE + ("; this network measured" if measured else
                                        "; this network from the fit"))
