"""MetaQuantus's model perturbation test (Hedström et al. 2023) of chapter 10's metrics: is each
metric resilient to a minor perturbation of the network and reactive to a disruptive one?

    python scripts/meta_evaluation.py                    # the committed run (meta.json: parameters, wall time)
    python scripts/meta_evaluation.py --n-images 6 --k 2 --methods gradient gradcam --out /tmp/meta   # a quick look

On chapter 10's benchmark images (the first ``--n-images`` test images every network classifies
correctly) and its networks, each of ``--methods`` is explained and scored under every
leaderboard column that scores a map on those images (not the robustness columns and the random
logit test, which re-explain new inputs themselves; not the Impact Score and I_strict, defined on the network's own decision,
which the disruptive perturbation changes on the images the adversary test reads; nor the
randomisation similarity, which is no score of one map), first
on the network as trained, then on ``--k`` networks per test whose parameters are multiplied by
``1 + eps``: eps ~ N(0, 0.001^2) for noise resilience, N(0, 2^2) for adversary reactivity
(MetaQuantus's values). :mod:`xailib.meta_evaluation` defines the four measures; chapter 10 reads
them from ``meta_per_image.csv.gz`` (written to ``--out``, default
``results/10_leaderboard/larger_run/meta/``, which ``scripts/larger_run.py`` leaves alone) and
``meta.json`` (parameters, command, wall time, versions). Maps and scores are cached: an
interrupted run resumes.
"""
import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from xailib import data, meta_evaluation as meta, models  # noqa: E402
from xailib.methods import METHODS as REGISTRY  # noqa: E402
from xailib.chapters import leaderboard as lb  # noqa: E402
from xailib.map_store import MapStore  # noqa: E402
from xailib.results import ResultStore  # noqa: E402
from _record import write_record  # noqa: E402  (scripts/_record.py)

METHODS = ["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "guided_backprop", "deeplift",
           "gradcam", "guided_gradcam", "occlusion"]
# the columns that re-run the method (max-sensitivity and the other robustness metrics, the random
# logit test) re-explain new inputs themselves and score no map (Column.takes_map); the Impact Score
# is defined on the network's own decision, which a disruptive perturbation changes on the very
# images the adversary test reads
SKIPPED = ("impact", "impact_strict")


def main():
    from xailib import determinism
    determinism.apply()               # the pinned kernels (xailib/determinism.py), before any model runs
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["vgg_mini", "resnet_mini"], choices=list(models.BENCHMARK_MODELS))
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--n-images", type=int, default=20)
    ap.add_argument("--k", type=int, default=meta.K, help="perturbed networks per test (MetaQuantus's K)")
    ap.add_argument("--n-steps", type=int, default=16, help="steps of the causal curves (chapter 10's larger run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "10_leaderboard" / "larger_run" / "meta")
    args = ap.parse_args()
    for m in args.methods:
        if m not in REGISTRY:
            sys.exit(f"unknown method {m!r}; choose from {', '.join(REGISTRY)}")
    if args.n_images < 2 or args.k < 1:
        sys.exit("--n-images must be at least 2 and --k at least 1")
    torch.manual_seed(args.seed)
    t_start = time.time()
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"}
    store = ResultStore("meta_evaluation", params, publish=False)
    pool = data.load_dataset("shapes", "test", size=64, seed=args.seed)
    nets = {name: models.load_model(name) for name in args.models}
    index = lb.shared_images(pool, {n: models.predict(net, pool.images).argmax(1) for n, net in nets.items()},
                             args.n_images)
    imgs = pool.subset(index)
    columns = [c for c in lb.COLUMNS if c.images == "benchmark" and c.takes_map and c.metric not in SKIPPED]
    rows, seconds = [], {}
    scored = lb.Scored(MapStore())              # the book's score store: an interrupted run resumes
    for name, net in nets.items():
        t0 = time.time()

        def score_maps(tag, network, targets, maps, name=name):
            return lb.score_maps(scored, f"meta/{name}/{tag}", name, network, imgs.images, targets, maps,
                                 {"masks": imgs.masks, "boxes": imgs.boxes}, image_set="benchmark",
                                 columns=columns, n_steps=args.n_steps, seed=args.seed)
        rows.append(meta.model_test(store, name, net, imgs.images, args.methods, score_maps, k=args.k, seed=args.seed,
                                    progress=lambda it, desc: (print(desc, flush=True), it)[1]))
        seconds[name] = round(time.time() - t0, 1)
    per_image = pd.concat(rows, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    per_image.to_csv(args.out / "meta_per_image.csv.gz", index=False, float_format="%.6g",   # 86 400 rows: 6.5 MB as text
                     compression={"method": "gzip", "mtime": 0})                           # the same bytes on every run
    record = write_record(args.out / "meta.json", "scripts/meta_evaluation.py", t_start,
                          models=args.models, methods=args.methods, n_images=args.n_images, k=args.k,
                          n_steps=args.n_steps, seed=args.seed, columns=[c.label for c in columns],
                          perturbation="multiplicative, N(1, std^2)", std=meta.TESTS, seconds_per_model=seconds)
    print(f"meta-evaluation: {len(per_image)} scores in {record['wall_seconds'] / 60:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
