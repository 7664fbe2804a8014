"""``edgespike quantize``: int8 or ternary quantization (PTQ + QAT) of a checkpoint into a model blob."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgespike.commands._common import add_json_option, add_threads_option


def register(sub) -> None:
    p = sub.add_parser("quantize", help="quantize a trained SNN (int8 / ternary) and write the model blob",
                       description="Quantize a checkpoint from 'edgespike train', fine-tune with QAT, "
                                   "export the integer model and check it against the integer reference "
                                   "(run by the batched exact simulator).")
    p.add_argument("checkpoint", type=Path, help="checkpoint written by 'edgespike train'")
    p.add_argument("--mode", default="int8", choices=["int8", "ternary"])
    p.add_argument("--qat-epochs", type=int, default=3, help="quantization-aware epochs (0: post-training only)")
    p.add_argument("--calibration", type=float, default=0.0,
                   help="weight of the spike-calibration distillation loss (0: off)")
    p.add_argument("--kd", type=float, default=0.0,
                   help="weight of the logit distillation loss against the float network (0: off)")
    p.add_argument("--ternary-scale", default="layer", choices=["layer", "readout", "neuron"],
                   help="ternary magnitudes a_pos/a_neg: one pair per layer, per output neuron of "
                        "the last layer, or per neuron everywhere (2 bytes per neuron in the blob)")
    p.add_argument("--freeze-epochs", type=int, default=0,
                   help="run the last N QAT epochs with the weight codes frozen (thresholds, biases and "
                        "magnitudes still learn): ends the epoch-to-epoch swings of ternary QAT")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--input-max-abs", type=int, default=127, help="integer input range for direct encoding")
    p.add_argument("--out", type=Path, default=Path("model.esm"), help="model blob path")
    p.add_argument("--test-out", type=Path, default=None, metavar="NPZ",
                   help="also write the test set as the model's integer input (.npz with 'inputs' and "
                        "'labels'), ready for 'edgespike run' and 'edgespike parity'")
    add_threads_option(p)
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from edgespike.model import save
    from edgespike.quant import export, quantize
    from edgespike.sim import batch
    from edgespike.train.pipeline import Architecture, prepare, validation_split
    from edgespike.train.trainer import evaluate, load_checkpoint

    torch.set_num_threads(max(1, args.threads))
    ckpt = load_checkpoint(args.checkpoint)
    meta = ckpt.get("meta") or {}
    if "architecture" not in meta:
        from edgespike.errors import EdgeSpikeError
        raise EdgeSpikeError(f"{args.checkpoint} has no architecture; write it with 'edgespike train'")
    net = Architecture(**meta["architecture"]).build()
    net.load_state_dict(ckpt["state_dict"])
    data = prepare(meta["dataset"], meta["encoder"], meta["timesteps"], meta["seed"], meta.get("limit"))
    # the split 'edgespike train' held out: QAT never sees it and picks its best epoch on it
    x_tr, y_tr, x_val, y_val = validation_split(data.x_train, data.y_train, meta["seed"],
                                                meta.get("val_fraction", 0.15))
    q = quantize(net, args.mode, x_tr, y_tr, qat_epochs=args.qat_epochs,
                 calibration=args.calibration, kd=args.kd, input_kind=data.input_kind,
                 input_max_abs=args.input_max_abs, lr=args.lr, batch_size=args.batch_size,
                 seed=meta["seed"], x_val=x_val, y_val=y_val, ternary_scale=args.ternary_scale,
                 freeze_epochs=args.freeze_epochs)
    model = export(q, data.timesteps, name=f"{meta['dataset']}-{args.mode}", labels=data.labels,
                   encoder=data.encoder)
    save(model, args.out)
    if args.test_out is not None:
        np.savez_compressed(args.test_out, inputs=q.integer_input(data.x_test).numpy().astype(np.int32),
                            labels=data.y_test.numpy().astype(np.int64))
    # the exactness check: the quantized network's own integer pass against the exported model
    # on the batched exact simulator (bit-identical to the numpy reference, much faster)
    t_check = time.perf_counter()
    pred_q = q.predict(data.x_test)
    pred_ref = batch.predict(model, q.integer_input(data.x_test, expand_static=True).numpy())
    check_s = time.perf_counter() - t_check
    y = data.y_test.numpy()
    summary = {
        "blob": str(args.out), "mode": args.mode, "qat_epochs": args.qat_epochs,
        "float_accuracy": evaluate(net, data.x_test, data.y_test),
        "quantized_accuracy": float((pred_q == y).mean()),
        "reference_accuracy": float((pred_ref == y).mean()),
        "reference_agreement": float((pred_q == pred_ref).mean()),
        "check_seconds": round(check_s, 3),
        "weight_bytes": model.weight_bytes(), "fp32_weight_bytes": model.fp32_weight_bytes(),
        "compression": model.fp32_weight_bytes() / max(1, model.weight_bytes()),
        "timesteps": model.timesteps, "input_kind": model.input_kind,
        "test_inputs": str(args.test_out) if args.test_out is not None else None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.mode}: accuracy {summary['quantized_accuracy']:.4f} (float "
              f"{summary['float_accuracy']:.4f}), reference agreement "
              f"{summary['reference_agreement']:.4f}, weights {model.weight_bytes()} B "
              f"({summary['compression']:.1f}x smaller than fp32) -> {args.out}")
    return 0 if np.array_equal(pred_q, pred_ref) else 1
