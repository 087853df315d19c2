"""ROAR (Hooker et al. 2019, "A benchmark for interpretability methods in deep neural networks"):
remove each method's top-k % pixels from every training and test image, retrain the network from
scratch on the modified training set, and measure its accuracy on the modified test set.

    python scripts/roar.py                      # the committed run (roar.json records its parameters and wall time)
    python scripts/roar.py --n-train 500 --epochs 2 --fractions 0.5 --methods random gradient \\
        --out /tmp/roar                          # a quick look

If a method ranks pixels by how much the *task* needs them, removing its top k % must hurt the
retrained model more than removing a random k % (the random control); retraining takes away the
objection that the modified images are out of the model's distribution (the survey's doubt about
perturbation metrics). The maps are made once, by the original committed network, for the true
class; removed pixels take the data set's mean colour (Hooker et al.'s per-channel mean, the
``"dataset_mean"`` operator of :mod:`xailib.metrics.removal`). Each (method, k) trains a network
with the same schedule, ``--repeats`` times with the seeds ``seed``, ``seed + 1``, ... (Hooker et
al. retrain five times; the default three keeps the run near an hour), each retraining paired with
the random control's of the same seed; the accuracy drop is against networks trained the same way
on unmodified images (k = 0). The chapter's test takes the spread between retrainings in
(:func:`xailib.chapters.faithfulness.roar_comparison`).

One deviation, for time: Hooker et al. retrain from a fresh initialisation; by default this script
fine-tunes the committed network (every weight, 3 epochs on 4000 images). Trained from scratch,
the benchmark's vgg_mini needs about 60,000 image presentations to leave chance (its model card),
about 100 s per network here, and the 57 networks of this run (6 methods x 3 shares + the
unmodified data, 3 retrainings each) would take about an hour and a half;
``--from-scratch`` does it Hooker's way.

Written to ``--out`` (default ``results/09_faithfulness/larger_run/roar/``, beside the chapter's
larger run, which ``scripts/larger_run.py`` rewrites without touching it): ``roar.csv`` (accuracy per
method and k), ``roar_per_image.csv`` (correct or not, per test image: the chapter's paired
verdicts), ``roar.json`` (parameters, command, wall time, versions). The retrained networks are
not kept: the script regenerates them.
"""
import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from xailib import models  # noqa: E402
from xailib.methods import METHODS as REGISTRY, explain  # noqa: E402
from xailib.data import ImageSet, load_shapes  # noqa: E402
from xailib.chapters.faithfulness import top_fraction  # noqa: E402
from xailib.metrics.removal import remove  # noqa: E402
from xailib.train import train_model  # noqa: E402
from _record import write_record  # noqa: E402  (scripts/_record.py)

METHODS = ["random", "gradient", "integrated_gradients", "smoothgrad", "gradcam", "edge"]
FRACTIONS = [0.1, 0.5, 0.9]


def top_k_removed(net, data: ImageSet, method: str, fraction: float, maps: torch.Tensor) -> ImageSet:
    """``data`` with each image's top ``fraction`` pixels (by ``maps``) set to the data set's mean.
    Every pixel counts (ranked by the map's value, ties by index), not only positive ones."""
    return ImageSet(remove(data.images, top_fraction(maps, fraction), "dataset_mean", model=net), data.labels,
                    data.class_names,
                    name=f"{data.name} without {method}'s top {100 * fraction:g} %")


def maps_for(net, data: ImageSet, method: str, batch: int = 64) -> torch.Tensor:
    return torch.cat([explain(net, data.images[i:i + batch], data.labels[i:i + batch], method)
                      for i in range(0, len(data), batch)])


def main():
    from xailib import determinism
    determinism.apply()               # the pinned kernels (xailib/determinism.py), before any model runs
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg_mini", choices=list(models.BENCHMARK_MODELS))
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--fractions", nargs="+", type=float, default=FRACTIONS)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--from-scratch", action="store_true",
                    help="Hooker et al.'s retraining from a fresh initialisation (default: fine-tune "
                         "the committed network; see the module's doc)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="retrainings per (method, k), seeds seed, seed + 1, ...")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "09_faithfulness" / "larger_run" / "roar")
    args = ap.parse_args()
    for m in args.methods:
        if m not in REGISTRY:
            sys.exit(f"unknown method {m!r}; choose from {', '.join(REGISTRY)}")
    if not all(0 < f < 1 for f in args.fractions):
        sys.exit("--fractions must lie in (0, 1)")
    if args.repeats < 1:
        sys.exit("--repeats must be at least 1")
    torch.manual_seed(args.seed)
    t_start = time.time()
    net = models.load_model(args.model)
    train = load_shapes("train", n=args.n_train, progress=False)
    val = load_shapes("val", n=min(500, args.n_test), progress=False)
    test = load_shapes("test", n=args.n_test, progress=False)
    rows, per_image = [], []

    def fit_and_test(method, fraction, tr, va, te):
        for r in range(args.repeats):
            t0 = time.time()
            model, _ = train_model(args.model, seed=args.seed + r, epochs=args.epochs, batch_size=args.batch_size,
                                   lr=args.lr, train=tr, val=va, progress=False,
                                   init=None if args.from_scratch else net.state_dict())
            with torch.no_grad():
                pred = models.predict(model, te.images).argmax(1)
            correct = (pred == te.labels).long()
            rows.append(dict(method=method, fraction=fraction, repeat=r, accuracy=correct.float().mean().item(),
                             n_test=len(te), train_seconds=round(time.time() - t0, 1)))
            per_image.extend(dict(method=method, fraction=fraction, repeat=r, image=i, correct=int(c))
                             for i, c in enumerate(correct.tolist()))
            print(f"{method:22s} k = {100 * fraction:4.0f} %  retraining {r}  accuracy {rows[-1]['accuracy']:.3f}  "
                  f"({rows[-1]['train_seconds']:.0f} s)", flush=True)

    fit_and_test("(none)", 0.0, train, val, test)
    map_seconds = {}
    for method in args.methods:
        t0 = time.time()
        maps = {name: maps_for(net, d, method) for name, d in (("train", train), ("val", val), ("test", test))}
        map_seconds[method] = round(time.time() - t0, 1)
        for f in args.fractions:
            tr, va, te = (top_k_removed(net, d, method, f, maps[name])
                          for name, d in (("train", train), ("val", val), ("test", test)))
            fit_and_test(method, f, tr, va, te)
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "roar.csv", index=False)
    pd.DataFrame(per_image).to_csv(args.out / "roar_per_image.csv", index=False)
    record = write_record(args.out / "roar.json", "scripts/roar.py", t_start,
                          model=args.model, methods=args.methods, fractions=args.fractions, n_train=args.n_train,
                          n_val=len(val), n_test=args.n_test, epochs=args.epochs, batch_size=args.batch_size,
                          lr=args.lr, retraining="from scratch" if args.from_scratch
                          else "fine-tuned from the committed network", seed=args.seed, repeats=args.repeats,
                          removal="dataset_mean", explained_class="true label",
                          ties="random",          # xailib.metrics.order: how tied pixels are ranked
                          map_seconds=map_seconds)
    print(f"ROAR: {len(rows)} networks trained in {record['wall_seconds'] / 60:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
