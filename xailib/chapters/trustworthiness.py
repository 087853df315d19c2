"""The trustworthiness chapter's work (the survey, its section 4.1): infidelity and
max-sensitivity on the benchmark networks, BAM's model contrast on the object / scene pair, and
the trojaned networks' triggers; tables and the survey's claims. The BAM and trojan image sets
and their per-image rows are the library's (:mod:`xailib.known_truth`), which chapter 10 shares.

- **BAM** (Yang and Kim 2019): the model zoo's ``vgg_mini_bam_object`` and ``vgg_mini_bam_scene``
  are the same architecture trained on the same images (a shape pasted on a textured
  background), one to name the shape, the other the background, whose labels are drawn
  independently. The object therefore matters to the first network and, as a feature, not to the
  second. BAM's **model contrast score** for a method is the mean over images of the attribution
  it gives the object's pixels under the object network minus under the scene network (each map
  normalised to [0, 1], :func:`xailib.metrics.localisation.normalise`; ``region_mean``); a
  trustworthy method scores above 0.
- **Trojans** (Lin et al. 2020, as the survey presents them): the zoo's ``vgg_mini_trojan_fixed``
  and ``_random`` learned to answer "circle" whenever a 6 x 6 checker trigger is present (at a
  fixed place, or anywhere). On triggered images of other classes that they do call "circle", the
  trigger is the evidence: a trustworthy map puts its mass there. Scored by Lin et al.'s overlap
  (the IoU of the map's top pixels, as many as the trigger has, with the trigger:
  ``top_k_iou``), by the share of the positive map on the trigger (``mask_energy``) and by whether
  the map's maximum lies on it (``pointing_game``, no tolerance). The clean network explains the
  same images as the contrast.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch

from .. import verdicts
from ..methods.controls import NULLS, strongest_null

PLANNING_EFFECT = 0.1
FIRST_ORDER = "first-order gradient (reference)"   # the infidelity table's upper reference row (first_order)
REFERENCE_SHARE = 0.5     # the first-order map must remove at least this share of the strongest null's infidelity


def infidelity_calibration(rows: pd.DataFrame, references: dict | None = None) -> pd.DataFrame:
    """Does a perturbation tell a faithful map from one that knows nothing? One row per (network,
    rescaled infidelity score) of ``rows`` (:func:`score_rows`' table): the upper reference's mean,
    the strongest null's (the lowest mean of :data:`~xailib.methods.controls.NULLS`), the share of
    the null's infidelity the reference removes (1 - reference / null), and whether the setting is
    degenerate: that share below ``REFERENCE_SHARE`` (one half, as a removal that leaves half of
    the decisions intact is degenerate in :mod:`xailib.calibration`), so that even the exact
    first-order map barely fits the output changes better than a map that knows nothing (a
    perturbation too large for the output to respond to first order, or one that moves nothing).

    ``references``: {perturbation: the method row that is its exact first-order prediction}; by
    default the Gaussian perturbation's, :data:`FIRST_ORDER` (:func:`first_order`: a pixel's three
    channels move together by the same small amount). The square perturbation has none in the
    table (its first-order term is the gradient times the image minus the mean colour, over a
    square far from small), so nothing is decided there (``degenerate`` False, share NaN)."""
    references = {"gaussian": FIRST_ORDER} if references is None else references
    out = []
    for model, gm in rows.groupby("model", sort=False):
        for col in [c for c in gm.columns if c.startswith("infidelity") and "rescaled" in c]:
            kind = col.split(",")[1].split("(")[0].strip()          # "infidelity, gaussian (rescaled)"
            means = gm.groupby("method")[col].mean()
            null = strongest_null(means.to_dict(), higher_is_better=False)
            ref = float(means.get(references.get(kind), np.nan))
            nul = float(means[null]) if null is not None else np.nan
            share = 1 - ref / nul if np.isfinite(ref) and nul > 0 else np.nan
            out.append({"model": model, "score": col, "reference": references.get(kind, "none"),
                        "reference's score": ref, "strongest null": null, "null's score": nul,
                        "share removed": share, "degenerate": bool(np.isfinite(share) and share < REFERENCE_SHARE)})
    return pd.DataFrame(out, columns=["model", "score", "reference", "reference's score", "strongest null",
                                      "null's score", "share removed", "degenerate"])


def infidelity_reasons(calib: pd.DataFrame) -> dict:
    """``{(model, score): why}`` for each degenerate row of :func:`infidelity_calibration`: the
    sentence a claim on that setting carries instead of a verdict."""
    out = {}
    for _, r in calib[calib["degenerate"]].iterrows():
        null, its, ref = str(r["strongest null"]).replace("_", " "), r["null's score"], r["reference's score"]
        out[r["model"], r["score"]] = (f"the exact first-order map ({ref:.3g}) removes less than "
                                       f"{100 * REFERENCE_SHARE:.0f} % of the {null} map's infidelity ({its:.3g}) under "
                                       "this perturbation: it cannot tell a faithful map from no explanation")
    return out


def infidelity_calibration_summary(calib: pd.DataFrame, used: float) -> str:
    """One generated sentence on an :func:`infidelity_calibration` table made over noise levels
    (a ``noise`` column): which levels are degenerate, and where the chapter's own (``used``) stands."""
    if not len(calib) or calib["reference's score"].isna().all():
        return "No exact first-order reference was scored here: nothing is calibrated."
    def state(r):
        ref, null, its = r["reference's score"], str(r["strongest null"]).replace("_", " "), r["null's score"]
        return (f"the first-order map {ref:.3g} against the {null} map's {its:.3g} on {r['model']}, "
                f"{100 * r['share removed']:.0f} % removed")
    bad = calib[calib["degenerate"]]
    said = ("Degenerate, no map can show its fidelity there: " + "; ".join(
        f"noise {r['noise']:g} ({state(r)})" for _, r in bad.iterrows()) + ". ") if len(bad) else (
        "No noise level here is degenerate. ")
    mine = calib[np.isclose(calib["noise"], used) & calib["reference's score"].notna()]
    if not len(mine):
        return said + f"The chapter's noise, {used:g}, is not among the levels calibrated."
    ok = not mine["degenerate"].any()
    return said + (f"A setting is degenerate where the exact first-order map removes less than "
                   f"{100 * REFERENCE_SHARE:.0f} % of the strongest null's infidelity. "
                   f"The chapter's noise, {used:g}, {'tells' if ok else 'does not tell'} a faithful map from none: "
                   + "; ".join(state(r) for _, r in mine.iterrows()) + ".")


def _whose_images(label: str) -> str:
    """The trojaned network whose images a clean-network row explains (its label says so)."""
    m = re.search(r"\(on (.+)'s images\)", label)
    return m.group(1) if m else label


def mean_table(rows: pd.DataFrame, by, columns, fmt: str = "{:.3f}", proportions=()) -> pd.DataFrame:
    """Mean of each column per group with its 95 % interval: a bootstrap over images, or for the
    ``proportions`` (0 / 1 per image, or shares of ties) Wilson's. A column that takes one value on
    every image (a constant map's, by construction) shows that value and "(every image)"."""
    out = {}
    for key, g in rows.groupby(by, sort=False):
        cells = {}
        for c in columns:
            v = g.sort_values("image")[c].to_numpy(dtype=float)
            v = v[np.isfinite(v)]                     # a score not computed for this method: a dash
            if not len(v):
                cells[c] = "—"
                continue
            if c not in proportions and np.ptp(v) == 0:
                cells[c] = f"{fmt.format(v[0])} (every image)"
                continue
            k = verdicts.paired(v)
            cells[c] = f"{fmt.format(k.mean)} [{fmt.format(k.low)}, {fmt.format(k.high)}]"
        out[key] = cells
    t = pd.DataFrame(out).T
    t.index.names = by if isinstance(by, list) else [by]
    return t


def claims(bam: pd.DataFrame | None, trojan: pd.DataFrame | None, trust: pd.DataFrame | None, methods, *,
           n_boot: int = 2000, seed: int = 0) -> list:
    """The survey's claims, one per method (and network where it applies):

    - BAM: the method attributes more to the object under the object network than under the
      scene network (model contrast score above 0);
    - trojans: the method's maximum lies on the trigger in most triggered images (pointing hit
      rate above 1/2, the survey's statement), and more often under the trojaned network than
      under the clean one on the same images (the same test with a control: an edge detector
      finds a high-contrast trigger on any network);
    - trojans, against chance: the method's maximum lies on the trigger more often than the
      strongest null's (:data:`xailib.methods.controls.NULLS`, the edge detector included: a
      high-contrast trigger draws an edge detector's maximum without any network);
    - infidelity: the method's (rescaled) infidelity is below the strongest null's, paired over
      images; no verdict under a perturbation where the exact first-order map (the reference row,
      when ``trust`` has it) removes less than half of that null's infidelity
      (:func:`infidelity_calibration`)."""
    out = []
    real = [m for m in methods if m not in NULLS]
    if bam is not None:
        for m in methods:
            g = bam[bam.method == m].sort_values("image")
            if len(g):
                out.append(verdicts.Claim(
                    f"{m}: attributes the object to the object network, not to the scene network", "BAM pair",
                    verdicts.paired(g["contrast"].to_numpy(), 0.0, n_boot=n_boot, seed=seed), kind="above",
                    effect=PLANNING_EFFECT, paper="the survey (after Yang and Kim): a trustworthy method does",
                    setting="model contrast score above 0", group="BAM model contrast above 0"))
    if trojan is not None:
        clean = trojan[trojan.network == "clean"].assign(images=lambda t: t.model.map(_whose_images))
        # the survey's test as stated also for the edge detector (a model-free map that passes it
        # shows what that test alone cannot tell); the null comparisons for the methods only
        stated = [m for m in methods if m not in ("random", "smooth_random", "constant")]
        for model, gm in trojan[trojan.network == "trojaned"].groupby("model", sort=False):
            for m in stated:
                g = gm[gm.method == m].sort_values("image")
                if not len(g):
                    continue
                hits = g["pointing hit"].to_numpy()
                out.append(verdicts.Claim(
                    f"{m}: highlights the trigger", model,
                    verdicts.paired(hits, 0.5, n_boot=n_boot, seed=seed), kind="above",
                    effect=0.25, paper="the survey (after Lin et al. 2020): a qualified method does",
                    setting="the map's maximum on the trigger in more than half the images", scale=100,
                    unit=" points", group="highlights the trigger (as the survey states it)"))
                if m in NULLS:
                    continue
                null = strongest_null({n: gm[gm.method == n]["pointing hit"].mean() for n in NULLS},
                                      higher_is_better=True)
                ref = gm[gm.method == null].sort_values("image") if null else g.iloc[:0]
                if len(ref) == len(g):
                    out.append(verdicts.Claim(
                        f"{m}: highlights the trigger more than the strongest null", model,
                        verdicts.paired(hits, ref["pointing hit"].to_numpy(), n_boot=n_boot, seed=seed),
                        kind="better", effect=0.25, paper="— (the null this book asks a trigger finder to beat)",
                        setting=f"pointing hits on the trigger, method minus the {null.replace('_', ' ')} map, same images",
                        scale=100, unit=" points", group="highlights the trigger more than the strongest null"))
                c = clean[(clean.images == model) & (clean.method == m)].sort_values("image")
                if len(c) == len(g):
                    out.append(verdicts.Claim(
                        f"{m}: highlights the trigger because the network uses it", model,
                        verdicts.paired(hits, c["pointing hit"].to_numpy(), n_boot=n_boot, seed=seed), kind="better",
                        effect=0.25, paper="the survey's test with the clean network as control (this book)",
                        setting="pointing hits on the trigger, trojaned network minus clean network, same images",
                        scale=100, unit=" points", group="highlights the trigger more than on the clean network"))
    if trust is not None:
        calib = infidelity_calibration(trust)        # its strongest null per (network, score) is the claims' too
        dead = infidelity_reasons(calib)
        strongest = calib.set_index(["model", "score"])["strongest null"]
        for model, gm in trust.groupby("model", sort=False):
            for col in [c for c in gm.columns if c.startswith("infidelity") and "rescaled" in c]:
                null = strongest.get((model, col))
                if null is None:
                    continue
                rnd = gm[gm.method == null].sort_values("image")
                small = np.median(np.abs(rnd[col].to_numpy())) < 0.1     # show small scores in thousandths
                for m in real:
                    g = gm[gm.method == m].sort_values("image")
                    if len(g) == len(rnd):
                        out.append(verdicts.Claim(
                            f"{m}: more faithful than the strongest null", model,
                            verdicts.paired(rnd[col].to_numpy(), g[col].to_numpy(), n_boot=n_boot, seed=seed),
                            kind="better", effect=None, paper="— (the survey defines the score; it reports none)",
                            setting=f"{col}: the {null.replace('_', ' ')} map's minus the method's",
                            scale=1000.0 if small else 1.0, unit=" thousandths" if small else "",
                            group=f"more faithful than the strongest null ({col})",
                            degenerate=dead.get((model, col), "")))
    return out


def score_rows(scores, name: str, net, images, targets, maps: dict, *, perturbations=("gaussian", "square"),
               noise: float = 0.1, side: int = 8, n_samples: int = 32, output: str = "logit",
               baseline_noise: float = 0.2,
               sensitivity_methods=(), method_params: dict | None = None, radius: float = 0.02,
               sensitivity_samples: int = 5, seed: int = 0, rescales=(True, False)) -> pd.DataFrame:
    """Per (method, image) on one network: infidelity under each perturbation, rescaled and plain
    (``rescales``), and max-sensitivity (relative) for the methods of ``sensitivity_methods``;
    every score read from, or computed into, the book's score store through ``scores`` (a
    :class:`xailib.map_store.MapStore`; an interrupted run resumes)."""
    n = len(images)
    rows = []
    for m, s in maps.items():
        cols = {}
        for kind in perturbations:
            for rescale in rescales:
                col = f"infidelity, {kind} ({'rescaled' if rescale else 'plain'})"
                cols[col] = scores.scores(net, images, targets, s, "infidelity", batch=n, perturbation=kind,
                                          noise=noise, side=side, n_samples=n_samples, rescale=rescale,
                                          output=output, seed=seed, baseline_noise=baseline_noise)[0].numpy()
        if m in sensitivity_methods:
            cols["max-sensitivity"] = scores.scores(net, images, targets, s, "max_sensitivity", batch=n, method=m,
                                                    method_params=(method_params or {}).get(m, {}), radius=radius,
                                                    n_samples=sensitivity_samples, seed=seed)[0].numpy()
        rows.append(pd.DataFrame({"model": name, "method": m, "image": np.arange(n), **cols}))
    return pd.concat(rows, ignore_index=True)


def first_order(model, images: torch.Tensor, targets) -> torch.Tensor:
    """The signed gradient of the target's logit summed over colour channels: the exact
    first-order prediction of the output change under a perturbation that moves a pixel's channels
    together (the Gaussian one), so the reference row of the infidelity table. Not a method: a
    Taylor expansion."""
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x).gather(1, torch.as_tensor(targets, device=x.device).view(-1, 1)).sum()
        g, = torch.autograd.grad(out, x)
    return g.sum(1).detach()


def rank_shift(rows: pd.DataFrame, kind: str = "gaussian") -> pd.DataFrame:
    """Each method's rank (1 = lowest infidelity) with and without the optimal rescaling, per network."""
    out = {}
    for name, g in rows.groupby("model", sort=False):
        means = g.groupby("method", sort=False)[[f"infidelity, {kind} (rescaled)", f"infidelity, {kind} (plain)"]].mean()
        out[name, "rank, rescaled"] = means.iloc[:, 0].rank().astype(int)
        out[name, "rank, plain"] = means.iloc[:, 1].rank().astype(int)
    return pd.DataFrame(out)
