"""Accuracy of the float SNN, int8 and ternary on digits, BasicMotions and FSDD, with weight memory
and training speed against snnTorch for the same network, measured in the same run.

    python bench/accuracy.py                  # all three datasets (a few minutes on 2 cores)
    python bench/accuracy.py --datasets digits --json out.json

For every dataset: train the float SNN (BPTT), quantize to int8 (LSQ QAT) and to asymmetric
ternary (QAT with spike calibration), export both, and check that the integer reference
(edgespike.sim.reference) predicts exactly what the quantized network predicted. snnTorch trains
the same network (Linear -> Leaky with beta = 1 - dv/4096, reset to zero; a non-spiking readout
whose summed membrane is the score) for the same epochs, batches and optimizer. The best epoch
is chosen on 15 % of the training set held out; accuracies are on the test set.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from edgespike.nn import NeuronConfig, mlp
from edgespike.quant import export, quantize
from edgespike.sim import reference
from edgespike.train import TrainConfig, Trainer, evaluate
from edgespike.train.pipeline import prepare

log = logging.getLogger("bench.accuracy")

#: dataset -> (encoder, timesteps, hidden, epochs, batch, lr, qat_epochs, qat_lr, ternary_kd)
#: ternary_kd weights the logit distillation of ternary QAT (FSDD: 3 and 40 QAT epochs came
#: closest to the float SNN in a sweep of 20-80 epochs, kd 0-3, calibration 0-1, lr 5e-4-3e-3)
SETUPS = {
    "digits": ("direct", 8, 128, 30, 64, 5e-3, 8, 2e-3, 1.0),
    "basic_motions": ("direct", 0, 64, 40, 8, 1e-2, 10, 2e-3, 1.0),
    "fsdd": ("direct", 0, 128, 25, 64, 5e-3, 40, 1e-3, 3.0),
}


@dataclass
class Row:
    """One dataset's results (accuracies 0..1, memory in bytes, time in s/epoch)."""

    dataset: str
    float_acc: float
    int8_acc: float
    ternary_acc: float
    int8_exact: bool
    ternary_exact: bool
    fp32_bytes: int
    int8_bytes: int
    ternary_bytes: int
    ours_s_per_epoch: float
    snntorch_s_per_epoch: float
    snntorch_acc: float


class SnnTorchNet(nn.Module):
    """The same MLP written with snnTorch's Leaky neurons."""

    def __init__(self, sizes: list[int], beta: float) -> None:
        super().__init__()
        import snntorch as snn
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:]))
        # snnTorch learns one threshold per layer; ours one per neuron (same cost per step)
        self.lifs = nn.ModuleList(snn.Leaky(beta=beta, reset_mechanism="zero", learn_threshold=True)
                                  for _ in range(len(sizes) - 2))
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = [lif.init_leaky() for lif in self.lifs]
        out_v = torch.zeros(x.shape[0], self.fcs[-1].out_features)
        total = torch.zeros_like(out_v)
        for t in range(x.shape[1]):
            h = x[:, t]
            for i, lif in enumerate(self.lifs):
                h, mems[i] = lif(self.fcs[i](h), mems[i])
            out_v = self.beta * out_v + self.fcs[-1](h)  # non-spiking readout
            total = total + out_v
        return total / x.shape[1]


def bench(name: str, seed: int = 0, scale: float = 1.0) -> Row:
    enc, steps, hidden, epochs, batch, lr, qat, qat_lr, tern_kd = SETUPS[name]
    epochs, qat = max(1, int(epochs * scale)), max(1, int(qat * scale))
    data = prepare(name, enc, steps or 8, seed)
    # model selection (best epoch) on a validation split carved from the training set; the test
    # set is only used for the figures reported
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data.x_train), generator=gen)
    n_val = max(4, int(0.15 * len(perm)))
    x_val, y_val = data.x_train[perm[:n_val]], data.y_train[perm[:n_val]]
    x_tr, y_tr = data.x_train[perm[n_val:]], data.y_train[perm[n_val:]]
    # per-channel learnable thresholds: in the integer model they act as a per-neuron scale,
    # which ternary weights (one a_pos / a_neg per layer) need most
    neuron = NeuronConfig(du=4096, dv=410, learn_threshold="channel")
    sizes = [data.channels, hidden, len(data.labels)]
    torch.manual_seed(seed)
    net = mlp(sizes, neuron)
    hist = Trainer(net, TrainConfig(epochs=epochs, lr=lr, batch_size=batch, seed=seed)).fit(
        x_tr, y_tr, x_val, y_val)
    float_acc = evaluate(net, data.x_test, data.y_test)
    log.info("%s float %.4f (%.2f s/epoch)", name, float_acc, hist.seconds_per_epoch)

    results = {}
    for mode in ("int8", "ternary"):
        q = quantize(net, mode, x_tr, y_tr, qat_epochs=qat,
                     calibration=0.5 if mode == "ternary" else 0.0, kd=tern_kd if mode == "ternary" else 0.0,
                     input_kind=data.input_kind, lr=qat_lr, batch_size=batch, seed=seed,
                     x_val=x_val, y_val=y_val)
        model = export(q, data.timesteps, name=f"{name}-{mode}", labels=data.labels)
        pq = q.predict(data.x_test)
        pr = reference.predict(model, q.integer_input(data.x_test).numpy())
        results[mode] = (float((pr == data.y_test.numpy()).mean()), bool(np.array_equal(pq, pr)),
                         model.weight_bytes(), model.fp32_weight_bytes())
        log.info("%s %s %.4f exact=%s", name, mode, results[mode][0], results[mode][1])

    torch.manual_seed(seed)
    ref_net = SnnTorchNet(sizes, 1 - neuron.dv / 4096)
    ref_hist = Trainer(ref_net, TrainConfig(epochs=epochs, lr=lr, batch_size=batch, seed=seed)).fit(
        x_tr, y_tr, x_val, y_val)
    return Row(name, float_acc, results["int8"][0], results["ternary"][0], results["int8"][1],
               results["ternary"][1], results["int8"][3], results["int8"][2], results["ternary"][2],
               hist.seconds_per_epoch, ref_hist.seconds_per_epoch,
               evaluate(ref_net, data.x_test, data.y_test))


def table(rows: list[Row]) -> str:
    head = ("| dataset | float SNN | int8 | ternary | int8 loss | ternary loss | exact (int8/tern) | "
            "fp32 B | int8 B (ratio) | ternary B (ratio) | s/epoch ours | s/epoch snnTorch | snnTorch acc |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r.dataset} | {100 * r.float_acc:.2f} % | {100 * r.int8_acc:.2f} % | {100 * r.ternary_acc:.2f} % | "
            f"{100 * (r.float_acc - r.int8_acc):+.2f} pt | {100 * (r.float_acc - r.ternary_acc):+.2f} pt | "
            f"{'yes' if r.int8_exact else 'NO'}/{'yes' if r.ternary_exact else 'NO'} | {r.fp32_bytes} | "
            f"{r.int8_bytes} ({r.fp32_bytes / r.int8_bytes:.1f}x) | "
            f"{r.ternary_bytes} ({r.fp32_bytes / r.ternary_bytes:.1f}x) | {r.ours_s_per_epoch:.3f} | "
            f"{r.snntorch_s_per_epoch:.3f} | {100 * r.snntorch_acc:.2f} % |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply epochs (0.2 for a quick look)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    rows = [bench(name, args.seed, args.scale) for name in args.datasets]
    print(table(rows))
    print("accuracy loss = float SNN minus quantized, in percentage points; ratio = fp32 bytes / bytes")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=2)


if __name__ == "__main__":
    main()
