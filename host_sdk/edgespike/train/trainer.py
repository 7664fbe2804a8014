"""BPTT training over time steps: progress bar, validation, early stopping, checkpoints, seeds."""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from edgespike.errors import EdgeSpikeError

log = logging.getLogger(__name__)

ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainConfig:
    """Training settings.

    Attributes:
        epochs: passes over the training set.
        lr: Adam learning rate.
        batch_size: samples per step.
        patience: epochs without validation improvement before stopping (0: never stop early).
        seed: seeds initialisation and shuffling; the same seed gives the same run.
        checkpoint: where the best model is saved (None: not saved).
        progress: show a tqdm progress bar.
        weight_decay: Adam weight decay.
    """

    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 64
    patience: int = 0
    seed: int = 0
    checkpoint: Optional[Path] = None
    progress: bool = False
    weight_decay: float = 0.0


@dataclass
class History:
    """What a run did: per-epoch loss, validation accuracy, and seconds per epoch (s)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_acc: float = float("nan")
    stopped_early: bool = False

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean(self.seconds)) if self.seconds else float("nan")


def set_seed(seed: int) -> torch.Generator:
    """Seed torch (initialisation) and return a generator for shuffling."""
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Accuracy (0..1) of ``argmax(model(x))`` against ``y``, in eval mode."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        scores = model(x[i:i + batch_size])
        correct += int((np.argmax(scores.detach().cpu().numpy(), axis=1) == y[i:i + batch_size].numpy()).sum())
    model.train(was)
    return correct / max(1, len(x))


class Trainer:
    """Trains any module mapping ``(B, T, ...)`` inputs to ``(B, classes)`` scores with BPTT.

    ``extra_loss(model, x, scores)`` is added to the cross-entropy (e.g. the spike calibration
    distillation loss of :mod:`edgespike.quant.calibrate`).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, extra_loss: Optional[ExtraLoss] = None,
                 meta: Optional[dict] = None) -> None:
        self.model = model
        self.config = config
        self.extra_loss = extra_loss
        self.meta = meta or {}
        self.history = History()

    def fit(self, x: torch.Tensor, y: torch.Tensor, x_val: Optional[torch.Tensor] = None,
            y_val: Optional[torch.Tensor] = None) -> History:
        """Train; keeps (and, if configured, checkpoints) the weights with the best validation accuracy."""
        cfg = self.config
        if len(x) != len(y) or len(x) == 0:
            raise EdgeSpikeError(f"training data: {len(x)} inputs and {len(y)} labels")
        gen = torch.Generator()
        gen.manual_seed(cfg.seed)
        opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.epochs))
        best_state, best_acc, since_best = None, -1.0, 0
        bar = None
        if cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=cfg.epochs, desc="train", unit="epoch")
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            self.model.train()
            perm = torch.randperm(len(x), generator=gen)
            losses, correct = [], 0
            for i in range(0, len(x), cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                xb, yb = x[idx], y[idx]
                scores = self.model(xb)
                loss = nn.functional.cross_entropy(scores, yb)
                if self.extra_loss is not None:
                    loss = loss + self.extra_loss(self.model, xb, scores)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                correct += int((scores.detach().argmax(1) == yb).sum())
            sched.step()
            self.history.seconds.append(time.perf_counter() - t0)
            self.history.train_loss.append(float(np.mean(losses)))
            self.history.train_acc.append(correct / len(x))
            acc = evaluate(self.model, x_val, y_val) if x_val is not None else self.history.train_acc[-1]
            self.history.val_acc.append(acc)
            # a tie keeps the later (further trained) weights; only a gain resets the patience
            since_best = 0 if acc > best_acc else since_best + 1
            if acc >= best_acc:
                best_acc = acc
                best_state = copy.deepcopy(self.model.state_dict())
                self.history.best_epoch, self.history.best_val_acc = epoch, acc
                if cfg.checkpoint is not None:
                    self.save(cfg.checkpoint)
            log.info("epoch %d loss %.4f val %.4f (%.2f s)", epoch, self.history.train_loss[-1], acc,
                     self.history.seconds[-1])
            if bar is not None:
                bar.set_postfix(loss=f"{self.history.train_loss[-1]:.3f}", val=f"{acc:.3f}")
                bar.update(1)
            if cfg.patience and since_best >= cfg.patience:
                self.history.stopped_early = True
                break
        if bar is not None:
            bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return self.history

    def save(self, path: Path) -> Path:
        """Write a checkpoint: weights, history, and ``meta`` (what rebuilds the network)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": self.model.state_dict(), "history": asdict(self.history),
                    "meta": self.meta, "config": {k: str(v) for k, v in asdict(self.config).items()}}, path)
        return path


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :meth:`Trainer.save`; raises :class:`EdgeSpikeError` if unreadable."""
    path = Path(path)
    if not path.exists():
        raise EdgeSpikeError(f"checkpoint {path} not found; write one with: edgespike train ... --out {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a bad file
        raise EdgeSpikeError(f"checkpoint {path} could not be read: {exc}") from exc
