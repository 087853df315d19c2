"""Plumbing of the chapter ``09_faithfulness``: scores under every removal operator, ranks with
bootstrap intervals, ROAR's tables, sensitivity-n curves, the hyper-parameter table, and the
claims, so that the notebook holds prose, tables and figures only."""
from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .. import metrics, plots, verdicts
from ..errors import ParameterError
from ..metrics.faithfulness import draw_subsets, sensitivity_n_from, subset_outputs
from ..methods.controls import NULLS, strongest_null

CONTROL = "random"
CEILING = "object mask"


def operator_rows(scores, name: str, net, images, targets, maps: dict, operators, *, n_steps: int = 16,
                  blur_sigma: float = 3.0, fraction: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """One row per (method, operator, image): deletion and insertion AUC (``n_steps`` steps) and the
    Impact Score (the top ``fraction`` of pixels removed), each with the shared ``removal``
    operator, in batches of 8 images through ``scores`` (a :class:`xailib.map_store.MapStore`: every
    score read from the book's score store or computed into it). Insertion is not scored under
    ROAD (NaN): ROAD removes pixels (most or least relevant first); inserting into an image imputed
    from nothing starts from a flat grey, the constant canvas again."""
    rows = []
    n = len(images)
    for op in operators:
        kw = dict(removal=op)
        if op == "blur":
            kw["blur_sigma"] = blur_sigma
        for m, s in maps.items():
            d = scores.scores(net, images, targets, s, "deletion", batch=8, n_steps=n_steps, seed=seed, **kw)[0]
            i = (torch.full((n,), float("nan"), dtype=torch.float64) if op == "road" else
                 scores.scores(net, images, targets, s, "insertion", batch=8, n_steps=n_steps, seed=seed, **kw)[0])
            k = scores.scores(net, images, targets, s, "impact", batch=8, fraction=fraction, **kw)[0]
            rows.append(pd.DataFrame({"model": name, "method": m, "operator": str(op), "image": range(n),
                                      "deletion": d.numpy(), "insertion": i.numpy(), "impact": k.numpy()}))
    return pd.concat(rows, ignore_index=True)


def rank_table(rows: pd.DataFrame, metric: str, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per (model, operator): each method's rank under ``metric`` (1 = best, the registry's
    direction) with a bootstrap interval over images. Columns: model, operator, method, mean,
    rank, low, high."""
    higher = metrics.METRICS[metric].higher_is_better
    out = []
    rng = np.random.default_rng(seed)      # one stream over the groups, as the committed tables were made
    for (model, op), g in rows.dropna(subset=[metric]).groupby(["model", "operator"], sort=False):
        wide = g.pivot(index="image", columns="method", values=metric)
        r = verdicts.bootstrap_ranks(wide, higher, n_boot=n_boot, seed=rng, level=level)
        out.append(r.assign(model=model, operator=op).rename_axis("method").reset_index())
    return pd.concat(out, ignore_index=True)[["model", "operator", "method", "mean", "rank", "low", "high"]]


def rank_agreement(ranks: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau between the method rankings of every pair of operators, per model."""
    from scipy.stats import kendalltau
    out = {}
    for model, g in ranks.groupby("model", sort=False):
        wide = g.pivot(index="method", columns="operator", values="rank")
        ops = list(dict.fromkeys(g.operator))
        out[model] = pd.DataFrame([[kendalltau(wide[a], wide[b])[0] for b in ops] for a in ops], index=ops, columns=ops)
    return pd.concat(out, names=["model", "operator"])


def control_table(rows: pd.DataFrame, control: str = CONTROL) -> pd.DataFrame:
    """What a random map scores under each operator, per model: its mean deletion and insertion AUC
    and its Impact Score (the share of images whose decision a random 10 % removal changes or
    whose confidence it halves), with Wilson intervals for the share."""
    out = []
    for (model, op), g in rows[rows.method == control].groupby(["model", "operator"], sort=False):
        est, lo, hi = verdicts.proportion(int(g.impact.sum()), len(g))
        out.append({"model": model, "operator": op, "random map: deletion AUC": g.deletion.mean(),
                    "random map: insertion AUC": g.insertion.mean(),
                    "random map: Impact Score": f"{est:.2f} [{lo:.2f}, {hi:.2f}]", "impact rate": est,
                    "n": len(g)})
    return pd.DataFrame(out)


def operator_claims(rows: pd.DataFrame, methods, *, n_boot: int = 2000, seed: int = 0,
                    degenerate: dict | None = None) -> list:
    """Per model and operator:

    - the operator keeps a random removal harmless: a random map's Impact Score (10 % of the
      pixels) below 1/2 (the survey's doubt: if a random removal already flips decisions, the
      score measures the shift, not the explanation);
    - each method beats the strongest null under deletion (lower AUC, paired over images): of the
      nulls scored (:data:`xailib.methods.controls.NULLS`: random, smooth random, constant, edge),
      the one with the lowest mean AUC under that operator and model, named in the claim's setting;
      the random map's impact rate is the setting's control.

    ``degenerate``: ``{(model, operator): why}`` from :func:`xailib.calibration.reasons`; a claim on
    such a setting gets no verdict and says why. A setting where the object mask (:data:`CEILING`,
    when scored) does not beat the strongest null on its mean is degenerate too: removing the
    object's own pixels does not lower the score more than a map that knows nothing, so the
    removal measures something other than the explanation there (a silhouette kept by a constant
    fill, a blur the network sees through). The object mask's own claim, that evidence, is judged."""
    degenerate = dict(degenerate or {})
    out = []
    for (model, op), g in rows.groupby(["model", "operator"], sort=False):
        rnd = g[g.method == CONTROL].sort_values("image")
        if not len(rnd):
            continue
        rate = float(rnd.impact.mean())
        out.append(verdicts.Claim(
            f"a random 10 % removal leaves most decisions intact ({op})", model,
            verdicts.paired(rnd.impact.to_numpy(), 0.5, n_boot=n_boot, seed=seed), kind="below", effect=0.25,
            paper="the survey: a removal may measure the distribution shift", setting=f"removal: {op}",
            scale=100, unit=" points", group="random removal harmless", degenerate=degenerate.get((model, op), "")))
        null, means, lead = _reference_lead(g)
        ref = g[g.method == null].sort_values("image")
        dead_here = degenerate.get((model, op), "")
        if np.isfinite(lead) and lead <= 0 and not dead_here:      # the sentence is reference_margin's
            _, why = verdicts.reference_margin(g[g.method == CEILING].deletion, ref.deletion, lower_is_better=True,
                                               names=("the object mask", f"the {null.replace('_', ' ')} map"))
            dead_here = f"{why} (deletion AUC): the removal measures something else than the explanation"
        for m in methods:
            if m in NULLS:
                continue
            s = g[g.method == m].sort_values("image")
            if len(s) != len(ref):
                continue
            out.append(verdicts.Claim(
                f"{m}: deletion beats the strongest null ({op})", model,
                verdicts.paired(ref.deletion.to_numpy(), s.deletion.to_numpy(), n_boot=n_boot, seed=seed),
                kind="better", effect=0.05, paper="Petsiuk et al.'s deletion, every operator",
                setting=f"removal: {op}; deletion AUC, the {null.replace('_', ' ')} map's minus the method's",
                control=rate, group=f"deletion beats the strongest null ({op})",
                degenerate=degenerate.get((model, op), "") if m == CEILING else dead_here))
    return out


def _reference_lead(g: pd.DataFrame) -> tuple:
    """One (model, operator) group's strongest null (the lowest mean deletion AUC of the nulls),
    the mean AUC per method, and the object mask's lead over that null (NaN without the mask)."""
    means = g.groupby("method").deletion.mean()
    null = strongest_null(means.to_dict(), higher_is_better=False)
    lead = float(means[null] - means[CEILING]) if null is not None and CEILING in means else np.nan
    return null, means, lead


def reference_leads(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model and operator, the second half of the calibration: the object mask's mean deletion
    AUC (:data:`CEILING`, the upper reference), the strongest null's and the reference's lead over
    it (positive: the removal tells the object from a map that knows nothing). Where the lead is
    not positive, :func:`operator_claims` gives the methods no verdict."""
    out = []
    for (model, op), g in rows.groupby(["model", "operator"], sort=False):
        null, means, lead = _reference_lead(g)
        if not np.isfinite(lead):
            continue
        out.append({"model": model, "removal": op, "object mask": float(means[CEILING]), "strongest null": null,
                    "its deletion AUC": float(means[null]), "lead": lead,
                    "verdicts": "yes" if lead > 0 else "no: the reference does not beat the null"})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# ROAR
# --------------------------------------------------------------------------------------------

def roar_table(roar: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per method (rows) and k (columns), with the k = 0 network's accuracy."""
    base = roar[roar.fraction == 0].accuracy.iloc[0]
    t = roar[roar.fraction > 0].pivot(index="method", columns="fraction", values="accuracy")
    t.columns = [f"k = {100 * c:g} %" for c in t.columns]
    return t.assign(**{"k = 0 %": base})[["k = 0 %"] + list(t.columns)]


def roar_comparison(random: pd.DataFrame, method: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0):
    """Random removal against the method's, paired over test images, with the spread between
    retrainings in the test. ``random`` / ``method``: rows (repeat, image, correct). One retraining:
    the exact McNemar test. Several (paired by their seed): the estimate and interval are those of
    each image's mean correctness over the retrainings, and the p-value is the largest of the
    retrainings' own McNemar tests when every retraining's difference has the sign of the whole's
    (an intersection-union test, valid at its level without correction: a method that wins on one
    retraining and loses on another is not resolved), 1 otherwise."""
    a = random.assign(repeat=random.get("repeat", 0)).pivot(index="image", columns="repeat", values="correct")
    b = method.assign(repeat=method.get("repeat", 0)).pivot(index="image", columns="repeat", values="correct")
    if list(a.columns) != list(b.columns) or list(a.index) != list(b.index) or a.isna().any().any() or b.isna().any().any():
        raise ParameterError("random and method must have the same retrainings and images, every one scored")
    if a.shape[1] == 1:
        return verdicts.paired(a.iloc[:, 0].to_numpy(float), b.iloc[:, 0].to_numpy(float), n_boot=n_boot, seed=seed)
    whole = verdicts.paired(a.mean(1).to_numpy(), b.mean(1).to_numpy(), n_boot=n_boot, seed=seed, outcomes=False)
    each = [verdicts.paired(a[r].to_numpy(float), b[r].to_numpy(float), n_boot=n_boot, seed=seed) for r in a.columns]
    agree = whole.mean != 0 and all(np.sign(e.mean) == np.sign(whole.mean) for e in each)
    p = max(e.p for e in each) if agree else 1.0
    spread = ", ".join(f"{100 * e.mean:+.1f}" for e in each)
    return dataclasses.replace(whole, p=p, test=(
        f"exact McNemar test on each of {a.shape[1]} retrainings, the largest p (intersection-union; the "
        f"retrainings' differences {spread} points" + ("" if agree else ", not all in one direction: p = 1") + ")"))


def roar_claims(per_image: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> list:
    """Per method and k: removing the method's top k % and retraining leaves a less accurate
    network than removing a random k % (paired over the test images; over several retrainings, as
    :func:`roar_comparison` says)."""
    out = []
    for f, g in per_image[per_image.fraction > 0].groupby("fraction"):
        rnd = g[g.method == CONTROL]
        for m, s in g.groupby("method", sort=False):
            if m == CONTROL or len(s) != len(rnd):
                continue
            out.append(verdicts.Claim(
                f"{m}: its top {100 * f:g} % matter more than a random {100 * f:g} %", "vgg_mini (retrained)",
                roar_comparison(rnd, s, n_boot=n_boot, seed=seed),
                kind="better", effect=0.05, paper="Hooker et al. (the survey's [50])",
                setting=f"ROAR, k = {100 * f:g} %: accuracy after random removal minus after the method's",
                scale=100, unit=" points", group=f"ROAR at k = {100 * f:g} %: removal hurts more than random"))
    return out


# --------------------------------------------------------------------------------------------
# Sensitivity-n
# --------------------------------------------------------------------------------------------

ROAD_COLUMNS = ("MoRF", "LeRF", "combined")


def road_rows(store, name: str, net, images, targets, maps: dict, *, road_noise: float = 0.01,
              seed: int = 0) -> pd.DataFrame:
    """One row per (method, image): ROAD in both orders and their combination
    (:func:`xailib.metrics.road_scores`, the grad-cam package's percentiles), cached in ``store``."""
    rows = []
    for m, s in maps.items():
        def run(sl, s=s):
            return torch.stack(metrics.road_scores(net, images[sl], targets[sl], s[sl], road_noise=road_noise,
                                                   seed=seed), 1)
        v = store.batches(f"road/{name}/{m}", len(images), 8, run, progress=False).numpy()
        rows.append(pd.DataFrame({"model": name, "method": m, "image": range(len(images)),
                                  **{c: v[:, k] for k, c in enumerate(ROAD_COLUMNS)}}))
    return pd.concat(rows, ignore_index=True)


def road_table(rows: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (model, method): the mean of each ROAD column with its bootstrap interval over images,
    and the strongest null of the combination (the null with the highest mean) beside each method's."""
    out = []
    for (model, method), g in rows.groupby(["model", "method"], sort=False):
        r = {"model": model, "method": method}
        for c in ROAD_COLUMNS:
            k = verdicts.paired(g[c].to_numpy(), n_boot=n_boot, seed=seed, outcomes=False)
            r[f"{c} [95 % CI]"] = f"{k.mean:+.3f} [{k.low:+.3f}, {k.high:+.3f}]"
        out.append(r)
    return pd.DataFrame(out).set_index(["model", "method"])


def road_findings(rows: pd.DataFrame) -> str:
    """A line per network: the strongest null of ROAD's combination (named) and the methods whose
    mean combination is above it (means only; the table's intervals say how far)."""
    lines = []
    for model, g in rows.groupby("model", sort=False):
        means = g.groupby("method", sort=False)["combined"].mean()
        null = strongest_null(means.to_dict(), higher_is_better=True)
        if null is None:
            lines.append(f"- **{model}**: no null was scored, so the methods are not set against one.")
            continue
        above = [m for m in means.index if m not in NULLS and m != CEILING and means[m] > means[null]]
        lines.append(f"- **{model}**: the strongest null is the {null} map ({means[null]:+.3f}); above it in the "
                     "mean: " + (", ".join(above) if above else "no method") + ".")
    return "\n".join(lines)


def sensitivity_n_rows(store, name: str, net, images, targets, maps: dict, *, cell: int = 4, n_subsets: int = 64,
                       removal="zero", n_values=None, seed: int = 0) -> pd.DataFrame:
    """One row per (method, n, image): the correlation of sensitivity-n. The output changes are
    computed once per image (the same subsets for every method) and cached in ``store``."""
    def run(sl):
        nv, chosen, deltas = subset_outputs(net, images[sl], targets[sl], n_values=n_values, cell=cell,
                                            n_subsets=n_subsets, removal=removal, seed=seed)
        return deltas
    deltas = store.batches(f"sensitivity_n/{name}/{removal}/{cell}", len(images), 8, run, progress=False)
    nv, chosen = draw_subsets(*images.shape[-2:], cell, n_values, n_subsets, seed)
    n_features = chosen.shape[-1]
    rows = []
    for m, s in maps.items():
        r = sensitivity_n_from(s, chosen, deltas, cell).numpy()
        for j, n in enumerate(nv):
            rows.append(pd.DataFrame({"model": name, "method": m, "n": n, "share": n / n_features,
                                      "image": range(len(images)), "correlation": r[:, j]}))
    return pd.concat(rows, ignore_index=True)


def sensitivity_n_claims(rows: pd.DataFrame, methods, depth: dict, *, n_boot: int = 2000, seed: int = 0) -> list:
    """Per method: its mean correlation over n is above the random map's (per model), and, the
    thesis's reading of Ancona et al., it is lower on the deeper network (paired over images)."""
    out = []
    mean = rows.groupby(["model", "method", "image"], sort=False).correlation.mean().reset_index()
    for model, g in mean.groupby("model", sort=False):
        rnd = g[g.method == CONTROL].sort_values("image")
        for m in methods:
            s = g[g.method == m].sort_values("image")
            if m in (CONTROL, "constant") or not len(rnd) or len(s) != len(rnd):   # constant: 0 by construction
                continue
            out.append(verdicts.Claim(
                f"{m}: sensitivity-n above a random map's", model,
                verdicts.paired(s.correlation.to_numpy(), rnd.correlation.to_numpy(), n_boot=n_boot, seed=seed),
                kind="better", effect=0.1, paper="Ancona et al.: attributions should predict removals",
                setting="mean correlation over n, method minus random", group="sensitivity-n above a random map"))
    models = sorted(depth, key=depth.get)
    if len(models) == 2 and set(models) <= set(mean.model):
        shallow, deep = models
        for m in methods:
            a = mean[(mean.model == shallow) & (mean.method == m)].sort_values("image")
            b = mean[(mean.model == deep) & (mean.method == m)].sort_values("image")
            if m == CONTROL or not len(a) or len(a) != len(b):
                continue
            out.append(verdicts.Claim(
                f"{m}: explains the deeper network less well", f"{deep} against {shallow}",
                verdicts.paired(a.correlation.to_numpy(), b.correlation.to_numpy(), n_boot=n_boot, seed=seed),
                kind="better", effect=0.1, paper="the thesis, after Ancona et al.",
                setting=f"mean sensitivity-n correlation, {shallow} minus {deep}, same images",
                group="sensitivity-n lower on the deeper network"))
    return out


# --------------------------------------------------------------------------------------------
# Hyper-parameters
# --------------------------------------------------------------------------------------------

def hyper_table(rows: pd.DataFrame, scores: pd.DataFrame | None = None, measure: str = "spearman_abs") -> pd.DataFrame:
    """Per (method, parameter, value): the mean similarity to the default map with its interval,
    and, with ``scores`` (method, parameter, value, image, deletion), the mean deletion AUC and the
    rank the method would take among the default panel."""
    out = []
    rng = np.random.default_rng(0)
    for (m, p, v), g in rows.groupby(["method", "parameter", "value"], sort=False):
        x = g[measure].to_numpy()
        reps = x[rng.integers(0, len(x), size=(1000, len(x)))].mean(1)     # percentile bootstrap of the mean
        lo, hi = np.quantile(reps, [0.025, 0.975])
        out.append({"method": m, "parameter": p, "value": v, "n": len(g),
                    "similarity to default": f"{x.mean():.2f} [{lo:.2f}, {hi:.2f}]", "mean similarity": x.mean()})
    t = pd.DataFrame(out)
    if scores is not None and len(scores):
        panel = scores[scores.parameter == "(default)"].groupby("method").deletion.mean()
        dl = scores.groupby(["method", "parameter", "value"], sort=False).deletion.mean()
        t["deletion AUC"] = [dl.get((r.method, r.parameter, r.value), np.nan) for r in t.itertuples()]
        t["deletion AUC at default"] = [panel.get(r.method, np.nan) for r in t.itertuples()]
        def rank(method, value):      # 1 + the panel's methods (at their defaults) with a lower AUC
            return int((panel.drop(method, errors="ignore") < value).sum() + 1) if np.isfinite(value) else np.nan
        t["rank at default"] = pd.array([rank(r.method, panel.get(r.method, np.nan)) for r in t.itertuples()],
                                        dtype="Int64")
        t["rank with this value"] = pd.array([rank(r.method, d) for r, d in zip(t.itertuples(), t["deletion AUC"])],
                                             dtype="Int64")
    return t


def hyper_claims(rows: pd.DataFrame, measure: str = "spearman_abs", threshold: float = 0.9, *,
                 n_boot: int = 2000, seed: int = 0) -> list:
    """Per (method, parameter, value): the map moves (similarity to the default map below
    ``threshold``), Bansal et al.'s finding for methods with hyper-parameters. A method without
    one has nothing to claim (its row in the table shows similarity 1)."""
    out = []
    for (m, p, v), g in rows.groupby(["method", "parameter", "value"], sort=False):
        if p == "(none)":          # no hyper-parameter: the same call again, similarity 1 by construction
            continue
        what = f"{p} = {v}"
        out.append(verdicts.Claim(
            f"{m}: its map moves when {what}", "vgg_mini" if "model" not in g else str(g.model.iloc[0]),
            verdicts.paired(g[measure].to_numpy(), threshold, n_boot=n_boot, seed=seed), kind="below",
            effect=0.1, paper="Bansal et al. (the survey's [14])",
            setting=f"{measure} similarity to the default map below {threshold}",
            group=f"{m}: the map moves with a hyper-parameter"))
    return out


def read_roar(notebook: str = "09_faithfulness", root=None):
    """``scripts/roar.py``'s committed tables: (accuracy per method and k, per test image, its
    record), or None when the run is not committed."""
    import json
    from pathlib import Path

    from ..results import REPO
    folder = Path(root or REPO / "results") / notebook / "larger_run" / "roar"
    if not (folder / "roar.json").exists():
        return None
    return (roar_summary(pd.read_csv(folder / "roar.csv")), pd.read_csv(folder / "roar_per_image.csv"),
            json.loads((folder / "roar.json").read_text()))


def roar_summary(roar: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, k) of ``scripts/roar.py``'s table: the mean accuracy over the
    retrainings, the lowest and highest (``low``, ``high``) and their number (a run made before
    retrainings were repeated has one each)."""
    r = roar if "repeat" in roar else roar.assign(repeat=0)
    g = r.groupby(["method", "fraction"], sort=False).accuracy
    return pd.DataFrame({"accuracy": g.mean(), "low": g.min(), "high": g.max(), "retrainings": g.size()}).reset_index()


def top_fraction(maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """(B, H, W) bool: each map's top ``fraction`` of pixels (ties in a fixed random order), whatever their sign."""
    from ..metrics.impact import critical_region
    shifted = maps - maps.flatten(1).amin(1)[:, None, None] + 1.0     # all > 0: rank every pixel
    return critical_region(shifted, "pixels", fraction)


def deletion_frame(net, images, targets, maps, method: str, parameter: str, value, kw: dict) -> pd.DataFrame:
    """Deletion AUC per image of one (method, parameter, value)'s maps, as rows for :func:`hyper_table`."""
    d = metrics.score(net, images, targets, maps, "deletion", **kw).numpy()
    return pd.DataFrame({"method": method, "parameter": parameter, "value": value, "image": range(len(images)),
                         "deletion": d})


def operator_findings(table: pd.DataFrame) -> str:
    """Generated sentences per model on the operators: under which a random removal is harmless
    (holds), harmful (does not hold) or not resolved, and how many methods beat the strongest null
    under each (the object mask, the reference, not counted)."""
    lines = []
    harmless = table[table.group == "random removal harmless"]
    for model, g in harmless.groupby("model", sort=False):
        said = {v: [r.setting.replace("removal: ", "") for r in g.itertuples() if r.verdict == v]
                for v in (verdicts.HOLDS, verdicts.FAILS, verdicts.OPEN)}
        parts = [f"yes under {', '.join(said[verdicts.HOLDS])}" if said[verdicts.HOLDS] else "",
                 f"no under {', '.join(said[verdicts.FAILS])} (most decisions change)" if said[verdicts.FAILS] else "",
                 f"not resolved under {', '.join(said[verdicts.OPEN])}" if said[verdicts.OPEN] else ""]
        beat = table[(table.model == model) & table.group.str.startswith("deletion beats the strongest null")
                     & ~table.claim.str.startswith(f"{CEILING}:")]
        per_op = []
        for grp, sub in beat.groupby("group", sort=False):
            op = grp.split("(")[-1].rstrip(")")
            if (sub.verdict == verdicts.UNJUDGED).all():
                per_op.append(f"{op}: no verdict (a degenerate setting; the claims' rule says why)")
            else:
                per_op.append(f"{op}: {int((sub.verdict == verdicts.HOLDS).sum())} of {len(sub)}")
        lines.append(f"- **{model}**: does a random 10 % removal leave most decisions intact? "
                     + ("; ".join(p for p in parts if p) or "not judged") + ". Methods whose deletion beats the "
                     f"strongest null, per operator: {', '.join(per_op) or 'none judged'}.")
    return "\n".join(lines)


def roar_findings(roar: pd.DataFrame) -> str:
    """Generated sentences on a ROAR table: the methods below the random control at every step,
    and, per step, those whose removal leaves a *more* accurate network than a random one."""
    t = roar[roar.fraction > 0].pivot(index="method", columns="fraction", values="accuracy")
    if CONTROL not in t.index:
        return ""
    rnd = t.loc[CONTROL]
    others = t.drop(index=CONTROL)
    below = [m for m in others.index if (others.loc[m] < rnd).all()]
    above = {f: [m for m in others.index if others.loc[m, f] > rnd[f]] for f in t.columns}
    text = [f"Below the random control at every step: {', '.join(below) or 'no method'}."]
    steps = [f"k = {100 * f:g} % ({', '.join(ms)})" for f, ms in above.items() if ms]
    if steps:
        text.append("Retrained without these methods' top pixels, the network is *more* accurate than "
                    "without a random share at " + "; ".join(steps) + ". What is left, or the outline of "
                    "what was taken, still carries the class there.")
    return " ".join(text)


def known_truth_ranks(ranks: pd.DataFrame, metric: str) -> str:
    """A generated sentence: where the object's own mask and the random map rank under each
    operator (the known truth should rank near the top, the random map near the bottom)."""
    lines = []
    for model, g in ranks.groupby("model", sort=False):
        n = g.method.nunique()
        parts = []
        for who in (CEILING, CONTROL):
            r = g[g.method == who].set_index("operator")["rank"]
            if len(r):
                parts.append(f"the {'object mask' if who == CEILING else 'random map'} ranks "
                             + ", ".join(f"{v:.0f} ({op})" for op, v in r.items()))
        if parts:
            lines.append(f"- **{model}**, by {metric}, of {n} maps: " + "; ".join(parts) + ".")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def roar_curves(roar, control: str = "random"):
    """Accuracy of the retrained network against the share of pixels removed, one line per method
    (the random control dashed), from ``scripts/roar.py``'s table."""
    import pandas as pd
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    base = roar[roar.fraction == 0]
    for m, g in roar[roar.fraction > 0].groupby("method", sort=False):
        g = pd.concat([base, g]).sort_values("fraction")
        ax.plot(100 * g.fraction, 100 * g.accuracy, marker="o", ms=3, ls="--" if m == control else "-",
                color="grey" if m == control else None, label=m.replace("_", " "))
    ax.set_xlabel("top k % of pixels removed (each method's own), retrained")
    ax.set_ylabel("test accuracy, %")
    ax.set_ylim(0, 102)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def sensitivity_n_curves(rows, controls=("random", "constant", "edge")):
    """Mean sensitivity-n correlation against n (share of the features), one panel per model."""
    models = list(dict.fromkeys(rows.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        g = rows[rows.model == model].groupby(["method", "share"], sort=False).correlation.mean().reset_index()
        for m, h in g.groupby("method", sort=False):
            ctrl = m in controls
            ax.plot(100 * h.share, h.correlation, marker="o", ms=2.5, ls="--" if ctrl else "-",
                    color="grey" if ctrl else None, lw=1.0 if ctrl else 1.4, label=m.replace("_", " "))
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("n, % of the features removed")
        ax.set_title(model, fontsize=8)
    axes[0, 0].set_ylabel("correlation (sum of attributions, output change)")
    axes[0, -1].legend(fontsize=6, ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def removal_row(image: torch.Tensor, region: torch.Tensor, removed: dict, cell: float = 1.5):
    """One image, the removed region, and the image after each operator (``{name: (1, C, H, W)}``)."""
    n = 2 + len(removed)
    fig, axes = plt.subplots(1, n, figsize=(cell * n, cell + 0.3))
    axes[0].imshow(plots.to_hwc(image))
    axes[0].set_title("image", fontsize=8)
    axes[1].imshow(region.cpu().numpy(), cmap="gray")
    axes[1].set_title("removed (white)", fontsize=8)
    for ax, (name, x) in zip(axes[2:], removed.items()):
        ax.imshow(plots.to_hwc(x[0]))
        ax.set_title(name.replace("_", " "), fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def wide_operator_scores(per_image: pd.DataFrame) -> pd.DataFrame:
    """The committed operator table (model, method, operator, image, deletion, insertion, impact)
    as one row per model, method and image, one column per "<score> (<operator>)" (the form
    :func:`xailib.carryover.section` compares)."""
    long = per_image.melt(id_vars=["model", "method", "operator", "image"], var_name="score")
    long["column"] = long["score"] + " (" + long["operator"].astype(str) + ")"
    wide = long.pivot_table(index=["model", "method", "image"], columns="column", values="value", sort=False)
    wide.columns.name = None
    return wide.reset_index()
