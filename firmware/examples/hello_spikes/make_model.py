#!/usr/bin/env python3
"""Write hello_spikes' default model.h: the bundled 8x8-digits spiking classifier
(edgespike.model.samples.digits_templates, int8, 64 -> 10, 16 steps; needs scikit-learn) and
one of its test digits, rate-coded into spikes. The same as

    python -c "..."                       # the model and the test set as files
    edgespike export digits.esm --c model.h --input digits_test.npz --index N

Usage: make_model.py OUT_DIR [--index N]   (writes OUT_DIR/model.h, digits.esm, digits_test.npz)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--index", type=int, default=0, help="which test digit (default 0)")
    args = parser.parse_args()

    from edgespike.model import save
    from edgespike.model.c_array import write_c_header
    from edgespike.model.samples import digits_templates

    sample = digits_templates()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save(sample.model, args.out_dir / "digits.esm")
    np.savez(args.out_dir / "digits_test.npz", inputs=sample.inputs, labels=sample.labels)
    header = write_c_header(sample.model, args.out_dir / "model.h",
                            x=sample.inputs[args.index], label=int(sample.labels[args.index]),
                            source="digits.esm (make_model.py)")
    print(f"make_model: {header.path}: {header.blob_bytes} bytes of model, "
          f"{header.arena_bytes} bytes of arena, test digit {args.index} "
          f"(label {header.input_label})")


if __name__ == "__main__":
    main()
