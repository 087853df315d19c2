"""Peak memory of one backward pass through a network, for the rows one internal pass of a sampling
method may hold (``xailib.methods.registry.PASS_PIXELS``).

    python scripts/pass_memory.py                                   # EfficientNet-Lite0 at 224 px, 32 and 128 images
    python scripts/pass_memory.py --model resnet50 --rows 64 128    # another network of the zoo (its weights if present)

Each count runs in a fresh process (the peak resident memory of a process only grows) and prints the
peak, in GB, beside the memory the process held before the pass.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys


def one(model: str, size: int, rows: int) -> None:
    import torch
    from captum.attr import Saliency
    from xailib import models
    net = models.load_model(model).eval()
    x = torch.rand(rows, 3, size, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    Saliency(net).attribute(x, target=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{model} at {size} px, {rows} images in one backward pass: peak {peak:.1f} GB (before the pass {before:.1f} GB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rows", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.model, args.size, args.one)
    for rows in args.rows:
        subprocess.run([sys.executable, __file__, "--model", args.model, "--size", str(args.size), "--one", str(rows)],
                       check=True)


if __name__ == "__main__":
    main()
