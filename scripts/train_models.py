"""Train the benchmark classifiers and write their checkpoints and model cards to data/models/.

    python scripts/train_models.py                 # both models, the committed settings
    python scripts/train_models.py --models vgg_mini --epochs 20 --seed 1

Each checkpoint is a plain state dict (loadable with ``torch.load(..., weights_only=True)``);
its model card records the architecture, the exact command, seed, accuracies and sha256.
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from xailib.data import SHAPE_CLASSES, load_shapes  # noqa: E402
from xailib.models import BENCHMARK_MODELS, MODELS_DIR, sha256  # noqa: E402
from xailib.train import accuracy, train_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(BENCHMARK_MODELS), choices=BENCHMARK_MODELS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    test = load_shapes("test")
    for name in args.models:
        model, history = train_model(name, seed=args.seed, epochs=args.epochs)
        ckpt = args.out / f"{name}.pt"
        tmp = ckpt.with_suffix(".pt.tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, ckpt)
        card = dict(
            name=name, architecture=type(model).__name__, checkpoint=ckpt.name,
            sha256=sha256(ckpt), parameters=sum(p.numel() for p in model.parameters()),
            input_size=list(model.xai_input_size), classes=list(SHAPE_CLASSES),
            dataset="shapes benchmark v1 (xailib.data.load_shapes), 64 px, seed 0; "
                    "train 10000 / val 1000 / test 1000",
            train_command=f"python scripts/train_models.py --models {name} --seed {args.seed} "
                          f"--epochs {args.epochs}",
            seed=args.seed, epochs=args.epochs,
            val_accuracy=round(history[-1]["val_accuracy"], 4),
            test_accuracy=round(accuracy(model, test), 4),
            train_seconds=round(sum(h["seconds"] for h in history), 1),
            trained_with=dict(torch=torch.__version__, python=platform.python_version(),
                              threads=torch.get_num_threads(), machine=platform.machine()),
            history=history,
        )
        (args.out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"{name}: test accuracy {card['test_accuracy']:.4f}, sha256 {card['sha256'][:12]}")


if __name__ == "__main__":
    main()
