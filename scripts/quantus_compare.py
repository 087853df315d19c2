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

The metrics that call the network or re-run the method (``MODEL_PAIRS``) draw noise, subsets and
copies that the two libraries cannot share; they are compared by their distributions on the same
network, images and maps: each method's mean in both, the correlation of the two over images, and
the rank correlation of the method means (``model_based.csv``, ``model_based_order.csv``).
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


# The metrics that call the network, and the robustness metrics that re-run the method: their
# random draws (noise, subsets, perturbed copies) cannot be matched between the two libraries, so
# their comparison is of the scores' distributions: each method's mean in both, the correlation of
# the two over images, and whether they order the methods alike. ``quantus``: the class and the
# settings closest to the book's definition; ``call``: the keyword arguments of its call.
MODEL_PAIRS = [
    dict(book="faithfulness_correlation", quantus="FaithfulnessCorrelation",
         settings=dict(nr_runs=100, subset_size=224, perturb_baseline="black", abs=False, normalise=False),
         call=dict(softmax=False),
         choice="the same definition (pixels as features, 100 subsets of 224, black, logits); other random subsets"),
    dict(book="monotonicity_correlation", quantus="MonotonicityCorrelation",
         settings=dict(nr_samples=10, features_in_step=16, perturb_baseline="uniform", abs=True, normalise=False),
         call=dict(softmax=False),
         choice="Quantus perturbs groups of 16 pixels taken in the map's own order (a map's groups are its own); "
                "the book perturbs fixed 4 x 4 squares, the same for every map, so one set of passes serves a table"),
    dict(book="region_perturbation_morf", quantus="RegionPerturbation", aopc=True,
         settings=dict(patch_size=3, order="morf", regions_evaluation=100, perturb_baseline="uniform", abs=False,
                       normalise=False),
         call=dict(softmax=True),
         choice="the same squares (3 px at 64) and 100 steps; Quantus draws fresh noise for each square, the book one "
                "noise image per image; the AOPC from Quantus's curves as Samek et al. define it"),
    dict(book="region_perturbation_lerf", quantus="RegionPerturbation", aopc=True,
         settings=dict(patch_size=3, order="lerf", regions_evaluation=100, perturb_baseline="uniform", abs=False,
                       normalise=False),
         call=dict(softmax=True), choice="as MoRF"),
    dict(book="monotonicity", quantus="Monotonicity",
         settings=dict(features_in_step=64, perturb_baseline="black", abs=True, normalise=False),
         call=dict(softmax=True),
         choice="Quantus puts back 64 pixels per step in the map's own order, the book 8 x 8 squares ranked by their "
                "sum: the same number of steps, other features"),
    dict(book="avg_sensitivity", quantus="AvgSensitivity", method=True,
         settings=dict(nr_samples=10, normalise=False, abs=False), norms=True, noise=True,
         choice="the same definition (10 copies, uniform noise of radius 0.02, relative Frobenius norms); other draws"),
    dict(book="max_sensitivity", quantus="MaxSensitivity", method=True,
         settings=dict(nr_samples=10, normalise=False, abs=False), norms=True, noise=True, book_params=dict(n_samples=10),
         choice="as average sensitivity, the largest change instead of the mean"),
    dict(book="local_lipschitz", quantus="LocalLipschitzEstimate", method=True,
         settings=dict(nr_samples=10, normalise=False, abs=False), noise=True,
         choice="uniform noise of radius 0.02 in both (Quantus's default is Gaussian with sd 0.1); other draws"),
    dict(book="relative_input_stability", quantus="RelativeInputStability", method=True,
         settings=dict(nr_samples=10, normalise=False, abs=False), noise=True,
         choice="Quantus returns NaN for an image when a copy changes the label; the book keeps the copies that keep it"),
    dict(book="relative_output_stability", quantus="RelativeOutputStability", method=True,
         settings=dict(nr_samples=10, normalise=False, abs=False), noise=True, choice="as RIS"),
    dict(book="random_logit", quantus="RandomLogit", method=True,
         settings=dict(normalise=False, abs=False), classes=True,
         choice="both explain one other class drawn at random and compare by SSIM; the book draws it per image from "
                "its seed, Quantus from numpy's generator, so the other class differs"),
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


def _uniform(radius):
    """Uniform noise in [-radius, radius] on every value, the book's draws' law (Quantus's
    robustness metrics take it as their ``perturb_func``; its default for RIS/ROS draws in [0.02, 0.2])."""
    def noise(arr, indices=None, **_):
        return arr + np.random.uniform(-radius, radius, size=arr.shape).astype(arr.dtype)
    return noise


def quantus_model_score(quantus, model, x, y, maps, pair, method):
    """Quantus's scores of one method's ``maps`` (or of ``method`` re-run) under ``pair``."""
    settings = dict(pair["settings"], return_aggregate=False)     # one score per image (FaithfulnessCorrelation's default is the mean)
    if pair.get("noise"):
        settings["perturb_func"] = _uniform(0.02)
    if pair.get("norms"):
        from quantus.functions.norm_func import fro_norm
        settings.update(norm_numerator=fro_norm, norm_denominator=fro_norm)
    if pair.get("classes"):
        with torch.no_grad():
            settings["num_classes"] = int(model(x[:1]).shape[1])
    kwargs = dict(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=maps.numpy()[:, None].astype(np.float32),
                  device="cpu", **pair.get("call", {}))
    if pair.get("method"):
        kwargs.update(explain_func=_explain_for_quantus, explain_func_kwargs={"method": method})
    metric = getattr(quantus, pair["quantus"])(disable_warnings=True, **settings)
    np.random.seed(0)
    t0 = time.perf_counter()
    try:
        out = metric(**kwargs)
    except (AssertionError, ValueError) as err:
        return str(err).split(".")[0], time.perf_counter() - t0
    took = time.perf_counter() - t0
    if len(out) != len(x):
        raise RuntimeError(f"{pair['quantus']} returned {len(out)} scores for {len(x)} images")
    if pair.get("aopc"):       # Quantus returns each image's drops f(x) - f(x_k), k = 1..L: AOPC over k = 0..L
        out = [np.sum(c) / (len(c) + 1) for c in out]
    return np.asarray(out, dtype=np.float64), took


def _explain_for_quantus(model, inputs, targets, method, **_):
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    t = torch.as_tensor(np.asarray(targets)).long()
    return explain(model, x, t, method).detach().cpu().numpy()[:, None]


def compare_model_based(quantus, model, x, y, methods_, out):
    """The model-based metrics' distributions side by side (see MODEL_PAIRS)."""
    rows = []
    for method in methods_:
        maps = explain(model, x, y, method)
        for pair in MODEL_PAIRS:
            params = dict(pair.get("book_params", {}))
            if pair.get("method"):
                params.update(method=method)
                if "n_samples" in metrics.METRICS[pair["book"]].defaults:
                    params.setdefault("n_samples", 10)
            t0 = time.perf_counter()
            ours = metrics.score(model, x, y, maps, pair["book"], **params).numpy()
            t_ours = time.perf_counter() - t0
            q, t_q = quantus_model_score(quantus, model, x, y, maps, pair, method)
            row = {"metric": pair["book"], "quantus": pair["quantus"], "method": method, "images": len(x),
                   "book mean": ours.mean(), "book ms per image": 1000 * t_ours / len(x),
                   "quantus ms per image": 1000 * t_q / len(x), "how they differ": pair["choice"]}
            if isinstance(q, str):
                row.update({"quantus mean": np.nan, "quantus NaN": len(x), "per-image r": np.nan,
                            "quantus": f"refused: {q}"})
            else:
                ok = ~np.isnan(q)
                r = (np.corrcoef(ours[ok], q[ok])[0, 1] if ok.sum() > 2 and np.ptp(ours[ok]) > 0 and np.ptp(q[ok]) > 0
                     else np.nan)
                row.update({"quantus mean": np.nanmean(q) if ok.any() else np.nan, "quantus NaN": int((~ok).sum()),
                            "per-image r": r, "quantus": "scored"})
            rows.append(row)
            print(f"{method:22s} {pair['book']:28s} book {row['book mean']:+.4f}  quantus {row['quantus mean']:+.4f}  "
                  f"r {row['per-image r']:+.2f}  ({row['book ms per image']:.1f} / {row['quantus ms per image']:.1f} ms)",
                  flush=True)
    t = pd.DataFrame(rows)
    from scipy import stats
    order = []
    for metric, g in t.groupby("metric", sort=False):
        g = g.dropna(subset=["book mean", "quantus mean"])
        rho = stats.spearmanr(g["book mean"], g["quantus mean"]).statistic if len(g) > 2 else np.nan
        order.append({"metric": metric, "methods": len(g), "rank correlation of the method means": rho})
    t.to_csv(out / "model_based.csv", index=False, float_format="%.6g")
    pd.DataFrame(order).to_csv(out / "model_based_order.csv", index=False, float_format="%.4g")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg_mini")
    ap.add_argument("--n-images", type=int, default=32)
    ap.add_argument("--methods", nargs="+", default=["gradient", "gradcam", "integrated_gradients", "random", "constant"])
    ap.add_argument("--out", default=str(ROOT / "results" / "quantus_comparison"))
    ap.add_argument("--model-images", type=int, default=8, help="images for the model-based metrics")
    ap.add_argument("--model-methods", nargs="+",
                    default=["gradient", "gradcam", "integrated_gradients", "smoothgrad", "random", "edge"])
    ap.add_argument("--only-model-based", action="store_true", help="skip the map-only metrics (their table is kept)")
    args = ap.parse_args()
    import quantus
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.load_model(args.model)
    pool = data.load_shapes("test", n=args.n_images, seed=0)
    x, y, masks = pool.images, pool.labels, pool.masks
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_model = time.perf_counter()
    compare_model_based(quantus, model, x[:args.model_images], y[:args.model_images], args.model_methods, out)
    t_model = time.perf_counter() - t_model
    record = out / "run.json"
    rec = json.loads(record.read_text()) if record.exists() else {}
    rec.update({"model-based": {"command": "quantus-venv/bin/python scripts/quantus_compare.py" +
                                (" --only-model-based" if args.only_model_based else ""),
                                "n_images": args.model_images, "methods": args.model_methods,
                                "seconds": round(t_model, 1)}})
    record.write_text(json.dumps(rec, indent=1) + "\n")
    if args.only_model_based:
        return
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
    pd.DataFrame(rows).to_csv(out / "comparison.csv", index=False, float_format="%.6g")
    rec.update({
        "command": "quantus-venv/bin/python scripts/quantus_compare.py", "quantus": quantus.__version__,
        "torch": torch.__version__, "model": args.model, "n_images": args.n_images, "methods": args.methods,
        "threads": 1, "machine": f"{os.uname().machine}, {os.cpu_count()} CPU cores"})
    record.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
