"""Trainer (seeds, early stopping, checkpoints), ANN-to-SNN conversion, and the CLI verbs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgespike import data as D
from edgespike.cli import main
from edgespike.errors import EdgeSpikeError, ModelError
from edgespike.model import load
from edgespike.nn import mlp
from edgespike.train import TrainConfig, Trainer, convert_ann, evaluate, load_checkpoint
from edgespike.train.pipeline import prepare, validation_split


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return prepare("digits", "direct", timesteps=4)


def _run(data, seed, **kw):
    torch.manual_seed(seed)
    net = mlp([64, 24, 10])
    hist = Trainer(net, TrainConfig(epochs=2, lr=1e-2, seed=seed, **kw)).fit(
        data.x_train[:300], data.y_train[:300], data.x_test[:200], data.y_test[:200])
    return net, hist


def test_same_seed_same_run(digits):
    a, ha = _run(digits, 7)
    b, hb = _run(digits, 7)
    assert ha.train_loss == hb.train_loss
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    _, hc = _run(digits, 8)
    assert hc.train_loss != ha.train_loss


def test_learns_and_checkpoints(digits, tmp_path):
    ckpt = tmp_path / "snn.pt"
    net, hist = _run(digits, 0, checkpoint=ckpt)
    assert hist.val_acc[-1] > 0.4 and hist.seconds_per_epoch > 0
    saved = load_checkpoint(ckpt)
    again = mlp([64, 24, 10])
    again.load_state_dict(saved["state_dict"])
    assert evaluate(again, digits.x_test[:200], digits.y_test[:200]) == pytest.approx(hist.best_val_acc)
    with pytest.raises(EdgeSpikeError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_early_stopping(digits):
    torch.manual_seed(0)
    net = mlp([64, 24, 10])
    hist = Trainer(net, TrainConfig(epochs=20, lr=0.0, patience=2)).fit(
        digits.x_train[:100], digits.y_train[:100], digits.x_test[:50], digits.y_test[:50])
    assert hist.stopped_early and len(hist.val_acc) == 3


def test_ann_to_snn_conversion_keeps_accuracy(digits):
    torch.manual_seed(0)
    x = digits.x_train[:, 0]  # the images, (N, 64)
    ann = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    opt = torch.optim.Adam(ann.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(ann(x), digits.y_train).backward()
        opt.step()
    xt = digits.x_test[:, 0]
    ann_acc = float((ann(xt).argmax(1) == digits.y_test).float().mean())
    snn = convert_ann(ann, x)
    snn_acc = evaluate(snn, xt[:, None].expand(-1, 32, -1), digits.y_test)
    assert ann_acc > 0.9
    assert snn_acc > ann_acc - 0.05
    with pytest.raises(ModelError, match="Sigmoid"):
        convert_ann(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()), torch.zeros(1, 2))


def test_cli_train_then_quantize(tmp_path, capsys):
    ckpt, blob = tmp_path / "d.pt", tmp_path / "d.esm"
    rc = main(["train", "--dataset", "digits", "--encoder", "rate", "--timesteps", "4", "--hidden", "16",
               "--epochs", "1", "--limit", "200", "--out", str(ckpt), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["architecture"] == [64, 16, 10] and out["epochs_run"] == 1
    assert 0.0 <= out["val_accuracy"] <= 1.0
    rc = main(["quantize", str(ckpt), "--mode", "ternary", "--qat-epochs", "1", "--out", str(blob), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["reference_agreement"] == 1.0 and out["compression"] > 10
    model = load(blob)
    assert model.input_kind == "spikes" and model.encoder.kind == "rate" and model.timesteps == 4
    assert np.ndim(model.layers[-1].weights.a_pos) == 0
    rc = main(["quantize", str(ckpt), "--mode", "ternary", "--qat-epochs", "2", "--freeze-epochs", "1",
               "--kd", "1", "--ternary-scale", "readout", "--out", str(blob), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["reference_agreement"] == 1.0
    assert np.shape(load(blob).layers[-1].weights.a_pos) == (10,)  # one magnitude per output neuron


def test_validation_split_is_seeded_disjoint_and_refuses_tiny_sets():
    x = torch.arange(100).reshape(100, 1, 1).float()
    y = torch.arange(100)
    x_tr, y_tr, x_val, y_val = validation_split(x, y, seed=3)
    assert len(x_val) == 15 and len(x_tr) == 85
    assert set(y_tr.tolist()).isdisjoint(y_val.tolist()) and set(y_tr.tolist()) | set(y_val.tolist()) == set(range(100))
    assert torch.equal(validation_split(x, y, seed=3)[3], y_val)  # the same seed, the same split
    assert not torch.equal(validation_split(x, y, seed=4)[3], y_val)
    with pytest.raises(EdgeSpikeError, match="too few"):
        validation_split(x[:4], y[:4])


def test_cli_rejects_bad_combinations(tmp_path, capsys):
    rc = main(["train", "--dataset", "basic_motions", "--encoder", "rate", "--out", str(tmp_path / "x.pt")])
    assert rc == 1 and "time series" in capsys.readouterr().err


@pytest.mark.skipif(not (D.fsdd_dir() / "recordings").exists(), reason="shared/data/fsdd missing")
def test_limit_spreads_over_classes_listed_in_order():
    data = prepare("fsdd", "direct", limit=60)  # FSDD lists its files digit by digit
    assert len(data.y_train) == 60 and set(data.y_train.tolist()) == set(range(10))
    assert set(data.y_test.tolist()) == set(range(10))
