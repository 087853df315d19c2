"""The book's metrics beside Quantus 0.6's on the same network, images and maps: a measurement,
not a dependency (Quantus is GPL and stays out of the book's environment).

    python -m venv quantus-venv                                         # once, outside the book's
    echo "$PWD/.venv/lib/python3.11/site-packages" > quantus-venv/lib/python3.11/site-packages/book.pth
    quantus-venv/bin/pip install --no-deps quantus==0.6.0 cachetools opencv-python-headless
    quantus-venv/bin/python scripts/quantus_compare.py                  # writes results/quantus_comparison/

For every metric both have, each map is scored by Quantus twice: with its settings matched to the
book's definition (its normalisation and absolute value turned off or on as the paper says; one
image per call, as the book scores each image on its own), where the two must agree to rounding,
and with its defaults on the whole batch, where they differ by the documented choices (``PAIRS``).
The time per image of each library, in one run, on one thread (Quantus's on the batch call).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xailib import data, metrics, models                       # noqa: E402
from xailib.methods import explain                             # noqa: E402

# Each metric both libraries have: the book's name and parameters, Quantus's class, the settings
# that make Quantus compute the book's definition, and why its defaults differ.
PAIRS = [
    dict(book="sparseness", quantus="Sparseness", matched=dict(normalise=False, abs=True),
         choice="Quantus normalises each map by its largest absolute value (no effect on a ratio) and adds 1e-7 to "
                "every pixel before the Gini index, which lifts a flat or all-zero map above 0"),
    dict(book="complexity", quantus="Complexity", matched=dict(normalise=False, abs=True),
         choice="Quantus adds 1e-12 inside the logarithm; an all-zero map gives NaN there and ln d here"),
    dict(book="effective_complexity", quantus="EffectiveComplexity", matched=dict(normalise=True, abs=True, eps=1e-5),
         choice="Quantus 0.6 divides a whole batch of maps by the batch's largest absolute value (normalise_by_max over "
                "every axis, the batch's included), so an image's count depends on the other images of its call; "
                "called one image at a time (the matched column) it counts as the book does"),
    dict(book="relevance_mass_accuracy", quantus="RelevanceMassAccuracy", matched=dict(normalise=False, abs=False),
         positive=True,
         choice="Arras et al. keep positive relevance only, as the book does; Quantus's default sums the signed map "
                "(after dividing by its largest absolute value), so a map with negative values can score above 1 "
                "or below 0 there"),
    dict(book="relevance_rank_accuracy", quantus="RelevanceRankAccuracy", matched=dict(normalise=False, abs=False),
         choice="ties: the book breaks them by a fixed random order of pixels, Quantus by numpy's argsort (the "
                "lower index first), which favours a flat map whose object lies early in scan order"),
    dict(book="attribution_localisation", quantus="AttributionLocalisation",
         matched=dict(normalise=False, abs=False, weighted=False, positive_attributions=True),
         choice="Kohlbrenner et al. keep positive relevance, as the book does; Quantus's default takes the absolute "
                "map (and its weighted variant multiplies by the object's share of the image, the book's divides)"),
    dict(book="pointing_game", quantus="PointingGame", matched=dict(normalise=False, abs=False),
         choice="the book scores a maximum shared by several pixels as the share of them that hit, and has a "
                "tolerance of 15 px at 224 (0 px here at 64 is Quantus's); Quantus takes the first maximum in scan order"),
]


def book_score(model, x, y, maps, masks, pair):
    name = pair["book"]
    params = dict(pair.get("book_params", {}))
    if "masks" in metrics.METRICS[name].defaults:
        params["masks"] = masks
    if name == "pointing_game":
        params["tolerance"] = 0
    t0 = time.perf_counter()
    out = metrics.score(model if name not in ("pointing_game",) else None, x, None, maps, name, **params).numpy()
    return out, time.perf_counter() - t0


def quantus_score(quantus, model, x, y, maps, masks, pair, settings, per_image=False):
    """Quantus's scores of ``maps``: the whole batch in one call (its timing, its defaults), or
    ``per_image``, one call per image (the book scores each image on its own)."""
    if per_image:
        parts = [quantus_score(quantus, model, x[i:i + 1], y[i:i + 1], maps[i:i + 1], masks[i:i + 1], pair, settings)
                 for i in range(len(x))]
        refused = [q for q, _ in parts if isinstance(q, str)]
        if refused:
            return refused[0], sum(t for _, t in parts)
        return np.concatenate([q for q, _ in parts]), sum(t for _, t in parts)
    cls = getattr(quantus, pair["quantus"])
    kwargs = {k: v for k, v in settings.items() if k != "positive"}
    metric = cls(disable_warnings=True, **kwargs)
    a = maps.numpy()[:, None].astype(np.float32)
    if settings is pair["matched"] and pair.get("positive"):
        a = np.clip(a, 0, None)
    t0 = time.perf_counter()
    try:
        out = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a,
                     s_batch=masks.numpy()[:, None].astype(np.float32), device="cpu")
    except AssertionError as err:          # Quantus refuses some maps outright (a constant one)
        return str(err).split(".")[0], time.perf_counter() - t0
    return np.asarray(out, dtype=np.float64), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg_mini")
    ap.add_argument("--n-images", type=int, default=32)
    ap.add_argument("--methods", nargs="+", default=["gradient", "gradcam", "integrated_gradients", "random", "constant"])
    ap.add_argument("--out", default=str(ROOT / "results" / "quantus_comparison"))
    args = ap.parse_args()
    import quantus
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.load_model(args.model)
    pool = data.load_shapes("test", n=args.n_images, seed=0)
    x, y, masks = pool.images, pool.labels, pool.masks
    rows = []
    for method in args.methods:
        maps = explain(model, x, y, method)
        for pair in PAIRS:
            ours, t_ours = book_score(model, x, y, maps, masks, pair)
            matched, _ = quantus_score(quantus, model, x, y, maps, masks, pair, pair["matched"], per_image=True)
            defaults, t_q = quantus_score(quantus, model, x, y, maps, masks, pair, {})
            row = {"metric": pair["book"], "quantus": pair["quantus"], "method": method, "book mean": ours.mean(),
                   "book ms per image": 1000 * t_ours / len(x), "quantus ms per image": 1000 * t_q / len(x),
                   "why the defaults differ": pair["choice"]}
            for label, q in (("matched", matched), ("defaults", defaults)):
                if isinstance(q, str):
                    row.update({f"quantus {label} mean": np.nan, f"largest difference, {label}": np.nan,
                                f"quantus {label}": f"refused: {q}"})
                else:
                    row.update({f"quantus {label} mean": np.nanmean(q),
                                f"largest difference, {label}": float(np.nanmax(np.abs(ours - q))),
                                f"quantus {label}": f"{int(np.isnan(q).sum())} NaN" if np.isnan(q).any() else "scored"})
            rows.append(row)
            print(f"{method:22s} {pair['book']:26s} matched gap {row['largest difference, matched']:.2e}  "
                  f"defaults gap {row['largest difference, defaults']:.2e}  {row['quantus matched']}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "comparison.csv", index=False, float_format="%.6g")
    (out / "run.json").write_text(json.dumps({
        "command": "quantus-venv/bin/python scripts/quantus_compare.py", "quantus": quantus.__version__,
        "torch": torch.__version__, "model": args.model, "n_images": args.n_images, "methods": args.methods,
        "threads": 1, "machine": f"{os.uname().machine}, {os.cpu_count()} CPU cores"}, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
