"""Cycles, not instructions (issue 17): the cycle models on hand-written sequences with the
timings of the Arm Technical Reference Manuals, on hand-made block traces with hand-computed
cycles, the ANN baseline in cycles, the report's range, and the QEMU block-trace plugin against
SysTick under -icount."""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgespike import paths
from edgespike.errors import ToolMissing
from edgespike.profile import build, format_report, load_targets
from edgespike.profile.ann import ann_baseline
from edgespike.profile.ann_cycles import INNER_2ROWS, ann_cycles
from edgespike.profile.cycles import (CASES, Range, classify, parse_sequence, sequence_cycles,
                                      split_mnemonic, trace_cycles)
from edgespike.profile.estimate import CoreEstimate, CycleEstimate
from edgespike.sim import elf, reference
from edgespike.sim.trace import BlockTrace, EdgeStat, InsnStat, TbStat

from qemu_marks import needs_qemu

REPO = Path(__file__).resolve().parents[1]


def m4(seq: str, case: str = "central", taken=None) -> float:
    return sequence_cycles(seq, "cortex-m4", case, taken)


# ------------------------------------------------------------------ decoding objdump's syntax

@pytest.mark.parametrize("mnemonic, base, cond", [
    ("ldrbeq.w", "ldrb", True), ("bls.n", "b", True), ("mls", "mls", False),
    ("teq", "teq", False), ("movs", "mov", False), ("moveq", "mov", True),
    ("lsls", "lsl", False), ("bl", "bl", False), ("blt", "b", True), ("bcc.n", "b", True),
    ("smlal", "smlal", False), ("itete", "itete", False), ("ornne", "orn", True),
    ("ldmia.w", "ldmia", False), ("vldr", "vldr", False)])
def test_mnemonics_split_into_base_and_condition(mnemonic, base, cond) -> None:
    assert split_mnemonic(mnemonic) == (base, cond)


def test_operands_give_registers_and_addressing() -> None:
    op = classify(0x100, 4, "ldr.w", "r2, [r4], #4")
    assert op.kind == "load" and op.dst == {2, 4} and op.wback == {4} and op.areg == {4}
    op = classify(0x100, 2, "str", "r1, [r3, r2]")
    assert op.kind == "store" and op.reg_offset and op.src == {1} and op.areg == {2, 3}
    op = classify(0x100, 2, "pop", "{r4, r5, r6, pc}")
    assert op.kind == "ldm" and op.n == 4 and op.pc and op.branch == "load"
    op = classify(0x100, 4, "stmdb", "sp!, {r4, r5, r6, r7, r8, r9, sl, fp, lr}")
    assert op.kind == "stm" and op.n == 9 and op.areg == {13}
    op = classify(0x100, 4, "umlal", "r0, r1, r2, r3")
    assert op.kind == "mull" and op.dst == {0, 1} and op.src == {0, 1, 2, 3}
    assert classify(0x100, 2, "add", "r2, r7").src == {2, 7}          # Rdn, Rm reads both
    assert classify(0x100, 2, "lsls", "r0, r1, #2").src == {1}
    assert classify(0x100, 2, "mov", "r0, r1").src == {1}
    assert classify(0x100, 2, "adds", "r0, #1").src == {0}
    assert classify(0x100, 2, "movs", "r0, #1").src == set()
    assert classify(0x100, 2, "bx", "lr").branch == "indirect"
    assert classify(0x100, 2, "ldr", "r3, [pc, #24]").literal
    assert not classify(0x100, 4, "sxtab16", "r7, r10, r6").v6m
    assert classify(0x100, 4, "bl", "1728 <es_engine_run>").v6m


# ------------------------------------------- Cortex-M4: TRM Table 3-1 and 3.3.2 (load/store)

def test_m4_load_pipelining_follows_the_trm_examples() -> None:
    # TRM 3.3.2: "LDR R0,[R1]; LDR R1,[R2] - normally three cycles total" ...
    assert m4("ldr r0, [r1]\nldr r1, [r2]") == 3
    assert m4("ldr r0, [r1, r2]\nstr r0, [r3, #20]") == 3
    assert m4("ldr r0, [r1, r2]\nstr r1, [r3, r2]") == 3
    assert m4("ldr r0, [r1, r5]\nldr r1, [r2]\nldr r2, [r3, #4]") == 4
    assert m4("ldr r0, [r1]") == 2 and m4("str r0, [r1, #4]") == 1
    # without pipelining (high): every load 2 cycles
    assert m4("ldr r0, [r1, r5]\nldr r1, [r2]\nldr r2, [r3, #4]", "high") == 6


def test_m4_load_use_stalls() -> None:
    # the second load's address is the first load's result: no pipelining
    assert m4("ldr r0, [r1]\nldr r2, [r0]") == 4
    # an address computed by the data-processing instruction just before: one more cycle
    assert m4("add.w r1, r1, #4\nldr r0, [r1]") == 4
    assert m4("add.w r1, r1, #4\nldr r0, [r1]", "low") == 3
    # a post-indexed base written back by a load is not its loaded value: still pipelines
    assert m4("ldr.w r2, [r4], #4\nldr r3, [r4]") == 3
    # the loaded value used by an ALU instruction: the load's two cycles already cover it
    assert m4("ldr r0, [r1]\nadds r0, #1") == 3


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_m4_ldm_stm_of_n_registers(n: int) -> None:
    regs = ", ".join(f"r{i}" for i in range(1, n + 1))
    for case in CASES:
        assert m4(f"ldmia r0!, {{{regs}}}", case) == 1 + n
        assert m4(f"stmia r0!, {{{regs}}}", case) == 1 + n
    # LDRD/STRD: 1 + N with N = 2
    assert m4("ldrd r2, r3, [r0, #8]") == 3 and m4("strd r2, r3, [sp, #32]") == 3
    # POP with PC: 1 + N + P, P = 3 for a load into the PC ("three cycles for the reload")
    assert m4(f"pop {{{regs}, pc}}") == 1 + (n + 1) + 3


def test_m4_taken_and_not_taken_branches() -> None:
    seq = "cmp r0, #0\nbne.n 1000"
    assert m4(seq, taken=[False]) == 2                       # not taken: 1
    assert m4(seq, taken=[True]) == 3                        # taken: 1 + P, P = 1
    assert m4(seq, "low", [True]) == 3 and m4(seq, "high", [True]) == 5   # P from 1 to 3
    # P = 2 when the target is a 32-bit instruction on a halfword boundary
    loop = parse_sequence("ldr.w r0, [r1]\nsubs r2, #1\nbne.n 1000", start=0x1002)
    assert sequence_cycles(loop, "cortex-m4", "central", [True]) == 2 + 1 + 1 + 2
    loop = parse_sequence("ldr.w r0, [r1]\nsubs r2, #1\nbne.n 1000", start=0x1000)
    assert sequence_cycles(loop, "cortex-m4", "central", [True]) == 2 + 1 + 1 + 1
    assert m4("bl 2000") == 2 and m4("bx lr") == 2


def test_m4_multiplies_and_divides() -> None:
    for op in ("umull r0, r1, r2, r3", "smull r0, r1, r2, r3", "smlal r0, r1, r2, r3",
               "umlal r0, r1, r2, r3", "mla r0, r1, r2, r3", "smlad r0, r1, r2, r3",
               "mul r0, r1, r0"):
        assert all(m4(op, c) == 1 for c in CASES), op
    # SDIV / UDIV: 2 to 12 cycles by early termination on the operands
    assert [m4("sdiv r0, r1, r2", c) for c in CASES] == [2, 7, 12]
    assert [m4("udiv r0, r1, r2", c) for c in CASES] == [2, 7, 12]


def test_m4_it_folds_after_a_16_bit_instruction() -> None:
    assert m4("cmp r0, #0\nit eq\nmoveq r1, #1") == 2
    assert m4("cmp.w r0, #0\nit eq\nmoveq r1, #1") == 3
    assert m4("cmp r0, #0\nit eq\nmoveq r1, #1", "high") == 3


# ------------------------------------------------------------------- Cortex-M0: TRM Table 3-1

def m0(seq: str, case: str = "central", taken=None) -> float:
    return sequence_cycles(seq, "cortex-m0", case, taken)


def test_m0_timings() -> None:
    assert m0("ldr r0, [r1]\nldr r1, [r2]") == 4                 # loads 2, never pipelined
    assert m0("str r0, [r1, #4]") == 2
    assert m0("cmp r0, #0\nbne.n 1000", taken=[False]) == 2       # not taken 1
    assert m0("cmp r0, #0\nbne.n 1000", taken=[True]) == 4        # taken 3
    assert m0("b.n 1000") == 3 and m0("bl 2000") == 4 and m0("bx lr") == 3
    assert m0("pop {r4, r5, pc}") == 4 + 3                        # 4 + N
    assert m0("ldmia r0!, {r1, r2, r3}") == 4 and m0("push {r4, lr}") == 3
    assert [m0("muls r0, r1, r0", c) for c in CASES] == [1, 1, 32]   # 1 or 32 by configuration


def test_m0_model_refuses_armv7_code() -> None:
    ops = parse_sequence("umull r0, r1, r2, r3")
    trace = BlockTrace(1, 1, [1], [1], 0, [], [_tb(ops, execs=1)], [])
    with pytest.raises(ValueError, match="ARMv6-M code only"):
        trace_cycles(trace, _image(ops), "cortex-m0")


# ------------------------------------------------------------------ M33 and M7 approximations

def test_m33_and_m7_pairing_and_late_results() -> None:
    pair, dep = "adds r0, r1, r2\nadds r3, r4, r5", "adds r0, r1, r2\nadds r3, r0, r5"
    for core in ("cortex-m33", "cortex-m7"):
        assert sequence_cycles(pair, core) == 1                 # issued together
        assert sequence_cycles(dep, core) == 2                  # dependent: one after the other
        assert sequence_cycles(pair, core, "high") == 2         # no dual issue in the worst case
        assert sequence_cycles("ldr r0, [r1]\nadds r2, r0, #1", core) == 3   # load-use stall
    # M7: two loads never pair (one load/store unit), DSP only first in a pair
    assert sequence_cycles("ldr r0, [r1]\nldr r2, [r3]", "cortex-m7") == 2
    assert sequence_cycles("adds r0, r1, r2\nsxtab16 r3, r4, r5", "cortex-m7") == 2
    assert sequence_cycles("sxtab16 r3, r4, r5\nadds r0, r1, r2", "cortex-m7") == 1
    # M7: a conditional branch taken half the time mispredicts at 0.5 (low and high)
    site = parse_sequence("bne.n 1000")[0]
    from edgespike.profile.cycles import branch_site_cost
    assert branch_site_cost(site, [(None, 50)], 50, "cortex-m7", "low") == 0.5 * 100 * 4
    assert branch_site_cost(site, [(None, 50)], 50, "cortex-m7", "high") == 0.5 * 100 * 8 + 50
    # a loop branch taken 99 times in 100: low one misprediction, high 2f(1-f)
    assert branch_site_cost(site, [(None, 99)], 1, "cortex-m7", "low") == pytest.approx(4.0)
    assert branch_site_cost(site, [(None, 99)], 1, "cortex-m7", "high") == pytest.approx(
        2 * 0.99 * 0.01 * 100 * 8 + 99)


# ------------------------------------------------------ hand-made block traces, hand-computed

def _image(ops) -> elf.ElfImage:
    image = elf.ElfImage(Path("hand-made.elf"))
    image.functions = [(min(o.addr for o in ops), 0x10000, "hand")]
    for o in ops:
        image.lines[o.addr] = elf.Line(o.addr, o.size, o.base, "")
    return image


def _tb(ops, execs: int, cuts: int = 0, cut_at: int = 0, mem=None, mis1=None) -> TbStat:
    mem = mem or {}
    mis1 = mis1 or {}
    return TbStat(vaddr=ops[0].addr, n=len(ops), cut_mixed=False, cut_at=cut_at, execs=[execs],
                  jumps_in=[0], jumps_out=[0], cuts=[cuts],
                  insns=[InsnStat(o.addr, o.size, "", [mem.get(o.addr, 0)],
                                  [mis1.get(o.addr, 0)], [0]) for o in ops])


@pytest.fixture
def hand_trace(monkeypatch):
    """Five blocks of an imagined run:
    A (0x1000) a loop of 10 iterations, back edge taken 9 times, 3 misaligned loads;
    B (0x100a) the loop's exit: a store and a return by POP {r4, pc} to C;
    C (0x2000) a 32-bit MOV run twice (after B and after D);
    D (0x3000) LDR/ADDS/BX LR, run twice, once cut after its first instruction (an I/O access
      under -icount), returning to C;
    E (0x4000) CMP / IT EQ / LDREQ run 4 times, the load executing once (one memory access)."""
    a = parse_sequence("ldr r0, [r1]\nldr r2, [r3]\nadds r0, r0, r2\nsubs r4, #1\nbne.n 1000",
                       start=0x1000)
    b = parse_sequence("str r0, [r5, #0]\npop {r4, pc}", start=0x100A)
    c = parse_sequence("mov.w r0, #0", start=0x2000)
    d = parse_sequence("ldr r0, [r1]\nadds r0, #1\nbx lr", start=0x3000)
    e = parse_sequence("cmp r0, #0\nit eq\nldreq r0, [r1]", start=0x4000)
    ops = a + b + c + d + e
    by_addr = {o.addr: o for o in ops}
    monkeypatch.setattr("edgespike.profile.cycles.classify",
                        lambda addr, size, m, o: by_addr[addr])
    tbs = [_tb(a, 10, mis1={0x1000: 3}), _tb(b, 1), _tb(c, 2), _tb(d, 2, cuts=1, cut_at=1),
           _tb(e, 4, mem={e[2].addr: 1})]
    key = {name: (blk[0].addr, len(blk)) for name, blk in zip("ABCDE", (a, b, c, d, e))}
    edges = [EdgeStat(key["A"], key["A"], [9]), EdgeStat(key["B"], key["C"], [1]),
             EdgeStat(key["D"], key["C"], [1])]
    trace = BlockTrace(buckets=1, windows=1, window_insns=[70], bucket_insns=[70],
                       sub_windows=0, marks=[], tbs=tbs, edges=edges)
    return trace, _image(ops)


def test_hand_made_trace_gives_hand_computed_m4_cycles(hand_trace) -> None:
    trace, image = hand_trace
    tc = trace_cycles(trace, image, "cortex-m4", hotspots=5)
    # instructions: A 10x5, B 2, C 2, D 3 + 1 (the cut run), E 4x3
    assert tc.total_instructions() == 50 + 2 + 2 + 4 + 12 == 70
    # central: A 10 x (2+1+1+1+1) + 9 refills x P=1 + 3 misaligned x 1 = 72
    #          B 1 + (1+2) + POP's reload P=3 = 7;  C 2 x 1 = 2
    #          D (2+1+1) + the cut run's 2 + BX's refill 1 = 7
    #          E 4 x (1 + IT folded 0 + 2) - 3 skipped loads x (2-1) = 9
    assert tc.total().central == 72 + 7 + 2 + 7 + 9 == 97
    # high: no pipelining, STR 2, IT 1, every refill 3
    assert tc.total().high == (10 * 7 + 9 * 3 + 3) + (2 + 3 + 3) + 2 + (4 + 2 + 3) + (16 - 3)
    # low: as central but BX/POP refills 1
    assert tc.total().low == 72 + 5 + 2 + 7 + 9
    assert tc.misaligned == 3 and tc.jumps == 11
    assert tc.hotspots[0].addr == 0x1000 and tc.hotspots[0].cycles == 72 + 0  # A and its back edge
    assert tc.hotspots[0].function == "hand+0x0" or tc.hotspots[0].function == "hand"


def test_hand_made_trace_gives_hand_computed_m0_cycles(monkeypatch) -> None:
    a = parse_sequence("ldr r0, [r1]\nadds r0, r0, r2\nsubs r4, #1\nbne.n 1000", start=0x1000)
    by_addr = {o.addr: o for o in a}
    monkeypatch.setattr("edgespike.profile.cycles.classify", lambda addr, s, m, o: by_addr[addr])
    key = (0x1000, len(a))
    trace = BlockTrace(1, 1, [40], [40], 0, [], [_tb(a, 10)], [EdgeStat(key, key, [9])])
    tc = trace_cycles(trace, _image(a), "cortex-m0")
    # 10 x (2 + 1 + 1 + 1) + 9 taken branches x 2 more (B<cc> taken: 3)
    assert tc.total().central == 50 + 18
    assert tc.cpi().central == pytest.approx(68 / 40)


# -------------------------------------------------------------------------- the ANN baseline

def test_ann_inner_loop_costs_19_cycles_on_the_m4() -> None:
    ops = parse_sequence(INNER_2ROWS)
    assert len(ops) == 15
    taken = [True]
    assert sequence_cycles(ops, "cortex-m4", "central", taken) == 19   # ann.py's hand count


def test_ann_cycles_scale_the_instruction_figure(tmp_path) -> None:
    from edgespike.model import Layer, Model, Neurons, Weights

    model = Model(input_size=64, timesteps=2, layers=[
        Layer(Weights(np.ones((64, 128), np.int8)), Neurons(du=4096, dv=0, vth=100)),
        Layer(Weights(np.ones((128, 10), np.int8)), Neurons(du=4096, dv=0, vth=100))]).validate()
    ann = ann_baseline(model, passes=1)
    m4c = ann_cycles(ann, "cortex-m4")
    assert m4c.instructions == ann.instructions
    assert m4c.cycles.low <= m4c.cycles.central <= m4c.cycles.high
    assert 1.0 < m4c.cpi.central < 1.5
    m0c = ann_cycles(ann, "cortex-m0")          # its own (portable path) instruction count
    assert m0c.instructions > 2 * ann.instructions and m0c.cycles.high > 4 * m0c.cycles.central


# ------------------------------------------------------------------------ the report's range

def _estimate(model, instr: float) -> CycleEstimate:
    layers = [instr * 0.6] + [instr * 0.3 / max(1, len(model.layers) - 1)] * (len(model.layers) - 1)
    cores = {}
    for core, k in (("cortex-m4", 1.5), ("cortex-m7", 1.1), ("cortex-m0", 1.6)):
        rng = Range(instr * (k - 0.1), instr * k, instr * (k + 0.4))
        cores[core] = CoreEstimate(core=core, build="cortex-m4 build", instructions=instr,
                                   cycles=rng, layer_instructions=layers,
                                   layer_cycles=[Range(x * (k - 0.1), x * k, x * (k + 0.4))
                                                 for x in layers],
                                   cpi_layers=[k] * len(layers), cpi_rest=k)
    return CycleEstimate(inferences=3, cores=cores)


def test_profile_prices_mcu_targets_from_estimated_cycles_with_their_range() -> None:
    from edgespike.model.samples import digits_templates

    s = digits_templates(weights="int8")
    model, x = s.model, s.inputs[:3]
    ref = reference.run_batch(model, x)
    dev = reference.run_batch(model, x)
    for o in dev:
        o.cycles, o.cycle_source = 10_000, "qemu_icount"
        for c in o.counters:
            c.cycles = 6_000
    est = _estimate(model, 10_000)
    r = build(model, x, dev, ref, load_targets(), board="mps2-an386", core="cortex-m4",
              clock_hz=25_000_000, cycle_estimate=est)
    by = {e.target: e for e in r.energy}
    l4 = by["stm32l4"]                                   # a Cortex-M4 target: the M4 estimate
    assert l4.cycle_kind == "estimated cycles" and l4.cycles == 15_000
    assert l4.uj == pytest.approx(15_000 * 300e-6)
    assert (l4.uj_low, l4.uj_high) == (pytest.approx(14_000 * 300e-6), pytest.approx(19_000 * 300e-6))
    assert l4.ann_uj == pytest.approx(r.ann_cycles["cortex-m4"].cycles.central * 300e-6)
    assert by["stm32h7"].cycles == 11_000                # its own core's model
    assert r.latency_ms == pytest.approx(15_000 / 25e6 * 1e3)
    assert r.latency_ms_range == (pytest.approx(14_000 / 25e6 * 1e3), pytest.approx(19_000 / 25e6 * 1e3))
    text = format_report(r)
    assert re.search(r"instructions per inference +10,000 \(exact instructions \(QEMU -icount, "
                     r"to within 40\), not cycles\)", text)
    assert re.search(r"est\. cycles/inference, cortex-m4 +15,000 \(14,000-19,000\) CPI 1\.50",
                     text)
    assert re.search(r"stm32l4 +4\.5 +4\.2-5\.7 ", text)     # uJ, its range
    d = json.loads(json.dumps(r.as_dict(), default=str))
    assert d["device_cycles"] == {"low": 14_000, "central": 15_000, "high": 19_000}
    assert d["cycle_estimate"]["cores"]["cortex-m4"]["cpi"]["central"] == 1.5
    # without an estimate: instructions priced at CPI 1, said to be a lower bound, and why
    r2 = build(model, x, dev, ref, load_targets(), board="mps2-an386", core="cortex-m4",
               clock_hz=25_000_000, cycle_estimate_note="plugin not built")
    assert {e.target: e for e in r2.energy}["stm32l4"].uj == pytest.approx(10_000 * 300e-6)
    assert any("lower bounds" in n and "plugin not built" in n for n in r2.notes)
    assert "not available: plugin not built" in format_report(r2)


def test_measured_dwt_cycles_are_shown_next_to_the_estimate() -> None:
    from edgespike.model.samples import digits_templates

    s = digits_templates(weights="int8")
    model, x = s.model, s.inputs[:3]
    ref = reference.run_batch(model, x)
    dev = [replace(o, cycles=16_500, cycle_source="dwt") for o in reference.run_batch(model, x)]
    r = build(model, x, dev, ref, load_targets(), board="stm32f4", core="cortex-m4",
              clock_hz=168_000_000, cycle_estimate=_estimate(model, 10_000))
    by = {e.target: e for e in r.energy}
    assert by["stm32l4"].cycle_kind == "measured cycles" and by["stm32l4"].cycles == 16_500
    assert by["stm32h7"].cycle_kind == "estimated cycles"   # another core: the model
    assert any("measured / estimated cycles (cortex-m4): 1.100" in n for n in r.notes)


# ---------------------------------------------------------------- the plugin and its build

def test_plugin_build_degrades_with_the_reason(tmp_path) -> None:
    env = dict(os.environ, QEMU_SOURCE_TARBALL=str(tmp_path / "missing.tar.xz"))
    proc = subprocess.run(["bash", str(REPO / "firmware/qemu-plugin/build.sh"),
                           str(tmp_path / "qemu-plugin")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    why = (tmp_path / "qemu-plugin" / "UNAVAILABLE").read_text()
    assert "qemu-plugin.h could not be fetched" in why
    old = os.environ.get("EDGESPIKE_BUILD")
    os.environ["EDGESPIKE_BUILD"] = str(tmp_path)
    try:
        with pytest.raises(ToolMissing, match="not built: qemu-plugin.h could not be fetched"):
            paths.trace_plugin()
    finally:
        if old is None:
            del os.environ["EDGESPIKE_BUILD"]
        else:
            os.environ["EDGESPIKE_BUILD"] = old


def _small_model(encoding: str):
    from edgespike.model import Layer, Model, Neurons, Weights

    rng = np.random.default_rng(3)
    if encoding == "int8":
        w = Weights(rng.integers(-128, 128, (48, 40)).astype(np.int8), exp=-6)
    else:
        w = Weights(rng.integers(-1, 2, (48, 40)).astype(np.int8), encoding="ternary",
                    a_pos=20, a_neg=24, exp=-2)
    w2 = Weights(rng.integers(-128, 128, (40, 5)).astype(np.int8), exp=-5)
    return Model(input_size=48, timesteps=10, layers=[
        Layer(w, Neurons(du=1024, dv=512, vth=120)), Layer(w2, Neurons(du=4096, dv=256, vth=90))
    ]).validate()


class TestBlockTrace:
    pytestmark = needs_qemu(paths.runner_image, paths.trace_plugin)

    @pytest.mark.parametrize("encoding", ["int8", "ternary"])
    def test_instruction_totals_equal_systick_within_its_resolution(self, encoding) -> None:
        """The plugin's count between the first and last SysTick read of each inference (its
        marks) equals the firmware's SysTick figure under -icount to within 40; its layer
        steps and windows are all seen."""
        from edgespike.sim.trace import trace_batch

        model = _small_model(encoding)
        x = (np.random.default_rng(0).random((3, 10, 48)) < 0.2).astype(np.uint8)
        run = trace_batch(model, x)
        assert run.trace.windows == 3 and run.layers_split
        assert run.trace.sub_windows == 3 * 10 * 2
        for w, out in enumerate(run.outputs):
            marks = [c for ww, c in run.trace.marks if ww == w]
            assert len(marks) >= 2                   # the first and the last read at least
            assert abs((marks[-1] - marks[0]) - out.cycles) < 40
        assert sum(run.trace.window_insns) == sum(run.trace.bucket_insns)
        image = elf.load(run.image)
        tc = trace_cycles(run.trace, image, "cortex-m4", hotspots=3)
        assert tc.total_instructions() == sum(run.trace.window_insns) and tc.unknown == 0
        cpi = tc.cpi()
        assert 1.0 < cpi.low <= cpi.central <= cpi.high < 3.0
        assert all(h.function.split("+")[0] for h in tc.hotspots)

    def test_m0_build_runs_the_same_integers_and_prices_as_m0(self) -> None:
        from edgespike.sim.trace import trace_batch

        try:
            paths.runner_image("mps2-an386", "m0")
        except ToolMissing as exc:
            pytest.skip(str(exc))
        model = _small_model("int8")
        x = (np.random.default_rng(1).random((2, 10, 48)) < 0.2).astype(np.uint8)
        run = trace_batch(model, x, kernels="m0")
        for out, ref in zip(run.outputs, reference.run_batch(model, x)):
            assert np.array_equal(out.scores, ref.scores)
            assert all(np.array_equal(a, b) for a, b in zip(out.spikes, ref.spikes))
            assert [c.synops for c in out.counters] == [c.synops for c in ref.counters]
        tc = trace_cycles(run.trace, elf.load(run.image), "cortex-m0")
        assert tc.cpi().central >= 1.0 and tc.total().high > tc.total().central
        with pytest.raises(ValueError, match="ARMv6-M"):
            trace_cycles(trace_batch(model, x[:1]).trace,
                         elf.load(paths.runner_image()), "cortex-m0")
