"""``edgespike demo``: the whole pipeline on a bundled real dataset and the emulated Cortex-M4.

Train a small SNN (BPTT, surrogate gradients), quantize it to int8 and to ternary (QAT), export
both blobs, start the emulated board (or use a given port), deploy each model over the link,
run the whole test set on the device and on the numpy reference, and profile it: counters,
instructions (exact) and cycles (estimated per core, with their range), latency, memory, energy
per target from cycles, the same network as an ANN. Writes the blobs, the report JSON and the
plots to an output folder.

    from edgespike.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig(dataset="basic_motions", out=Path("edgespike-demo")))
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edgespike.errors import InputError
from edgespike.profile.energy import HOROWITZ_FP32_AC_PJ, Target, load_targets
from edgespike.profile.report import ProfileReport, format_report, profile_device

log = logging.getLogger(__name__)

Say = Callable[[str], None]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Setup:
    """Hyper-parameters of one dataset (full setting); learning rates per Adam step.

    ``steps``: time steps for image encoders (series keep their own length).
    """

    encoder: str
    steps: int
    hidden: int
    epochs: int
    batch: int
    lr: float
    qat_epochs: int
    qat_lr: float
    quick_epochs: int
    quick_qat_epochs: int
    quick_limit: Optional[int] = None
    ternary_kd: float = 1.0  # weight of the logit distillation in ternary QAT
    ternary_freeze: int = 0  # last ternary QAT epochs with the weight codes frozen


#: dataset -> setup, shared with bench/accuracy.py (which runs FSDD at 256 hidden neurons and 40
#: QAT epochs: ternary needs that width to stay within 0.9 pt of the float SNN, and the demo
#: would take ~10 min). The quick settings (CI) cut epochs and, for the larger sets, samples.
SETUPS: dict[str, Setup] = {
    "basic_motions": Setup("direct", 0, 64, 40, 8, 1e-2, 10, 2e-3, 8, 2),
    "digits": Setup("direct", 8, 128, 30, 64, 5e-3, 8, 2e-3, 4, 1, 300),
    "japanese_vowels": Setup("direct", 0, 64, 30, 32, 5e-3, 8, 2e-3, 4, 1, 120),
    "fsdd": Setup("direct", 0, 128, 25, 64, 5e-3, 20, 1e-3, 3, 1, 200, ternary_kd=3.0, ternary_freeze=5),
}
VARIANTS = ("int8", "ternary")


@dataclass
class DemoConfig:
    """What to run. ``out``: the output folder; ``port``/``board``: the device (default: start
    the emulated mps2-an386); ``targets``: an extra TOML table of energy targets."""

    dataset: str = "basic_motions"
    out: Path = Path("edgespike-demo")
    quick: bool = False
    seed: int = 0
    port: Optional[str] = None
    board: Optional[str] = None
    timeout: float = 10.0
    targets: Optional[Path] = None
    threads: int = 1
    progress: bool = False


@dataclass
class VariantResult:
    """One quantized variant: accuracies (0..1) and its profile on the device."""

    variant: str
    blob: str
    accuracy_quantized: float
    accuracy_reference: float
    accuracy_device: float
    exact_quantized_vs_reference: bool
    profile: ProfileReport

    @property
    def device_equals_host(self) -> bool:
        return self.accuracy_device == self.accuracy_reference

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("variant", "blob", "accuracy_quantized",
                                           "accuracy_reference", "accuracy_device",
                                           "exact_quantized_vs_reference")}
        d["device_equals_host"] = self.device_equals_host
        d["profile"] = self.profile.as_dict()
        return d


@dataclass
class DemoResult:
    """Everything the demo measured (accuracies 0..1, energies uJ, times s)."""

    dataset: str
    setting: str
    seed: int
    test_samples: int
    timesteps: int
    sizes: list[int]
    float_accuracy: float
    float_synops: float
    float_neuron_updates: float
    variants: list[VariantResult]
    float_uj_horowitz_fp32: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    artefacts: list[str] = field(default_factory=list)

    @property
    def device_equals_host(self) -> bool:
        return all(v.device_equals_host for v in self.variants)

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("dataset", "setting", "seed", "test_samples",
                                           "timesteps", "sizes", "float_accuracy",
                                           "float_synops", "float_neuron_updates",
                                           "float_uj_horowitz_fp32", "seconds",
                                           "artefacts")}
        d["device_equals_host"] = self.device_equals_host
        d["variants"] = [v.as_dict() for v in self.variants]
        return d


def _float_counts(net: Any, x: Any) -> tuple[float, float]:
    """Mean SynOps and neuron updates per inference of the float SNN on ``x`` (counted as
    docs/SEMANTICS.md counts them: each non-zero input costs the non-zero weights of its row)."""
    import torch
    from edgespike.nn.layers import Dense

    net.eval()
    with torch.no_grad():
        net(x)
    dense = [m for m in net.layers if isinstance(m, Dense)]
    inp = x.transpose(0, 1)  # (T, B, C)
    synops = updates = 0.0
    for layer in dense:
        nnz = (layer.fc.weight != 0).sum(0).to(torch.float64)  # per input row
        active = (inp.reshape(inp.shape[0], inp.shape[1], -1) != 0).to(torch.float64)
        synops += float((active @ nnz).sum())
        if getattr(layer, "rec", None) is not None and layer.lif.last_spikes is not None:
            prev = (layer.lif.last_spikes[:-1] != 0).to(torch.float64)
            synops += float((prev @ (layer.rec.weight != 0).sum(0).to(torch.float64)).sum())
        updates += inp.shape[0] * inp.shape[1] * layer.out_features
        inp = layer.lif.last_spikes
    b = x.shape[0]
    return synops / b, updates / b


def run_demo(cfg: DemoConfig, say: Optional[Say] = None,
             device_progress: Optional[ProgressFn] = None) -> DemoResult:
    """Train, quantize, deploy, run and profile; write artefacts to ``cfg.out``."""
    import torch

    say = say or (lambda msg: log.info("%s", msg))
    if cfg.dataset not in SETUPS:
        raise InputError(f"unknown demo dataset {cfg.dataset!r}; choose one of {', '.join(SETUPS)}")
    s = SETUPS[cfg.dataset]
    targets: dict[str, Target] = load_targets(cfg.targets)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, say, device_progress, s, targets, out)
    finally:
        torch.set_num_threads(threads_before)


def _run(cfg: DemoConfig, say: Say, device_progress: Optional[ProgressFn], s: Setup,
         targets: dict[str, Target], out: Path) -> DemoResult:
    import torch

    from edgespike.device import open_device
    from edgespike.model import save
    from edgespike.nn import NeuronConfig, mlp
    from edgespike.quant import export, quantize
    from edgespike.train import TrainConfig, Trainer, evaluate
    from edgespike.train.pipeline import prepare, validation_split

    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    limit = s.quick_limit if cfg.quick else None
    say(f"loading {cfg.dataset} ({s.encoder} encoding)")
    data = prepare(cfg.dataset, s.encoder, s.steps or 8, cfg.seed, limit=limit)
    x_tr, y_tr, x_val, y_val = validation_split(data.x_train, data.y_train, cfg.seed)
    y_test = data.y_test.numpy()
    seconds["data"] = time.perf_counter() - t0

    epochs = s.quick_epochs if cfg.quick else s.epochs
    qat = s.quick_qat_epochs if cfg.quick else s.qat_epochs
    sizes = [data.channels, s.hidden, len(data.labels)]
    say(f"training the float SNN {sizes}, {data.timesteps} steps, {epochs} epochs on "
        f"{len(x_tr)} samples")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    # per-channel learnable thresholds: in the integer model a per-neuron scale (bench/accuracy.py)
    net = mlp(sizes, NeuronConfig(du=4096, dv=410, learn_threshold="channel"))
    Trainer(net, TrainConfig(epochs=epochs, lr=s.lr, batch_size=s.batch, seed=cfg.seed,
                             progress=cfg.progress)).fit(x_tr, y_tr, x_val, y_val)
    float_acc = evaluate(net, data.x_test, data.y_test)
    float_synops, float_updates = _float_counts(net, data.x_test)
    seconds["train"] = time.perf_counter() - t0
    say(f"float SNN test accuracy {float_acc:.2%}")

    models = {}
    quant_info = {}
    t0 = time.perf_counter()
    for mode in VARIANTS:
        say(f"quantizing to {mode} ({qat} QAT epochs)")
        q = quantize(net, mode, x_tr, y_tr, qat_epochs=qat,
                     calibration=0.5 if mode == "ternary" else 0.0,
                     kd=s.ternary_kd if mode == "ternary" else 0.0, input_kind=data.input_kind,
                     freeze_epochs=s.ternary_freeze if mode == "ternary" and qat > s.ternary_freeze else 0,
                     lr=s.qat_lr, batch_size=s.batch, seed=cfg.seed, x_val=x_val, y_val=y_val)
        model = export(q, data.timesteps, name=f"{cfg.dataset}-{mode}", labels=data.labels,
                       encoder=data.encoder)
        xi = q.integer_input(data.x_test).numpy()
        pq = q.predict(data.x_test)
        blob = save(model, out / f"{cfg.dataset}-{mode}.esm")
        models[mode] = (model, xi)
        quant_info[mode] = (float((pq == y_test).mean()), pq, blob)
    seconds["quantize"] = time.perf_counter() - t0
    for mode, (_, xi) in models.items():  # ready for `edgespike profile BLOB NPZ`
        np.savez(out / f"{cfg.dataset}-{mode}-test.npz", inputs=xi, labels=y_test)

    variants: list[VariantResult] = []
    rasters = {}
    t0 = time.perf_counter()
    say("starting the device" + (f" on {cfg.port}" if cfg.port else
                                 f" ({cfg.board or 'mps2-an386'}, emulated Cortex-M4)"))
    with open_device(port=cfg.port, board=None if cfg.port else (cfg.board or "mps2-an386"),
                     timeout=cfg.timeout) as dev:
        for mode in VARIANTS:
            model, xi = models[mode]
            say(f"deploying {mode} ({model.weight_bytes()} weight bytes) and running "
                f"{len(xi)} test inputs on the device")
            report, dev_out, ref_out = profile_device(model, xi, dev, targets, labels=y_test,
                                                      progress=device_progress)
            acc_q, pq, blob = quant_info[mode]
            pref = np.array([r.prediction for r in ref_out])
            variants.append(VariantResult(mode, str(blob), acc_q, report.accuracy_reference or 0.0,
                                          report.accuracy_device or 0.0,
                                          bool(np.array_equal(pq, pref)), report))
            rasters[mode] = (xi[0], ref_out[0].spikes)
            say(f"{mode}: host {report.accuracy_reference:.2%}, device "
                f"{report.accuracy_device:.2%}, {report.counters.cycles:,.0f} "
                f"{report.counters.cycle_unit}/inference"
                + ("" if report.device_cycles is None or report.counters.cycle_unit == "cycles"
                   else f", {report.device_cycles.central:,.0f} cycles (estimated, "
                        f"{report.device_cycles.low:,.0f}-{report.device_cycles.high:,.0f})"))
    seconds["device"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    artefacts = [v.blob for v in variants] + [str(out / f"{cfg.dataset}-{m}-test.npz")
                                              for m in VARIANTS]
    try:
        artefacts += [str(p) for p in _plots(out, cfg.dataset, data.input_kind, float_acc,
                                             float_synops, variants, rasters)]
    except Exception as exc:  # plots are optional (matplotlib extra)
        log.warning("plots skipped: %s", exc)
    seconds["plots"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_all
    result = DemoResult(
        dataset=cfg.dataset, setting="quick" if cfg.quick else "full", seed=cfg.seed,
        test_samples=len(y_test), timesteps=data.timesteps, sizes=sizes,
        float_accuracy=float_acc, float_synops=float_synops, float_neuron_updates=float_updates,
        variants=variants, float_uj_horowitz_fp32=float_synops * HOROWITZ_FP32_AC_PJ * 1e-6,
        seconds=seconds, artefacts=artefacts)
    path = out / "report.json"
    artefacts.append(str(path))
    from edgespike.commands._common import jsonable

    path.write_text(json.dumps(jsonable(result.as_dict()), indent=1))
    return result


def _plots(out: Path, dataset: str, input_kind: str, float_acc: float, float_synops: float,
           variants: list[VariantResult], rasters: dict) -> list[Path]:
    from edgespike.profile import plots
    from edgespike.profile.energy import HOROWITZ_INT_AC_PJ

    made = []
    mode = "ternary" if "ternary" in rasters else next(iter(rasters))
    x0, sp = rasters[mode]
    same = next(v for v in variants if v.variant == mode).profile.output_spikes_equal
    made.append(plots.spike_raster(
        x0, sp, out / "raster.png", f"{dataset}: one test inference ({mode}; reference run"
        + (", output spikes equal to the device's)" if same else ")"), input_kind))
    for v in variants:
        made.append(plots.energy_per_layer(v.profile, out / f"energy_per_layer_{v.variant}.png"))
    per_op = "45 nm per-op (fp32 float, int32 int8/ternary)"
    points = [plots.AccuracyPoint("float", float_acc, {per_op: float_synops * HOROWITZ_FP32_AC_PJ * 1e-6})]
    for v in variants:
        uj = {per_op: v.profile.counters.synops * HOROWITZ_INT_AC_PJ * 1e-6}
        for e in v.profile.energy:
            if e.target in ("stm32l4", "loihi2"):
                label = {"estimated cycles": " (est. cycles)", "": ""}.get(e.cycle_kind,
                                                                          " (device counts)")
                uj[e.target + label] = e.uj
        points.append(plots.AccuracyPoint(v.variant, v.accuracy_device, uj))
    made.append(plots.accuracy_vs_energy(points, out / "accuracy_vs_energy.png",
                                         f"{dataset}: accuracy against energy per inference"))
    return made


def format_summary(r: DemoResult) -> str:
    """A compact comparison of float / int8 / ternary: accuracies, cost, energy per target."""
    from edgespike.commands._common import table

    lines = [f"EdgeSpike demo: {r.dataset} ({r.setting} setting), network {r.sizes}, "
             f"{r.timesteps} steps, {r.test_samples} test samples, {r.seconds.get('total', 0):.0f} s", ""]
    yes = {True: "yes", False: "NO"}
    rows = [("float", f"{r.float_accuracy:.2%}", "-", "-", "-", "-", "-", "-",
             f"{r.float_synops:,.0f}", "-")]
    core = r.variants[0].profile.core if r.variants else ""
    for v in r.variants:
        p = v.profile
        cyc = p.device_cycles
        rows.append((v.variant, f"{v.accuracy_quantized:.2%}", f"{v.accuracy_reference:.2%}",
                     f"{v.accuracy_device:.2%}", yes[v.device_equals_host],
                     f"{p.counters.cycles:,.0f} {p.counters.cycle_unit[:5]}",
                     "-" if cyc is None else f"{cyc.central:,.0f} ({cyc.low:,.0f}-{cyc.high:,.0f})",
                     "-" if cyc is None or p.counters.cycle_source == "dwt" else
                     f"{cyc.central / p.counters.cycles:.2f}" if p.counters.cycles else "-",
                     f"{p.counters.synops:,.0f}",
                     "-" if p.latency_ms is None else f"{p.latency_ms:.2f}"))
    lines.append(table(rows, ("variant", "acc (torch)", "acc host ref", "acc device",
                              "device==host", "per inference", f"cycles ({core})", "CPI",
                              "SynOps/inf", "ms @board")))
    if r.variants and r.variants[0].profile.counters.cycle_source == "qemu_icount":
        est = r.variants[0].profile.cycle_estimate
        lines.append("instructions are exact (QEMU -icount); cycles are the cycle model's "
                     "central estimate (low-high), docs/profile.md" if est is not None else
                     "instructions are exact (QEMU -icount); no cycle estimate ("
                     + (r.variants[0].profile.cycle_estimate_note or "not requested")
                     + "): MCU energies below are priced at one cycle per instruction, a "
                     "lower bound")
    for v in r.variants:
        ann = v.profile.ann_cycles.get(v.profile.core)
        if ann is not None:
            lines.append(f"{v.variant} as an int8 ANN (CMSIS-NN class): {ann.instructions:,.0f} "
                         f"instructions, {ann.cycles.central:,.0f} cycles "
                         f"({ann.cycles.low:,.0f}-{ann.cycles.high:,.0f}), CPI {ann.cpi.central:.2f}")
    lines.append("")
    names = [e.target for e in r.variants[0].profile.energy] if r.variants else []
    erows = []
    for name in names:
        row = [name]
        for v in r.variants:
            e = next(e for e in v.profile.energy if e.target == name)
            row.append(f"{e.uj:.4g}" + ("" if e.uj_low is None else
                                        f" ({e.uj_low:.3g}-{e.uj_high:.3g})"))
            row.append("-" if e.ratio is None else f"{e.ratio:.3g}")
        erows.append(row)
    header = ["target"] + [h for v in r.variants for h in (f"{v.variant} uJ/inf", f"{v.variant} SNN/ANN")]
    lines.append(table(erows, header))
    lines.append(f"float SNN (not deployed): {r.float_synops:,.0f} SynOps/inference, "
                 f"{r.float_uj_horowitz_fp32:.4g} uJ on horowitz45-fp32")
    lines.append("")
    lines.append(f"device accuracy == host accuracy for every variant: {yes[r.device_equals_host]}")
    return "\n".join(lines)


def format_full(r: DemoResult) -> str:
    """The per-variant profile reports followed by the summary."""
    parts = [format_report(v.profile) for v in r.variants]
    return "\n\n".join(parts + [format_summary(r)])


__all__ = ["DemoConfig", "DemoResult", "SETUPS", "VariantResult", "format_full",
           "format_summary", "run_demo"]
