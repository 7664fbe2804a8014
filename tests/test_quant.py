"""Quantizers, QAT gradients, export, and exactness against the integer reference on random nets."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from edgespike.errors import InputError, ModelError
from edgespike.model import from_bytes, to_bytes
from edgespike.nn import SNN, Conv2d, Dense, Flatten, NeuronConfig, mlp
from edgespike.quant import QuantSNN, WeightQuantizer, calibration_loss, export, quantize
from edgespike.sim import reference


pytestmark = pytest.mark.usefixtures("one_thread")


def _exact(q: QuantSNN, x: torch.Tensor) -> None:
    model = from_bytes(to_bytes(export(q, x.shape[1])))
    pred = q.predict(x)
    with torch.no_grad():
        scores = q(x).numpy()
    runs = reference.run_batch(model, q.integer_input(x).numpy())
    assert np.array_equal(pred, [r.prediction for r in runs])
    assert np.array_equal(scores, np.stack([r.scores for r in runs]))
    for li, raster in enumerate(q.last_rasters):
        assert np.array_equal(raster.transpose(0, 1).numpy().astype(np.uint8),
                              np.stack([r.spikes[li] for r in runs]))
    return runs


OPTIONS = [
    dict(),
    dict(reset="subtract", du=1024, dv=0),
    dict(refractory=2, dv=800),
    dict(adapt_step=0.5, adapt_decay=300, du=3000),
    dict(learn_threshold="channel", threshold=0.7, dv=4096),
]


@pytest.mark.parametrize("mode", ["int8", "ternary"])
@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("decoding", ["membrane_sum", "spike_count", "membrane_last", "first_spike"])
def test_random_spiking_nets_are_exact(mode, opts, decoding):
    torch.manual_seed(zlib.crc32(f"{mode}{decoding}{opts}".encode()))  # stable across processes
    net = mlp([20, 16, 12, 5], NeuronConfig(**opts), recurrent=True, decoding=decoding)
    with torch.no_grad():
        for layer in net.layers:
            layer.fc.weight.mul_(3.0)
    x = (torch.rand(32, 12, 20) < 0.3).float()
    q = QuantSNN(net, mode).eval()
    runs = _exact(q, x)
    assert sum(r.counters[0].spikes for r in runs) > 0  # the check is not vacuous


@pytest.mark.parametrize("static", [False, True], ids=["changing", "static"])
@pytest.mark.parametrize("mode", ["int8", "ternary"])
def test_direct_values_with_bias_are_exact(mode, static):
    """Direct input, changing over the steps or a still image (whose first-layer products the
    eval pass takes once)."""
    torch.manual_seed(1)
    layers = [Dense(10, 16, NeuronConfig(dv=600), bias=True), Dense(16, 4, NeuronConfig(spiking=False))]
    with torch.no_grad():
        layers[0].bias.uniform_(-0.3, 0.3)
        layers[0].fc.weight.mul_(2.0)
    net = SNN(layers)
    x = torch.randn(25, 9, 10) * 3
    if static:
        x = x[:, :1].repeat(1, 9, 1)
    q = QuantSNN(net, mode, "values", input_step=float(x.abs().max()) / 127, input_max_abs=127).eval()
    assert (q.integer_input(x, expand_static=True).stride(1) == 0) == static
    model = export(q, 9)
    assert model.input_kind == "values" and model.input_max_abs == 127
    assert np.any(np.asarray(model.layers[0].neurons.bias_mant) != 0)
    _exact(q, x)


def test_int8_ptq_weights_and_lsq_gradient():
    w = torch.randn(8, 5)
    wq = WeightQuantizer(w, "int8")
    W, *_ = wq.quantize(w, wq.own_step(), train=False)
    assert W.abs().max() == 127 and torch.equal(W, torch.round(W))
    err = (W * wq.own_step() - w).abs().max()
    assert err <= wq.own_step() / 2 + 1e-6
    W, *_ = wq.quantize(w.requires_grad_(), wq.own_step(), train=True)
    (W * torch.randn_like(W)).sum().backward()
    assert wq.step.grad is not None and wq.step.grad.abs() > 0
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_ternary_learns_magnitudes_and_zero_band():
    torch.manual_seed(0)
    w = torch.randn(30, 20, requires_grad=True)
    wq = WeightQuantizer(w, "ternary")
    W, codes, ap, an = wq.quantize(w, wq.own_step(), train=True)
    assert set(codes.unique().tolist()) <= {-1.0, 0.0, 1.0} and (codes == 0).any()
    assert max(int(ap), int(an)) == 127
    (W * torch.randn_like(W)).sum().backward()
    for p in (wq.a_pos, wq.a_neg, wq.delta):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert wq.delta.numel() == wq.a_pos.numel() == 1  # one band and one pair per layer


def test_ternary_per_neuron_magnitudes():
    torch.manual_seed(0)
    w = torch.randn(30, 20) * torch.linspace(0.1, 2.0, 30)[:, None]  # rows of different scales
    wq = WeightQuantizer(w.clone().requires_grad_(), "ternary", per_neuron=True)
    W, codes, ap, an = wq.quantize(w, wq.own_step(), train=False)
    assert ap.shape == an.shape == wq.delta.shape == (30,)
    assert max(int(ap.max()), int(an.max())) == 127
    assert int(ap[0]) < int(ap[-1]) // 5  # the small rows get small magnitudes
    assert torch.equal(W, torch.where(codes > 0, ap[:, None], torch.where(codes < 0, -an[:, None], 0.0)))


def test_ternary_export_packs_15x_smaller_than_fp32():
    net = mlp([64, 128, 12])
    model = export(QuantSNN(net, "ternary"), 4)
    assert all(layer.weights.encoding == "ternary" for layer in model.layers)
    assert model.fp32_weight_bytes() / model.weight_bytes() >= 15
    int8 = export(QuantSNN(net, "int8"), 4)
    assert int8.fp32_weight_bytes() / int8.weight_bytes() == 4


def test_qat_train_mode_matches_eval_mode():
    """The QAT forward (float, straight-through) computes what the integer pass computes."""
    torch.manual_seed(3)
    net = mlp([20, 24, 5], NeuronConfig(du=2000, dv=500))
    with torch.no_grad():
        net.layers[0].fc.weight.mul_(3)
    x = (torch.rand(64, 10, 20) < 0.3).float()
    q = QuantSNN(net, "int8")
    q.train()
    train_scores = q(x).detach()
    train_rasters = [r.detach() for r in q.last_rasters]
    q.eval()
    with torch.no_grad():
        int_scores = q(x)
    assert torch.equal(train_rasters[0].to(torch.int64), q.last_rasters[0])
    assert (train_scores.argmax(1) == int_scores.argmax(1)).float().mean() > 0.95


def test_calibration_loss():
    a = torch.rand(4, 10)
    assert float(calibration_loss([a], [a])) == pytest.approx(0.0, abs=1e-6)
    assert float(calibration_loss([a], [torch.rand(4, 10)])) > 0
    silent = torch.zeros(4, 10)
    assert float(calibration_loss([silent], [silent])) == 0.0
    assert float(calibration_loss([a], [silent])) == pytest.approx(1.0)


def test_ternary_qat_with_calibration_on_digits():
    from edgespike.train import TrainConfig, Trainer, evaluate
    from edgespike.train.pipeline import prepare
    d = prepare("digits", "direct", timesteps=4)
    x, y = d.x_train[:400], d.y_train[:400]
    torch.manual_seed(0)
    net = mlp([64, 32, 10])
    Trainer(net, TrainConfig(epochs=4, lr=1e-2)).fit(x, y)
    acc = lambda q: float((q.predict(d.x_test) == d.y_test.numpy()).mean())  # noqa: E731
    ptq = quantize(net, "ternary", x, y, input_kind="values")
    qat = quantize(net, "ternary", x, y, input_kind="values", qat_epochs=2, calibration=0.5, lr=5e-3)
    float_acc = evaluate(net, d.x_test, d.y_test)
    assert float_acc > 0.6
    assert acc(qat) >= acc(ptq) - 0.02
    assert acc(qat) > float_acc - 0.1


def test_conv_layers_cannot_be_exported():
    net = SNN([Conv2d(1, 4, 3), Flatten(), Dense(4 * 6 * 6, 3)])
    with pytest.raises(ModelError, match="dense"):
        QuantSNN(net, "int8")


def test_bad_inputs_raise_named_errors():
    q = QuantSNN(mlp([6, 4, 2]), "int8")
    with pytest.raises(InputError, match="0 or 1"):
        q.integer_input(torch.full((1, 3, 6), 0.5))
    with pytest.raises(InputError, match="channels"):
        q.integer_input(torch.zeros(1, 3, 7))
    with pytest.raises(ModelError):
        QuantSNN(mlp([6, 4, 2]), "int4")


def test_frozen_qat_epochs_keep_the_codes_and_learn_the_rest():
    from edgespike.train import TrainConfig, Trainer
    from edgespike.train.pipeline import prepare
    d = prepare("digits", "direct", timesteps=4)
    x, y = d.x_train[:300], d.y_train[:300]
    torch.manual_seed(0)
    net = mlp([64, 32, 10], NeuronConfig(learn_threshold="channel"))
    Trainer(net, TrainConfig(epochs=2, lr=1e-2)).fit(x, y)
    ptq = quantize(net, "ternary", x, y, input_kind="values")
    frozen = quantize(net, "ternary", x, y, input_kind="values", qat_epochs=2, freeze_epochs=2,
                      lr=5e-2, x_val=d.x_test[:100], y_val=d.y_test[:100])
    moved = quantize(net, "ternary", x, y, input_kind="values", qat_epochs=2, lr=5e-2)
    codes = lambda q: [ql.ints(False).codes for ql in q.qlayers]  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(codes(ptq), codes(frozen)))
    assert not all(torch.equal(a, b) for a, b in zip(codes(ptq), codes(moved)))
    # thresholds still learn (all epochs frozen: nothing earlier to fall back to), and the
    # latent weights are trainable again afterwards
    thr = lambda q: q.qlayers[0].layer.lif.threshold  # noqa: E731
    assert not torch.equal(thr(ptq), thr(frozen))
    assert all(p.requires_grad for p in frozen.parameters())


def test_exact_matmul_is_exact_in_every_type():
    """exact_matmul gives int64's result in each of its three regimes, at their edges: float32
    up to 2^24 (and only at full matmul precision), float64 up to 2^53, int64 beyond."""
    from edgespike.quant.qsnn import exact_matmul

    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.choice(np.array([127, -128]), (129, 3)).astype(np.int64))
    for xmax in (1, 1000, 1032, 1 << 20, 1 << 40):
        x = torch.from_numpy(rng.integers(-xmax, xmax + 1, (7, 129)))
        x[0] = xmax  # one row at the bound: its sums reach the worst case
        x[1, ::2] = xmax - 1  # odd sums
        want = x @ w
        assert torch.equal(exact_matmul(x, w), want)
        old = torch.get_float32_matmul_precision()
        try:
            torch.set_float32_matmul_precision("medium")  # may use bf16: float64 instead
            assert torch.equal(exact_matmul(x, w), want)
        finally:
            torch.set_float32_matmul_precision(old)
    assert exact_matmul(torch.zeros((0, 3), dtype=torch.int64), w[:3]).shape == (0, 3)
