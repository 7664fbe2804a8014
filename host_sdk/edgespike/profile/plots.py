"""PNG plots of a profile: a spike raster of one inference, energy per layer per target, and
accuracy against energy. matplotlib is imported lazily with the Agg backend (extra ``plot``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgespike.errors import ToolMissing
from edgespike.profile.report import ProfileReport

log = logging.getLogger(__name__)


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ToolMissing("plots need matplotlib: pip install -e '.[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spike_raster(x: np.ndarray, spikes: Sequence[np.ndarray], path: Path,
                 title: str = "spike raster of one inference",
                 input_kind: str = "spikes") -> Path:
    """One panel per layer (input first): dots where a neuron spiked at a step."""
    plt = _pyplot()
    panels = [np.asarray(x)] + [np.asarray(s) for s in spikes]
    names = ["input" + (" (values)" if input_kind == "values" else "")] + [
        f"layer {i}" for i in range(len(spikes))]
    heights = [max(1.0, min(4.0, p.shape[1] / 16)) for p in panels]
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(8, 1.2 + sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    axes = np.atleast_1d(axes)
    for ax, p, name in zip(axes, panels, names):
        if name.startswith("input") and input_kind == "values":
            ax.imshow(p.T, aspect="auto", origin="lower", cmap="coolwarm", interpolation="nearest")
        else:
            t, i = np.nonzero(p)
            ax.scatter(t, i, s=4, marker="|", color="black")
            ax.set_ylim(-0.5, p.shape[1] - 0.5)
        ax.set_ylabel(f"{name}\n({p.shape[1]})", fontsize=8)
    axes[-1].set_xlabel("time step")
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def energy_per_layer(report: ProfileReport, path: Path) -> Path:
    """Grouped bars: uJ per inference of each layer, one bar per target (log scale)."""
    plt = _pyplot()
    n_layers = len(report.counters.layers)
    targets = [e for e in report.energy if e.per_layer_uj]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(targets))
    for k, e in enumerate(targets):
        xs = np.arange(n_layers) + k * width
        ax.bar(xs, np.maximum(e.per_layer_uj, 1e-12), width, label=e.target)
    ax.set_xticks(np.arange(n_layers) + 0.4 - width / 2)
    ax.set_xticklabels([f"layer {la.layer}\n{la.fan_in}->{la.size}" for la in report.counters.layers])
    ax.set_yscale("log")
    ax.set_ylabel("uJ per inference")
    ax.set_title(f"energy per layer: {report.model}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class AccuracyPoint:
    """One variant of the network: accuracy (0..1) and energy per inference (uJ) by model."""

    variant: str
    accuracy: float
    uj: dict[str, float]


def accuracy_vs_energy(points: Sequence[AccuracyPoint], path: Path,
                       title: str = "accuracy against energy") -> Path:
    """Scatter: one marker per variant and energy model, accuracy against uJ (log x)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    models = sorted({m for p in points for m in p.uj})
    markers = "osD^v<>pX*"
    for mi, model in enumerate(models):
        xs = [p.uj[model] for p in points if model in p.uj]
        ys = [100 * p.accuracy for p in points if model in p.uj]
        labels = [p.variant for p in points if model in p.uj]
        ax.plot(xs, ys, linestyle=":", marker=markers[mi % len(markers)], label=model)
        for x, y, lab in zip(xs, ys, labels):
            ax.annotate(lab, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("uJ per inference")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_plots(report: ProfileReport, outdir: Path, x: Optional[np.ndarray] = None,
                 spikes: Optional[Sequence[np.ndarray]] = None, input_kind: str = "spikes"
                 ) -> list[Path]:
    """The raster (when an input and its rasters are given) and the energy-per-layer plot."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    made = []
    if x is not None and spikes:
        made.append(spike_raster(x, spikes, outdir / "raster.png",
                                 f"spike raster of one inference: {report.model}", input_kind))
    made.append(energy_per_layer(report, outdir / "energy_per_layer.png"))
    return made
