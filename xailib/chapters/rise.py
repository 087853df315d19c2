"""Chapter 02's plumbing (RISE, Petsiuk et al. 2018): its tables of deletion, insertion and the
pointing game, and its claims against the paper's Tables 1 and 2.

RISE itself is the library's (:mod:`xailib.methods.rise`), and so are the scores
(:mod:`xailib.metrics.causal`, the pointing game in :mod:`xailib.metrics.localisation`).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .. import data, metrics, plots, verdicts
from ..methods import controls

PAPER_THREE = ["gradcam", "occlusion", "lime"]            # the paper's comparisons, shown first
NULLS = list(controls.NULLS)    # "random" first: this chapter's own noise map; the others from the registry
TABLE2 = ["gradient", "deconvolution", "gradcam"]       # the paper's AM, Deconv and CAM columns
USES = {"deletion": "dataset_mean", "insertion": "blur"}     # the operator each score removes with

# The paper's Table 1 (RISE against each method), the gaps a decisive n is sized for.
PAPER_T1 = {"VGG16": {"deletion": {"gradcam": 0.1087, "occlusion": 0.1158, "lime": 0.1014, "RISE": 0.0980},
                      "insertion": {"gradcam": 0.6149, "occlusion": 0.5917, "lime": 0.6167, "RISE": 0.6663}},
            "ResNet50": {"deletion": {"gradcam": 0.1232, "occlusion": 0.1421, "lime": 0.1217, "RISE": 0.1076},
                         "insertion": {"gradcam": 0.6766, "occlusion": 0.6618, "lime": 0.6940, "RISE": 0.7267}}}
LOWER = {"deletion": True, "insertion": False, "insertion_constant": False}

# The paper's Table 2 text: for VGG16 "RISE performs consistently better than all of the white-box
# methods"; for ResNet50 it "does not have the highest pointing accuracy but comes close" (to CAM).
# Gaps from its MS COCO rows (several objects per image, like the harder images here); boxes.
PAPER_T2_COCO = {"VGG16": {"gradient": 37.10, "deconvolution": 38.60, "RISE": 50.71},
                 "ResNet50": {"gradient": 30.40, "deconvolution": 38.2, "gradcam": 58.4, "RISE": 55.58}}
CLOSE = 0.05          # "comes close": within 5 points (the paper's gap to CAM is 2.8 points)


def method_params(method: str, dataset: str, pool, image_size: int, seed: int) -> dict:
    """A method's parameters beyond its defaults: expected gradients' reference images (16
    validation images of the benchmark, or the last 16 of the pool for another data set)."""
    if method == "expected_gradients":
        ref = (data.load_shapes("val", n=16, size=image_size, seed=seed).images if dataset == "shapes"
               else pool.images[-16:])
        return {"background": ref}
    return {}


def summarise(auc: dict, model: str, names, runs_of, keys_of, n_seeded: int, all_seeded: bool) -> pd.DataFrame:
    """Each run's mean over the images every run explained (the spread between runs), and the
    per-image scores of the runs on every image (the mean and its standard error).

    ``auc[model, key]``: (N, 3) deletion, insertion, insertion on a constant canvas per image;
    ``runs_of(name)``: the map keys of a name's runs; ``keys_of(name)``: those that ran on every
    image; ``all_seeded``: every run ran on every image."""
    out = {}
    for name in names:
        runs = runs_of(name)
        per_run = torch.stack([auc[model, k][:n_seeded].mean(0) for k in runs])            # (runs, 3)
        per_image = torch.stack([auc[model, k] for k in keys_of(name)]).mean(0)          # (N, 3)
        mean = per_run.mean(0) if all_seeded else per_image.mean(0)
        out[name] = {"deletion": mean[0].item(), "insertion": mean[1].item(),
                     "deletion sd (runs)": per_run[:, 0].std().item() if len(runs) > 1 else np.nan,
                     "insertion sd (runs)": per_run[:, 1].std().item() if len(runs) > 1 else np.nan,
                     "s.e. (images)": (per_image.std(0) / len(per_image) ** 0.5).max().item()}
    return pd.DataFrame(out).T


def with_spread(t: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as shown: each mean with its spread between runs (when there are several)."""
    cell = lambda v, sd: f"{v:.3f}" + ("" if np.isnan(sd) else f" ± {sd:.3f}")  # noqa: E731
    return pd.DataFrame({"deletion ↓": [cell(v, sd) for v, sd in zip(t["deletion"], t["deletion sd (runs)"])],
                         "insertion ↑": [cell(v, sd) for v, sd in zip(t["insertion"], t["insertion sd (runs)"])],
                         "s.e.": t["s.e. (images)"].round(3)}, index=t.index)


def pointing_hits(net, images, targets, smap, objects, tolerance) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the pointing game's hit (a share of the map's tied maxima) against the boxes and
    against the pixel masks of ``objects``."""
    box = metrics.score(net, images, targets, smap, "pointing_game", boxes=objects.boxes, tolerance=tolerance)
    mask = metrics.score(net, images, targets, smap, "pointing_game", masks=objects.masks, tolerance=tolerance)
    return box.numpy(), mask.numpy()


def per_class(frame: pd.DataFrame, col: str) -> pd.Series:
    """The paper's Table 2 average: accuracy per class, then the mean over classes (in %)."""
    return 100 * frame.groupby(["model", "method", "label"])[col].mean().groupby(["model", "method"]).mean()


def better(wide, a: str, b: str, metric: str):
    """Paired comparison oriented so that > 0 means a scores better than b under metric."""
    return verdicts.paired(wide[b], wide[a]) if LOWER[metric] else verdicts.paired(wide[a], wide[b])


def rise_claims(per_image: pd.DataFrame, hard: pd.DataFrame | None, degenerate: dict) -> pd.DataFrame:
    """The chapter's claims table: RISE against the paper's three comparisons and the strongest
    null on deletion and insertion (Table 1), smooth against per-pixel masks, the blurred canvas
    against the constant one, and the pointing game on the harder images (:func:`pointing_claims`).
    ``degenerate``: ``{(network, operator): why}`` (:func:`xailib.calibration.reasons`), no verdict
    on those (required: a claim on a setting that removes nothing gets no verdict)."""
    claims = []
    for mname, sub in per_image.groupby("model", sort=False):
        wide = {k: sub.pivot(index="image", columns="method", values=k) for k in LOWER}
        t1 = PAPER_T1["ResNet50" if "resnet" in mname else "VGG16"]
        for metric in ("deletion", "insertion"):
            # the strongest null scored (by its mean); "does not hold" by equivalence needs a margin
            # that means something here: a share of the object mask's lead over that null
            null = controls.strongest_null(wide[metric].mean().to_dict(), higher_is_better=not LOWER[metric])
            against = f"against the {null.replace('_', ' ')} map"
            margin, note = verdicts.reference_margin(wide[metric]["object mask"], wide[metric][null],
                                                     lower_is_better=LOWER[metric],
                                                     names=("the object mask", f"the {null.replace('_', ' ')} map"))
            dead = (degenerate.get((mname, USES[metric]), "")      # the operator removes too little, or the
                    or ("" if margin is not None else note))  # reference loses to the null: no verdict here
            for other in PAPER_THREE:
                gap = abs(t1[metric][other] - t1[metric]["RISE"])
                claims.append(verdicts.Claim(f"RISE beats {other} on {metric}", mname, better(wide[metric], "RISE", other, metric),
                                             paper_gap=gap, margin=margin, margin_note=note, degenerate=dead,
                                             paper=f"Table 1: by {gap:.4f}"))
            claims.append(verdicts.Claim(f"RISE beats the strongest null on {metric}", mname,
                                         better(wide[metric], "RISE", null, metric), paper="implied",
                                         setting=against, degenerate=dead))
            if "RISE, per-pixel masks" in wide[metric]:
                claims.append(verdicts.Claim(f"smooth (upsampled) masks beat per-pixel masks on {metric}", mname,
                                             better(wide[metric], "RISE", "RISE, per-pixel masks", metric),
                                             paper="section 3.2 (no number)", degenerate=dead))
        for m in [c for c in wide["insertion"] if c not in ("object mask", *NULLS)]:
            claims.append(verdicts.Claim(f"a blurred canvas gives {m} a higher insertion score than a constant one", mname,
                                         verdicts.paired(wide["insertion"][m], wide["insertion_constant"][m]),
                                         paper="section 4.1: 'for all methods' (no number)",
                                         group="a blurred canvas gives higher insertion scores than a constant one"))
    claims += pointing_claims(hard) if hard is not None else []
    return verdicts.claims_table(claims)


def pointing_claims(hard: pd.DataFrame) -> list:
    """RISE against the white-box methods in the pointing game on the harder images (boxes).
    Hits are 0 / 1 per image, so the comparisons are exact McNemar tests with Newcombe intervals."""
    claims = []
    for mname, sub in hard.groupby("model", sort=False):
        hits = sub.pivot(index="image", columns="method", values="pointing_box")
        t2 = PAPER_T2_COCO["ResNet50" if "resnet" in mname else "VGG16"]
        where = f"harder images, boxes ({len(hits)} images)"
        null = controls.strongest_null(hits.mean().to_dict(), higher_is_better=True)
        margin, note = (verdicts.reference_margin(hits["object mask"], hits[null],
                                                  names=("the object mask", f"the {null.replace('_', ' ')} map"))
                        if "object mask" in hits and null is not None else (None, ""))
        for other in ("gradient", "deconvolution"):
            if other in hits and "RISE" in hits:
                gap = (t2["RISE"] - t2[other]) / 100
                claims.append(verdicts.Claim(f"RISE points better than {other}", mname, verdicts.paired(hits["RISE"], hits[other]),
                                             paper_gap=gap, margin=margin, margin_note=note, scale=100, unit=" pts", setting=where,
                                             paper=f"Table 2, MS COCO: by {100 * gap:.1f} pts"))
        if "gradcam" in t2 and "gradcam" in hits and "RISE" in hits:
            claims.append(verdicts.Claim(f"RISE points within {100 * CLOSE:.0f} pts of Grad-CAM (comes close)", mname,
                                         verdicts.paired(hits["RISE"], hits["gradcam"]), kind="alike", margin=CLOSE,
                                         effect=CLOSE, scale=100, unit=" pts", setting=where,
                                         paper=f"Table 2, MS COCO: {t2['RISE'] - t2['gradcam']:+.1f} pts to CAM"))
        if null is not None and "RISE" in hits:
            claims.append(verdicts.Claim("RISE points better than the strongest null", mname,
                                         verdicts.paired(hits["RISE"], hits[null]), scale=100, unit=" pts",
                                         setting=f"{where}, against the {null.replace('_', ' ')} map", paper="implied"))
    return claims


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def causal_curves(fractions, curves: dict, title: str = "", highlight=("rise",)):
    """Mean deletion and insertion curves per method: ``curves[name]`` is (N, 2, steps + 1)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, k, label in zip(axes, (0, 1), ("deletion (lower AUC is better)",
                                          "insertion (higher AUC is better)")):
        for name, c in curves.items():
            bold = any(name.startswith(h) for h in highlight)
            ax.plot(fractions, c[:, k].mean(0), lw=2.2 if bold else 1.0,
                    alpha=1.0 if bold else 0.75, label=name.replace("_", " "))
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("fraction of pixels changed, most salient first")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("probability of the explained class")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def example_curves(image, saliency, fractions, curve, title=""):
    """The paper's Fig. 4 layout: image, saliency map, deletion curve, insertion curve."""
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.6))
    axes[0].imshow(plots.to_hwc(image), interpolation="nearest")
    plots.show_map(axes[1], saliency.detach().cpu().float().numpy())
    for ax in axes[:2]:
        ax.axis("off")
    for ax, k, name in zip(axes[2:], (0, 1), ("deletion", "insertion")):
        y = curve[k].numpy()
        ax.fill_between(fractions, y, alpha=0.3)
        ax.plot(fractions, y)
        area = float(np.trapezoid(y, fractions))
        ax.set_title(f"{name}: AUC {area:.3f}", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("fraction of pixels", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def mask_sweep(table):
    """RISE against the number of masks: seconds per image, agreement with a reference map,
    deletion and insertion (``table`` indexed by N)."""
    cols = [c for c in table.columns]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.1 * len(cols), 2.8))
    for ax, c in zip(axes, cols):
        ax.plot(table.index, table[c], "o-")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(table.index), [str(n) for n in table.index], fontsize=7, rotation=45)
        ax.set_xlabel("number of masks N")
        ax.set_title(c, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def example_tables(fractions, curves: dict, saliency, image: int, size: int = 64):
    """One image's deletion and insertion curves (``curves``: {method: (3, steps) tensor, the
    chapter's deletion, insertion, insertion on a constant canvas}) as a table indexed by the
    fraction of pixels, columns "<method>, deletion" and "<method>, insertion", and the image's
    index in the test set (``image``); and its saliency map average-pooled to at most ``size`` px,
    as a table of rows. Small enough to commit: the chapter draws the paper's Fig. 4 on the real
    network's first photograph from them."""
    curve_table = pd.DataFrame({f"{m}, {name}": c[k].numpy() for m, c in curves.items()
                                for k, name in ((0, "deletion"), (1, "insertion"))},
                               index=pd.Index(np.round(np.asarray(fractions, dtype=float), 6), name="fraction"))
    curve_table["image"] = int(image)
    return curve_table, pd.DataFrame(plots.pooled(saliency, size).numpy())


def example_from_tables(curve_table, map_table, method: str):
    """The fractions, the (2, steps) deletion and insertion curves of ``method``, the map and the
    image's index in the test set, read back from :func:`example_tables`' tables (as read from CSV)."""
    fractions = curve_table.index.to_numpy(dtype=float) if curve_table.index.name == "fraction" \
        else curve_table["fraction"].to_numpy(dtype=float)
    curve = torch.tensor(np.stack([curve_table[f"{method}, deletion"].to_numpy(float),
                                   curve_table[f"{method}, insertion"].to_numpy(float)]))
    saliency = torch.tensor(map_table.drop(columns=[c for c in map_table.columns
                                                    if str(c).startswith("Unnamed")]).to_numpy(float))
    return fractions, curve, saliency, int(curve_table["image"].iloc[0])
