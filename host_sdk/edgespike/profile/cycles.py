"""Cycles, not instructions: a timing model per Cortex-M core, applied to instruction traces.

QEMU counts instructions. This module turns a trace of executed blocks (the es_blocktrace
plugin's record, :mod:`edgespike.sim.trace`) or a hand-written instruction sequence into
clock cycles, per core and for three sets of assumptions:

- ``low``: every uncertain timing takes its best case (load pipelining everywhere the manual
  allows, one-cycle pipeline refills, folded IT, dual issue where the core has it);
- ``central``: the manual's normal case (the figure the profile prices energy with);
- ``high``: every uncertain timing takes its worst case (no pipelining, three-cycle refills).

Cores (docs/profile.md, "Cycle model", has every figure with its source):

- ``cortex-m4``: Arm Cortex-M4 TRM (DDI 0439B / 100166), Table 3-1 and section 3.3.2 (load/store
  timings): loads 2 cycles, pipelined after a load (1) unless the address depends on it, STR with
  an immediate offset 1, LDRD/STRD 3, LDM/STM/PUSH/POP 1+N, every multiply (MUL, MLA, UMULL,
  SMLAL, SMLAD) 1, SDIV/UDIV 2-12, a taken branch 1+P with P the pipeline refill (1-3), an
  address computed by the instruction just before a load/store +1, a misaligned access +1/+2;
- ``cortex-m0``: Arm Cortex-M0 TRM (DDI 0432C), Table 3-1: loads and stores 2, LDM/STM 1+N,
  a taken branch 3 (BL 4, POP {pc} 4+N), MULS 1 or 32 by configuration; only for ARMv6-M code
  (an image built for the M0);
- ``cortex-m33``: an approximation (Arm publishes no per-instruction table): the M4 table with
  the M33 pipeline's changes (address generation and branch resolution in decode: loads 1 cycle
  plus a load-use stall, cheaper taken branches; dual issue of some 16-bit pairs);
- ``cortex-m7``: a dual-issue approximation, said plainly: two adjacent independent
  instructions issue together under the documented pairing limits (one load/store, one
  multiply, one shifted operand, DSP first only), results of loads and multiplies are late by
  one cycle, and branches cost a misprediction penalty at a rate estimated from how often each
  branch was taken (zero-wait-state TCM or cache hits assumed).

All models assume zero wait states (code and data in single-cycle memory): flash wait states,
caches and bus contention are outside them.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from edgespike.sim.elf import ElfImage
    from edgespike.sim.trace import BlockTrace

CORES = ("cortex-m0", "cortex-m4", "cortex-m33", "cortex-m7")
CASES = ("low", "central", "high")

SOURCES = {
    "cortex-m4": "Arm Cortex-M4 Technical Reference Manual (DDI 0439B, r0p1), Table 3-1 "
                 "'Processor instruction set summary' and 3.3.2 'Load/store timings'",
    "cortex-m0": "Arm Cortex-M0 Technical Reference Manual (DDI 0432C), Table 3-1 "
                 "'Cortex-M0 instruction summary'",
    "cortex-m33": "approximation: the Cortex-M4 table adjusted for the Cortex-M33 pipeline "
                  "(address generation and branches resolved in decode, dual issue of some "
                  "16-bit pairs; Arm Cortex-M33 TRM 100230 publishes no cycle table)",
    "cortex-m7": "dual-issue approximation of the Cortex-M7 (Arm Cortex-M7 TRM DDI 0489 "
                 "describes the 6-stage dual-issue pipeline but no cycle table): documented "
                 "pairing limits, late load/multiply results, misprediction penalty 4-8 "
                 "cycles at a rate estimated per branch",
}

_REGS = {f"r{i}": i for i in range(16)}
_REGS.update(sb=9, sl=10, fp=11, ip=12, sp=13, lr=14, pc=15)
_CONDS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt",
          "gt", "le", "al"}

_ALU = set("""adc add addw adr and asr bfc bfi bic clz cmn cmp cpy eor lsl lsr mov movw movt mvn
neg orn orr rbit rev rev16 revsh ror rrx rsb sbc sbfx sub subw teq tst ubfx uxtb uxth sxtb sxth
ssat usat""".split())
_DSP = set("""sel ssat16 usat16 qadd qsub qdadd qdsub qadd8 qadd16 qsub8 qsub16 qasx qsax sadd8
sadd16 ssub8 ssub16 sasx ssax uadd8 uadd16 usub8 usub16 uasx usax uqadd8 uqadd16 uqsub8 uqsub16
uqasx uqsax shadd8 shadd16 shsub8 shsub16 shasx shsax uhadd8 uhadd16 uhsub8 uhsub16 uhasx uhsax
usad8 usada8 sxtab sxtah sxtab16 sxtb16 uxtab uxtah uxtab16 uxtb16 pkhbt pkhtb""".split())
_MUL = set("""mul mla mls smulbb smulbt smultb smultt smulwb smulwt smlabb smlabt smlatb smlatt
smlawb smlawt smmul smmulr smmla smmlar smmls smmlsr smuad smuadx smusd smusdx smlad smladx
smlsd smlsdx""".split())
_MULL = set("""umull smull umlal smlal umaal smlalbb smlalbt smlaltb smlaltt smlald smlaldx smlsld
smlsldx""".split())
_DIV = {"sdiv", "udiv"}
_LOAD = set("""ldr ldrb ldrh ldrsb ldrsh ldrt ldrbt ldrht ldrsbt ldrsht ldrex ldrexb ldrexh lda
ldab ldah ldaex pld pli vldr""".split())
_STORE = set("""str strb strh strt strbt strht strex strexb strexh stl stlb stlh vstr""".split())
_LDM = set("ldm ldmia ldmfd ldmdb ldmea pop vldm vldmia vldmdb vpop".split())
_STM = set("stm stmia stmea stmdb stmfd push vstm vstmia vstmdb vpush".split())
_BRANCH = {"b", "bl", "blx", "bx", "cbz", "cbnz"}
_TABLE = {"tbb", "tbh"}
_BARRIER = {"dsb", "dmb", "isb"}
_SYS = set("mrs msr cpsid cpsie svc bkpt wfi wfe sev clrex udf".split())
_NOP = {"nop", "yield"}
_FLAGS_S = _ALU | _MUL | _MULL | {"neg"}
_KNOWN = (_ALU | _DSP | _MUL | _MULL | _DIV | _LOAD | _STORE | _LDM | _STM | _BRANCH | _TABLE
          | _BARRIER | _SYS | _NOP | {"ldrd", "strd"})
_IT = re.compile(r"^it[te]{0,3}$")
_V6M_WIDE = {"bl", "mrs", "msr", "dsb", "dmb", "isb"}
#: Data processing that reads only its source operand (``mov r0, r1``, ``clz r0, r1``).
_UNARY = {"mov", "movw", "mvn", "neg", "adr", "sxtb", "sxth", "uxtb", "uxth", "sxtb16", "uxtb16",
          "clz", "rev", "rev16", "revsh", "rbit", "rrx", "ssat", "usat", "ubfx", "sbfx"}
_SHIFTED_BASES = {"ubfx", "sbfx", "bfi", "bfc", "sxtb", "sxth", "uxtb", "uxth", "sxtab", "sxtah",
                  "uxtab", "uxtah", "rbit", "rev", "rev16", "revsh"}


@dataclass(frozen=True)
class Op:
    """One instruction, classified for the timing models.

    Attributes:
        addr, size: address and size in bytes (2 or 4).
        base: mnemonic without condition, width or flag-setting suffix (``ldr``, ``smlad``).
        kind: ``alu``, ``dsp``, ``mul`` (32-bit result), ``mull`` (64-bit result), ``div``,
            ``load``, ``store``, ``loadd``, ``stored`` (LDRD/STRD), ``ldm``, ``stm`` (with
            PUSH/POP), ``branch``, ``table`` (TBB/TBH), ``it``, ``nop``, ``barrier``, ``sys``,
            ``fp``.
        cond: executes conditionally (inside an IT block, B<cc>, CBZ/CBNZ).
        dst, src: registers written / read (0-15; address registers of a load/store are in
            ``areg``, not ``src``).
        n: registers moved (LDM/STM: N; LDRD/STRD: 2; loads/stores: 1; others 0).
        pc: writes the PC.
        branch: for PC-writing instructions: ``direct`` (B, BL, CBZ), ``indirect`` (BX, BLX,
            MOV/ADD PC), ``load`` (POP/LDM/LDR into PC) or ``table`` (TBB/TBH).
        reg_offset: a load/store with a register offset; literal: a PC-relative load.
        shifted: a shifted register operand, extension, bit-field or wide immediate (one per
            cycle on the M7).
        v6m: exists in ARMv6-M (the Cortex-M0's instruction set).
        wback: the base register a load/store writes back (also in ``dst``).
    """

    addr: int
    size: int
    base: str
    kind: str
    cond: bool = False
    dst: frozenset = frozenset()
    src: frozenset = frozenset()
    areg: frozenset = frozenset()
    n: int = 0
    pc: bool = False
    branch: str = ""
    reg_offset: bool = False
    literal: bool = False
    shifted: bool = False
    v6m: bool = True
    wback: frozenset = frozenset()

    @property
    def memory(self) -> bool:
        return self.kind in ("load", "store", "loadd", "stored", "ldm", "stm")

    @property
    def accesses(self) -> int:
        """Memory accesses of one execution (the plugin counts one per register moved)."""
        return self.n if self.memory else 0


def _regs(text: str) -> list[int]:
    out = []
    for tok in re.findall(r"\b([a-z]+[0-9]*)\b", text):
        if tok in _REGS:
            out.append(_REGS[tok])
    return out


def _reglist(text: str) -> tuple[list[int], int]:
    """Registers of ``{r4, r5-r7, lr}`` and the number of words (``d`` registers count 2)."""
    m = re.search(r"\{([^}]*)\}", text)
    if m is None:
        return [], 0
    regs, words = [], 0
    for part in m.group(1).split(","):
        part = part.strip()
        rng = re.match(r"^([rsd])(\d+)-[rsd](\d+)$", part)
        if rng:
            lo, hi = int(rng.group(2)), int(rng.group(3))
            width = 2 if rng.group(1) == "d" else 1
            words += (hi - lo + 1) * width
            if rng.group(1) == "r":
                regs += list(range(lo, hi + 1))
            continue
        if part in _REGS:
            regs.append(_REGS[part])
            words += 1
        elif re.match(r"^[sd]\d+$", part):
            words += 2 if part[0] == "d" else 1
    return regs, words


def split_mnemonic(mnemonic: str) -> tuple[str, bool]:
    """``(base, conditional)`` of an objdump mnemonic: ``ldrbeq.w`` -> ``("ldrb", True)``."""
    m = mnemonic.lower().split(".", 1)[0]
    if m in _KNOWN or _IT.match(m) or m.startswith("v"):
        return m, False
    if m[-2:] in _CONDS:
        stem = m[:-2]
        if stem in _KNOWN:
            return stem, True
        if stem.endswith("s") and stem[:-1] in _FLAGS_S:
            return stem[:-1], True
    if m.endswith("s") and m[:-1] in _FLAGS_S:
        return m[:-1], False
    return m, False


def classify(addr: int, size: int, mnemonic: str, operands: str) -> Op:
    """Classify one instruction as objdump prints it (``ldr.w``, ``r9, [r0, #4]``)."""
    base, cond = split_mnemonic(mnemonic)
    ops = operands.split("@", 1)[0].strip().lower()
    ops_nosym = re.sub(r"<[^>]*>", "", ops)
    kw = dict(addr=addr, size=size, base=base, cond=cond)
    v6m = not (size == 4 and base not in _V6M_WIDE) and base not in ("cbz", "cbnz") \
        and not _IT.match(base)
    kw["v6m"] = v6m
    if _IT.match(base):
        return Op(kind="it", **kw)
    if base in _BRANCH:
        regs = _regs(ops_nosym) if base in ("bx", "blx") else []
        is_cond = cond or base in ("cbz", "cbnz") or (base == "b" and mnemonic.split(".")[0] != "b")
        kw["cond"] = is_cond
        src = set(regs)
        if base in ("cbz", "cbnz"):
            src = set(_regs(ops_nosym.split(",")[0]))
        dst = {14} if base in ("bl", "blx") else set()
        kind_b = "indirect" if base in ("bx", "blx") and regs else "direct"
        return Op(kind="branch", dst=frozenset(dst), src=frozenset(src), pc=True, branch=kind_b,
                  **kw)
    if base in _TABLE:
        return Op(kind="table", areg=frozenset(_regs(ops_nosym)), pc=True, branch="table",
                  n=1, **kw)
    if base in _LDM or base in _STM:
        regs, words = _reglist(ops_nosym)
        head = ops_nosym.split("{", 1)[0]
        basereg = set(_regs(head)) or {13}
        load = base in _LDM
        writes_pc = load and 15 in regs
        return Op(kind="ldm" if load else "stm", n=max(words, 1), areg=frozenset(basereg),
                  dst=frozenset(set(regs) - {15} if load else set()),
                  src=frozenset(() if load else regs), pc=writes_pc,
                  branch="load" if writes_pc else "", **kw)
    if base in _LOAD or base in _STORE or base in ("ldrd", "strd"):
        pre, _, rest = ops_nosym.partition("[")
        inner, _, post = rest.partition("]")
        data = _regs(pre)
        addr_regs = _regs(inner)
        literal = 15 in addr_regs or "[" not in ops_nosym
        reg_offset = len(addr_regs) > 1
        writeback = "!" in post or bool(post.strip().startswith(","))
        areg = set(addr_regs)
        if base in ("ldrd", "strd"):
            kind = "loadd" if base == "ldrd" else "stored"
            n = 2
        else:
            kind = "load" if base in _LOAD else "store"
            n = 1
        load = kind in ("load", "loadd")
        dst = set(data) if load else set()
        wback = {addr_regs[0]} if writeback and addr_regs else set()
        dst |= wback
        writes_pc = load and 15 in data
        if base in ("pld", "pli"):
            dst, writes_pc = set(), False
        return Op(kind=kind, n=n, dst=frozenset(dst - {15}),
                  src=frozenset(() if load else data), areg=frozenset(areg),
                  pc=writes_pc, branch="load" if writes_pc else "", reg_offset=reg_offset,
                  literal=literal, wback=frozenset(wback - {15}), **kw)
    regs = _regs(ops_nosym)
    imm = [int(v, 0) for v in re.findall(r"#(-?(?:0x[0-9a-f]+|\d+))", ops_nosym)]
    shifted = bool(re.search(r"\b(lsl|lsr|asr|ror|rrx)\b", ops_nosym)) and base not in (
        "lsl", "lsr", "asr", "ror", "rrx")
    shifted = shifted or base in _SHIFTED_BASES or any(abs(v) > 255 for v in imm)
    if base in _DIV:
        kind = "div"
    elif base in _MULL:
        kind = "mull"
    elif base in _MUL:
        kind = "mul"
    elif base in _DSP:
        kind = "dsp"
    elif base in _BARRIER:
        kind = "barrier"
    elif base in _SYS:
        kind = "sys"
    elif base in _NOP:
        kind = "nop"
    elif base.startswith("v"):
        kind = "fp"
    else:
        kind = "alu"
    if kind == "mull":
        dst, src = set(regs[:2]), set(regs[2:])
        if base in ("umlal", "smlal", "umaal") or base.startswith(("smlal", "smlsl")):
            src |= dst
    elif base in ("cmp", "cmn", "tst", "teq") or kind in ("barrier", "nop", "sys", "fp"):
        dst, src = set(), set(regs)
        if base == "mrs" and regs:
            dst, src = {regs[0]}, set()
    elif regs:
        # Rd, Rn, Op2 / Rd, Rn, #imm / Rdn, Rm (16-bit two-operand forms read Rdn) / Rd, #imm
        dst = {regs[0]}
        if len(regs) >= 3:
            src = set(regs[1:])
        elif len(regs) == 2:
            src = {regs[1]} if (imm or base in _UNARY) else {regs[0], regs[1]}
        else:
            src = set() if base in _UNARY else {regs[0]}
        if base in ("movt", "bfi", "bfc"):
            src.add(regs[0])
    else:
        dst, src = set(), set()
    writes_pc = 15 in dst
    return Op(kind=kind, dst=frozenset(dst - {15}), src=frozenset(src), pc=writes_pc,
              branch="indirect" if writes_pc else "", shifted=shifted, **kw)


def parse_sequence(text: str, start: int = 0x1000) -> list[Op]:
    """Classify a hand-written sequence, one instruction a line (``mnemonic operands``;
    ``;`` starts a comment). A mnemonic with ``.w`` (or a Thumb-2-only instruction) is taken
    as 32-bit, the rest as 16-bit; addresses are laid out from ``start``."""
    ops, addr = [], start
    for raw in text.strip().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        mnem, _, operands = line.partition(" ")
        base, _ = split_mnemonic(mnem)
        wide = mnem.endswith(".w") or base in _MULL or base in _DIV or base in _MUL - {"mul"} \
            or base in _DSP or base in ("bl", "ldrd", "strd", "movw", "movt", "ubfx", "sbfx",
                                        "bfi", "bfc", "clz", "rbit", "mls", "mla")
        size = 4 if wide else 2
        ops.append(classify(addr, size, mnem, operands.strip()))
        addr += size
    return ops


# ------------------------------------------------------------------------------- the models

def _pipelines(prev: Optional[Op], op: Op) -> bool:
    """M4 TRM 3.3.2: a load or store right after a single load has one cycle removed when
    the first load's destination is not used to compute its address."""
    return (prev is not None and prev.kind == "load"
            and not ((prev.dst - prev.wback) & op.areg))


def _agu_stall(prev: Optional[Op], op: Op) -> bool:
    """M3/M4 TRM 3.3.2: a load/store whose address the data-processing instruction just
    before computed stalls one cycle (no forwarding path)."""
    return (prev is not None and op.memory and prev.kind in ("alu", "dsp", "mul", "mull")
            and bool(prev.dst & op.areg))


def _uses(op: Op, regs: frozenset) -> bool:
    return bool(regs & (op.src | op.areg))


def _costs_m4(ops: Sequence[Op], case: str) -> list[float]:
    out: list[float] = []
    prev: Optional[Op] = None
    for op in ops:
        k = op.kind
        c = 1.0
        if k == "div":
            c = {"low": 2.0, "central": 7.0, "high": 12.0}[case]
        elif k == "load":
            c = 2.0
            if _pipelines(prev, op) and case != "high":
                c = 1.0  # pipelined behind the previous load
            if op.literal and case == "high":
                c += 1.0  # "might add a cycle because of contention with the fetch unit"
        elif k == "store":
            if op.reg_offset:
                c = 2.0
                if _pipelines(prev, op) and case != "high":
                    c = 1.0
            else:
                c = 2.0 if case == "high" else 1.0  # "STR Rx,[Ry,#imm] is always one cycle"
        elif k in ("loadd", "stored"):
            c = 3.0
        elif k in ("ldm", "stm"):
            c = 1.0 + op.n
        elif k == "table":
            c = 3.0  # two for the load, one for the add; the refill is the jump's
        elif k == "it":
            fold = case == "low" or (case == "central" and prev is not None and prev.size == 2)
            c = 0.0 if fold else 1.0
        elif k == "barrier":
            c = {"low": 1.0, "central": 1.0, "high": 4.0}[case]
        elif k == "fp" and op.base in ("vdiv", "vsqrt"):
            c = 14.0
        elif k == "fp" and op.base in ("vmla", "vmls", "vnmla", "vnmls"):
            c = 3.0
        if case != "low" and _agu_stall(prev, op):
            c += 1.0
        out.append(c)
        prev = op
    return out


def _costs_m0(ops: Sequence[Op], case: str) -> list[float]:
    out: list[float] = []
    for op in ops:
        k = op.kind
        c = 1.0
        if k == "mul":
            c = 32.0 if case == "high" else 1.0  # MULS: 1 or 32 cycles by configuration
        elif k in ("load", "store"):
            c = 2.0
        elif k in ("ldm", "stm"):
            c = 1.0 + op.n  # POP {pc}: 4 + N with the jump's 3
        elif k == "branch" and op.base == "bl":
            c = 2.0  # BL: 4 with the jump's 2
        elif k in ("barrier",) or op.base in ("mrs", "msr"):
            c = 4.0
        out.append(c)
    return out


def _m33_pairs(a: Op, b: Op) -> bool:
    """Whether the M33 issues ``b`` with the instruction just before it, ``a``: two 16-bit
    instructions, the first a plain data-processing one, the second one too or a direct
    branch, the second not reading what the first writes."""
    if a.size != 2 or b.size != 2 or a.kind != "alu" or a.pc:
        return False
    if not ((b.kind == "alu" and not b.pc) or (b.kind == "branch" and b.branch == "direct")):
        return False
    return not _uses(b, a.dst)


def _dual_issue(ops: Sequence[Op], case: str,
                cost: Callable[[Op, Optional[Op], str], float],
                pairs: Callable[[Op, Op, str], bool]) -> list[float]:
    """Cycles of each instruction on a core that can issue two at once: ``cost(op, prev,
    case)`` is an instruction's own cycles with any stall on the one before it; a 1-cycle
    instruction that ``pairs`` with the one before (itself not already paired) costs 0.
    The "high" case never pairs."""
    out: list[float] = []
    prev: Optional[Op] = None
    paired = False
    for op in ops:
        c = cost(op, prev, case)
        if case != "high" and not paired and prev is not None and c == 1.0 \
                and pairs(prev, op, case):
            out.append(0.0)  # issued with the instruction before
            paired = True
        else:
            out.append(c)
            paired = False
        prev = op
    return out


def _m33_cost(op: Op, prev: Optional[Op], case: str) -> float:
    k = op.kind
    c = 1.0
    if k == "div":
        c = {"low": 2.0, "central": 7.0, "high": 12.0}[case]
    elif k == "mull":
        c = 2.0 if case == "high" else 1.0
    elif k == "load":
        c = 2.0 if case == "high" else 1.0  # address generated in decode
    elif k == "store":
        c = 2.0 if case == "high" and op.reg_offset else 1.0
    elif k in ("loadd", "stored"):
        c = 3.0 if case == "high" else 2.0
    elif k in ("ldm", "stm"):
        c = 1.0 + op.n
    elif k == "table":
        c = 3.0
    elif k == "it":
        fold = case == "low" or (case == "central" and prev is not None and prev.size == 2)
        c = 0.0 if fold else 1.0
    elif k == "barrier":
        c = 4.0 if case == "high" else 1.0
    # load-use: the value arrives one cycle after the load's single issue cycle
    if case == "central" and prev is not None and prev.kind in ("load", "loadd", "ldm") \
            and _uses(op, prev.dst):
        c += 1.0
    return c


def _costs_m33(ops: Sequence[Op], case: str) -> list[float]:
    return _dual_issue(ops, case, _m33_cost, lambda a, b, _case: _m33_pairs(a, b))


def _m7_pairs(a: Op, b: Op, case: str) -> bool:
    """Whether the M7 issues ``b`` together with the instruction just before it, ``a``."""
    single = ("loadd", "stored", "ldm", "stm", "div", "table", "barrier", "sys", "it")
    if a.kind in single or b.kind in single or a.pc or a.kind == "branch":
        return False
    if b.kind == "branch" and b.branch != "direct":
        return False
    mem = ("load", "store")
    if a.kind in mem and b.kind in mem and not (case == "low" and a.kind == b.kind == "load"):
        return False
    if a.kind in ("mul", "mull") and b.kind in ("mul", "mull"):
        return False
    if b.kind == "dsp" or (b.kind in ("mul", "mull") and a.kind == "dsp"):
        return False  # DSP/SIMD only from the lower address of a pair
    if a.shifted and b.shifted:
        return False
    return not _uses(b, a.dst)


def _m7_cost(op: Op, prev: Optional[Op], case: str) -> float:
    k = op.kind
    c = 1.0
    if k == "div":
        c = {"low": 2.0, "central": 7.0, "high": 12.0}[case]
    elif k in ("ldm", "stm"):
        c = (1.0 + math.ceil(op.n / 2)) if case != "high" else 1.0 + op.n
    elif k in ("loadd", "stored"):
        c = 2.0 if case == "high" else 1.0
    elif k == "table":
        c = 2.0
    elif k == "it":
        c = 1.0 if case == "high" else 0.0
    # late results: a load's or multiply's result used by the very next instruction
    if case != "low" and prev is not None and prev.kind in ("load", "loadd", "ldm", "mul",
                                                              "mull") and _uses(op, prev.dst):
        c += 1.0
    return c


def _costs_m7(ops: Sequence[Op], case: str) -> list[float]:
    return _dual_issue(ops, case, _m7_cost, _m7_pairs)


_STATIC = {"cortex-m4": _costs_m4, "cortex-m0": _costs_m0, "cortex-m33": _costs_m33,
           "cortex-m7": _costs_m7}

#: Extra cycles of a misaligned access: (halfword-aligned word or odd halfword, odd word).
_MISALIGNED = {
    "cortex-m4": {"low": (1, 2), "central": (1, 2), "high": (1, 2)},
    "cortex-m33": {"low": (1, 2), "central": (1, 2), "high": (1, 2)},
    "cortex-m7": {"low": (0, 0), "central": (1, 1), "high": (1, 2)},
    "cortex-m0": {"low": (0, 0), "central": (0, 0), "high": (0, 0)},  # faults on the M0
}
#: M7: pipeline refill after a mispredicted branch (cycles), by case.
_M7_MISPREDICT = {"low": 4.0, "central": 6.0, "high": 8.0}


def static_costs(ops: Sequence[Op], core: str, case: str = "central") -> list[float]:
    """Cycles of each instruction of a straight-line sequence (one basic block), not counting
    the refill after a taken branch out of it (:func:`jump_cost`)."""
    if core not in _STATIC:
        raise ValueError(f"no cycle model for {core!r}; models: {', '.join(CORES)}")
    return _STATIC[core](ops, case)


def jump_cost(site: Optional[Op], target: Optional[Op], core: str, case: str = "central") -> float:
    """Extra cycles when the branch ``site`` is taken to ``target`` (the first instruction
    there): the pipeline refill P of the M4 (1 + P for a branch), the M0's fixed costs.
    ``site`` None: a block entered without a branch (an exception), costed as a refill."""
    kind = site.branch if site is not None and site.pc else "indirect"
    unaligned_wide = target is not None and target.size == 4 and target.addr % 4 == 2
    if core == "cortex-m0":
        return 3.0 if kind == "load" else 2.0  # B 3, BL 4, BX 3, POP {pc} 4+N
    if core == "cortex-m4":
        if case == "low":
            return 1.0
        if case == "high":
            return 3.0
        if kind in ("load", "table"):
            return 3.0  # "three cycles for the pipeline reload" (LDR PC, TBB/TBH)
        return 1.0 + (1.0 if unaligned_wide else 0.0)
    if core == "cortex-m33":
        if case == "low":
            return 1.0
        if case == "high":
            return 3.0 if kind in ("load", "table") else 2.0
        return (2.0 if kind in ("load", "table") else 1.0) + (1.0 if unaligned_wide else 0.0)
    if core == "cortex-m7":
        return 0.0 if case != "high" else 1.0  # predicted; mispredictions: branch_site_cost
    raise ValueError(f"no cycle model for {core!r}")


def branch_site_cost(site: Optional[Op], taken: Sequence[tuple[Optional[Op], int]],
                     not_taken: int, core: str, case: str = "central") -> float:
    """Extra cycles of a branch site over a run: ``taken`` lists ``(target op, count)`` of its
    taken jumps, ``not_taken`` the executions that fell through. M0/M4/M33: the refill of every
    taken jump. M7: a misprediction penalty at an estimated rate: conditional branches taken a
    fraction f of the time are mispredicted between min(f, 1-f) (a predictor that learns the
    bias: low) and 2f(1-f) (one that follows the last outcome: high); indirect branches and
    returns none (low), half (central) or all (high) of the time."""
    n_taken = sum(c for _, c in taken)
    if core != "cortex-m7":
        return float(sum(jump_cost(site, t, core, case) * c for t, c in taken))
    total = n_taken + not_taken
    if total == 0:
        return 0.0
    extra = jump_cost(site, None, core, case) * n_taken
    kind = site.branch if site is not None and site.pc else "indirect"
    if kind == "direct" and site is not None and site.cond:
        f = n_taken / total
        lo, hi = min(f, 1 - f), 2 * f * (1 - f)
        rate = {"low": lo, "central": (lo + hi) / 2, "high": hi}[case]
    elif kind == "direct":
        rate = 0.0
    else:
        rate = {"low": 0.0, "central": 0.5, "high": 1.0}[case] * (n_taken / total)
    return extra + rate * total * _M7_MISPREDICT[case]


def misaligned_cost(core: str, case: str = "central") -> tuple[int, int]:
    """Extra cycles of a misaligned access: (one extra bus access, two extra)."""
    return _MISALIGNED[core][case]


def skipped_cost(op: Op, full: float, core: str) -> float:
    """Cycles of a conditional instruction whose condition failed (it still takes a slot)."""
    if core == "cortex-m7":
        return min(full, 1.0)
    return min(full, 1.0)


def sequence_cycles(seq: str | Sequence[Op], core: str, case: str = "central",
                    taken: Optional[Sequence[bool]] = None) -> float:
    """Cycles of a hand-written straight-line sequence run once (tests, the ANN baseline).

    ``taken``: for each PC-writing instruction in order, whether it jumps (default: a
    conditional branch falls through, anything else jumps). A taken branch that is the last
    instruction jumps back to the first (a loop's back edge); elsewhere, to the next one.
    """
    ops = parse_sequence(seq) if isinstance(seq, str) else list(seq)
    total = float(sum(static_costs(ops, core, case)))
    sites = [i for i, op in enumerate(ops) if op.pc]
    flags = list(taken) if taken is not None else [not ops[i].cond for i in sites]
    if len(flags) != len(sites):
        raise ValueError(f"taken has {len(flags)} flags for {len(sites)} branches")
    for i, jumps in zip(sites, flags):
        target = ops[0] if i == len(ops) - 1 else ops[i + 1]
        total += branch_site_cost(ops[i], [(target, 1)] if jumps else [], 0 if jumps else 1,
                                  core, case)
    return total


# ------------------------------------------------------------------------------ on a trace

@dataclass
class Range:
    """A low / central / high figure."""

    low: float
    central: float
    high: float

    def scaled(self, k: float) -> "Range":
        return Range(self.low * k, self.central * k, self.high * k)

    def __truediv__(self, k: float) -> "Range":
        return Range(self.low / k, self.central / k, self.high / k) if k else Range(0, 0, 0)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Hotspot:
    """One executed block: where it is, how often it ran, what it cost (central case)."""

    addr: int
    end: int
    function: str
    instructions: float
    cycles: float
    executions: int
    share: float = 0.0

    @property
    def cpi(self) -> float:
        return self.cycles / self.instructions if self.instructions else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cpi"] = self.cpi
        return d


@dataclass
class TraceCycles:
    """Cycles of a traced run on one core (all windows together; divide by ``windows`` for
    one inference).

    Attributes:
        core: the core the model priced.
        windows: inferences (trace windows) in the run.
        instructions: executed instructions per bucket (exact).
        cycles: per case, cycles per bucket.
        misaligned: misaligned accesses (all buckets); jumps: taken jumps.
        unknown: executed instruction addresses missing from the disassembly (costed 1).
    """

    core: str
    windows: int
    instructions: list[float]
    cycles: dict[str, list[float]]
    misaligned: int = 0
    jumps: int = 0
    unknown: int = 0
    hotspots: list[Hotspot] = field(default_factory=list)

    def total_instructions(self) -> float:
        return float(sum(self.instructions))

    def total(self) -> Range:
        return Range(*(float(sum(self.cycles[c])) for c in CASES))

    def cpi(self, bucket: Optional[int] = None) -> Range:
        """Cycles per instruction, of one bucket or of the whole window."""
        if bucket is None:
            return self.total() / self.total_instructions()
        return Range(*(self.cycles[c][bucket] for c in CASES)) / self.instructions[bucket]


def _op_at(image: "ElfImage", addr: int, size: int, cache: dict) -> Optional[Op]:
    op = cache.get(addr)
    if op is None and addr not in cache:
        line = image.lines.get(addr)
        op = classify(addr, line.size, line.mnemonic, line.operands) if line else None
        cache[addr] = op
    return op


def trace_cycles(trace: "BlockTrace", image: "ElfImage", core: str,
                 hotspots: int = 0) -> TraceCycles:
    """Price a block trace of ``image`` on ``core``: static cost of every block times its
    executions (a cut execution pays for the instructions it ran), the refill of every taken
    jump, misaligned accesses, conditional loads/stores that did not execute (known from their
    memory accesses). ``hotspots``: keep the N most expensive blocks (central case)."""
    if core not in _STATIC:
        raise ValueError(f"no cycle model for {core!r}; models: {', '.join(CORES)}")
    nb = trace.buckets
    cache: dict[int, Optional[Op]] = {}
    unknown: set[int] = set()

    def ops_of(tb) -> list[Op]:
        out = []
        for ins in tb.insns:
            op = _op_at(image, ins.vaddr, ins.size, cache)
            if op is None:
                unknown.add(ins.vaddr)
                op = Op(addr=ins.vaddr, size=ins.size, base="?", kind="alu")
            out.append(op)
        return out

    if core == "cortex-m0":
        bad = sorted({op.base for tb in trace.tbs for op in ops_of(tb) if not op.v6m})
        if bad:
            raise ValueError("the Cortex-M0 model prices ARMv6-M code only; this trace ran "
                             f"{', '.join(bad[:8])}: trace an image built for the M0")
    # executed fraction of conditional loads/stores, from their memory accesses
    reach: dict[int, list[float]] = {}
    mem: dict[int, list[float]] = {}
    for tb in trace.tbs:
        for i, ins in enumerate(tb.insns):
            r = reach.setdefault(ins.vaddr, [0.0] * nb)
            m = mem.setdefault(ins.vaddr, [0.0] * nb)
            for b in range(nb):
                r[b] += tb.reach(i, b)
                m[b] += ins.mem[b]
    cycles = {c: [0.0] * nb for c in CASES}
    instructions = [0.0] * nb
    per_tb: dict[tuple[int, int], float] = {}
    tb_ops = {(tb.vaddr, tb.n): ops_of(tb) for tb in trace.tbs}
    misaligned = 0
    for tb in trace.tbs:
        ops = tb_ops[(tb.vaddr, tb.n)]
        for case in CASES:
            costs = static_costs(ops, core, case)
            p1, p2 = misaligned_cost(core, case)
            for b in range(nb):
                full = tb.execs[b] - tb.cuts[b]
                cyc = full * sum(costs) + tb.cuts[b] * sum(costs[:tb.cut_at])
                for i, (op, ins) in enumerate(zip(ops, tb.insns)):
                    cyc += p1 * ins.mis1[b] + p2 * ins.mis2[b]
                    if op.cond and op.memory and op.accesses:
                        r, m = reach[ins.vaddr][b], mem[ins.vaddr][b]
                        if r > 0:
                            ran = min(1.0, m / (r * op.accesses))
                            here = tb.reach(i, b)
                            cyc -= here * (1.0 - ran) * (costs[i] - skipped_cost(op, costs[i], core))
                cycles[case][b] += cyc
                if case == "central":
                    per_tb[(tb.vaddr, tb.n)] = per_tb.get((tb.vaddr, tb.n), 0.0) + cyc
        for b in range(nb):
            instructions[b] += sum(tb.reach(i, b) for i in range(tb.n))
            misaligned += sum(ins.mis1[b] + ins.mis2[b] for ins in tb.insns)
    # taken jumps, priced at their branch site
    by_site: dict[tuple[int, int], list] = {}
    for e in trace.edges:
        by_site.setdefault(e.src, []).append(e)
    tbs = {(tb.vaddr, tb.n): tb for tb in trace.tbs}
    jumps = 0
    for key, edges in by_site.items():
        src = tbs.get(key)
        site = tb_ops[key][-1] if src is not None else None
        for b in range(nb):
            taken = [(tb_ops[e.dst][0] if e.dst in tb_ops else None, e.count[b]) for e in edges
                     if e.count[b]]
            if not taken:
                continue
            n_taken = sum(c for _, c in taken)
            jumps += n_taken
            fall = max(0, (src.execs[b] - src.cuts[b]) - n_taken) if src is not None else 0
            for case in CASES:
                extra = branch_site_cost(site, taken, fall, core, case)
                cycles[case][b] += extra
                if case == "central":
                    per_tb[key] = per_tb.get(key, 0.0) + extra
    # M7: conditional branches never taken still cost mispredictions at their rate (0 here)
    result = TraceCycles(core=core, windows=trace.windows, instructions=instructions,
                         cycles=cycles, misaligned=misaligned, jumps=jumps,
                         unknown=len(unknown))
    if hotspots:
        total = sum(per_tb.values()) or 1.0
        spots = []
        for tb in trace.tbs:
            key = (tb.vaddr, tb.n)
            ins = sum(tb.reach(i, b) for i in range(tb.n) for b in range(nb))
            if ins == 0:
                continue
            spots.append(Hotspot(addr=tb.vaddr, end=tb.insns[-1].vaddr + tb.insns[-1].size,
                                 function=image.function_at(tb.vaddr), instructions=ins,
                                 cycles=per_tb.get(key, 0.0), executions=int(sum(tb.execs)),
                                 share=per_tb.get(key, 0.0) / total))
        spots.sort(key=lambda h: -h.cycles)
        result.hotspots = spots[:hotspots]
    return result
