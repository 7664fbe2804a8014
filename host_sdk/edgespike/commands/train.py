"""``edgespike train``: train a float SNN on a bundled dataset and write a checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgespike.commands._common import add_json_option, add_threads_option


def register(sub) -> None:
    p = sub.add_parser("train", help="train a spiking network (BPTT, surrogate gradients)",
                       description="Train a dense SNN on an offline dataset and save a checkpoint "
                                   "for 'edgespike quantize'.")
    p.add_argument("--dataset", default="digits",
                   help="digits, basic_motions, japanese_vowels, mnist, fashion_mnist or fsdd")
    p.add_argument("--encoder", default="direct",
                   help="images: direct, rate, latency, phase, hybrid, dvs; series: direct, delta")
    p.add_argument("--hidden", type=int, nargs="+", default=[64], help="hidden layer sizes")
    p.add_argument("--recurrent", action="store_true", help="recurrent hidden layers")
    p.add_argument("--timesteps", type=int, default=8, help="steps per image (series keep their length)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--patience", type=int, default=0, help="early stopping patience in epochs (0: off)")
    p.add_argument("--du", type=int, default=4096, help="current decay in 1/4096 per step")
    p.add_argument("--dv", type=int, default=410, help="voltage decay in 1/4096 per step")
    p.add_argument("--surrogate", default="fast_sigmoid", help="fast_sigmoid, arctan, triangle, stacked")
    p.add_argument("--learn-threshold", default="none", choices=["none", "layer", "channel"])
    p.add_argument("--decoding", default="membrane_sum",
                   choices=["membrane_sum", "membrane_last", "spike_count", "first_spike"])
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples of each split")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the batches and the validation split")
    p.add_argument("--val-fraction", type=float, default=0.15,
                   help="share of the training set held out to pick the best epoch (the test set is "
                        "only reported, never used for selection)")
    p.add_argument("--out", type=Path, default=Path("snn.pt"), help="checkpoint path")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    add_threads_option(p)
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from edgespike.nn.neurons import NeuronConfig
    from edgespike.train.pipeline import Architecture, prepare, validation_split
    from edgespike.train.trainer import TrainConfig, Trainer, evaluate, set_seed

    torch.set_num_threads(max(1, args.threads))
    data = prepare(args.dataset, args.encoder, args.timesteps, args.seed, args.limit)
    x_tr, y_tr, x_val, y_val = validation_split(data.x_train, data.y_train, args.seed, args.val_fraction)
    neuron = NeuronConfig(du=args.du, dv=args.dv, surrogate=args.surrogate,
                          learn_threshold=args.learn_threshold).check()
    arch = Architecture([data.channels, *args.hidden, len(data.labels)], neuron.to_dict(),
                        args.recurrent, args.decoding)
    set_seed(args.seed)
    net = arch.build()
    meta = {"architecture": arch.to_dict(), "dataset": args.dataset, "encoder": args.encoder,
            "timesteps": args.timesteps, "seed": args.seed, "limit": args.limit,
            "input_kind": data.input_kind, "labels": data.labels, "val_fraction": args.val_fraction}
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                      patience=args.patience, seed=args.seed, checkpoint=args.out, progress=args.progress)
    hist = Trainer(net, cfg, meta=meta).fit(x_tr, y_tr, x_val, y_val)
    summary = {"checkpoint": str(args.out), "dataset": args.dataset, "encoder": args.encoder,
               "timesteps": data.timesteps, "architecture": arch.sizes, "epochs_run": len(hist.val_acc),
               "best_epoch": hist.best_epoch, "val_accuracy": hist.best_val_acc, "test_accuracy": evaluate(net, data.x_test, data.y_test),
               "seconds_per_epoch": hist.seconds_per_epoch, "stopped_early": hist.stopped_early}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"trained {args.dataset}/{args.encoder} {arch.sizes}: test accuracy "
              f"{summary['test_accuracy']:.4f} ({summary['seconds_per_epoch']:.2f} s/epoch) -> {args.out}")
    return 0
