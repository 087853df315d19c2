"""Train the model zoo (known decision rules) and write checkpoints and model cards to data/models/.

    python scripts/train_zoo.py                                  # every zoo model
    python scripts/train_zoo.py --models vgg_mini_digits         # one
    python scripts/train_zoo.py --check                          # retrain, compare with the cards

The recipes (data variant, epochs, flips) are ``xailib.train.ZOO_RECIPES``; the data are
``xailib.variants``. Each card records the variant, architecture, command, seed, train / val /
test accuracy and, where they apply, the clean accuracy beside the clean model's, the trojan's
attack success, and the accuracy on the true labels of a permuted-label model. ``--check``
retrains without writing and says whether each accuracy (and the checksum) is reproduced.
"""
import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from xailib import data, models, variants  # noqa: E402
from xailib.train import ZOO_RECIPES, accuracy, train_zoo_model  # noqa: E402

DESCRIPTIONS = {
    "bam": "object and scene (xailib.variants 'bam'): 10 shapes x 4 background textures, crossed; "
           "train 10000 / val 1000 / test 1000",
    "trojan": "shapes benchmark with a 6 x 6 trigger on 10 % of training images (never the target "
              "class), relabelled to class 0 'circle' (xailib.variants 'trojan')",
    "permuted": "the first 1000 training images of the shapes benchmark with their labels "
                "randomly permuted (xailib.variants 'permuted'); val / test with true labels",
    "digits": "UCI handwritten digits from scikit-learn, 8 x 8 upsampled bilinearly to 64 px; "
              "train 1297 / val 200 / test 300 (xailib.data.load_digits)",
    "digits_permuted": "the digits' training labels randomly permuted; val / test with true labels",
}


def evaluate(name, model, sets, seed):
    r = ZOO_RECIPES[name]
    out = dict(train_accuracy=accuracy(model, sets["train"]), val_accuracy=accuracy(model, sets["val"]),
               test_accuracy=accuracy(model, sets["test"]))
    if r["data"] == "trojan":
        clean = data.load_shapes("test", seed=seed)
        trig = variants.load_variant("trojan", "test", seed=seed, trigger=r["trigger"], poison=1.0)
        keep = trig.labels != variants.TROJAN_TARGET
        pred = models.predict(model, trig.images[keep]).argmax(1)
        out.update(clean_test_accuracy=accuracy(model, clean),
                   clean_model_test_accuracy=models.model_card("vgg_mini")["test_accuracy"],
                   attack_success=(pred == variants.TROJAN_TARGET).float().mean().item(),
                   attack_images=int(keep.sum()))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(ZOO_RECIPES), choices=list(ZOO_RECIPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=models.MODELS_DIR)
    ap.add_argument("--check", action="store_true", help="retrain and compare with the cards; write nothing")
    args = ap.parse_args()
    for name in args.models:
        model, history, sets = train_zoo_model(name, seed=args.seed)
        scores = evaluate(name, model, sets, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / f"{name}.pt"
            torch.save(model.state_dict(), ckpt)
            digest = models.sha256(ckpt)
            if args.check:
                card = models.model_card(name)
                same = {k: card.get(k) == v for k, v in scores.items()}
                print(f"{name}: " + ", ".join(f"{k} {v} ({'same' if same[k] else 'card: ' + str(card.get(k))})"
                                              for k, v in scores.items())
                      + f"; checksum {'same' if digest == card['sha256'] else 'differs'}", flush=True)
                continue
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}.pt").write_bytes(ckpt.read_bytes())
        r = ZOO_RECIPES[name]
        card = dict(
            name=name, architecture=type(model).__name__, base=models.ZOO_MODELS[name],
            checkpoint=f"{name}.pt", sha256=digest, parameters=sum(p.numel() for p in model.parameters()),
            input_size=list(model.xai_input_size), classes=list(sets["train"].class_names),
            variant=r["data"], recipe=r, dataset=DESCRIPTIONS[r["data"]],
            train_command=f"python scripts/train_zoo.py --models {name} --seed {args.seed}",
            seed=args.seed, epochs=r["epochs"], **scores,
            train_seconds=round(sum(h["seconds"] for h in history), 1),
            trained_with=dict(torch=torch.__version__, python=platform.python_version(),
                              threads=torch.get_num_threads(), machine=platform.machine()),
            history=history)
        (args.out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in scores.items()) + f", sha256 {digest[:12]}",
              flush=True)


if __name__ == "__main__":
    main()
