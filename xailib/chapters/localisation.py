"""The localisation chapter's work (the thesis): box and mask scores per image, Choe et al.'s
MaxBoxAcc with a held-out threshold, and the thesis's claims judged by the shared rule.

The scores themselves are in :mod:`xailib.metrics.localisation` (and ``roughness`` in
:mod:`xailib.metrics.complexity`); this module runs them over a chapter's methods and networks
and turns the per-image rows into tables and claims, so the notebook holds none of it.

Two reference rows frame every table: the ``constant`` map, whose box is the whole image at any
threshold (Dabkowski and Gal's "max box" baseline), and the ``ground-truth mask`` itself, the
ceiling (its box is the object's box; its PxAP is 1). The ``random`` map is the floor.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .. import plots, verdicts
from ..metrics import localisation as loc
from ..metrics import score
from ..metrics import similarity as sim
from ..methods import METHODS
from ..methods.controls import NULLS, strongest_null

CEILING = "ground-truth mask"
DELTAS = (0.3, 0.5, 0.7)           # Choe et al.'s IoU levels for MaxBoxAccV2
BOX_RULES = ("largest", "all")     # the per-image box rules of the tables: CAM's and Dabkowski and Gal's
GRADIENT_FAMILIES = ("gradient", "backprop")
HIGH = 0.8                         # "highly correlated": a Spearman correlation above this
STABLE = 0.9                       # two runs whose maps agree below this in rank order "vary"
PLANNING_EFFECT = 0.1              # a distance from the reference to plan for, when not resolved
DL_IG = "deeplift~integrated_gradients (Pearson)"
LIME_AGAIN = "lime~lime seed+1 (Spearman)"


def gradient_based(methods) -> list[str]:
    """The methods of ``methods`` that backpropagate a gradient (Ancona et al.'s "gradient-based")."""
    return [m for m in methods if m in METHODS and METHODS[m].family in GRADIENT_FAMILIES]


def cam_index(threshold: float, thresholds=loc.THRESHOLDS) -> int:
    """Where ``threshold`` sits on the grid of thresholds (it must be on it)."""
    hit = np.flatnonzero(np.isclose(np.asarray(thresholds, float), threshold))
    if not len(hit):
        from ..errors import ParameterError
        raise ParameterError(f"threshold={threshold} is not on the grid of thresholds (steps of 0.01)")
    return int(hit[0])


def curves(maps: dict, boxes, thresholds=loc.THRESHOLDS) -> dict:
    """{(method, component): (B, T) IoUs over the thresholds} for the maps of one network."""
    return {(m, c): loc.box_ious(s, boxes, thresholds, c) for m, s in maps.items() for c in loc.COMPONENTS}


def per_image(model: str, maps: dict, images, scored: dict, cam_threshold: float = loc.CAM_THRESHOLD,
              seconds: dict | None = None) -> pd.DataFrame:
    """One row per (method, image) of the scored split: the box IoU at ``cam_threshold`` under
    both component rules, the PxAP, the roughness and (where measured) the seconds it took."""
    k = cam_index(cam_threshold)
    rows = []
    for method, s in maps.items():
        x = images.images
        cols = {f"iou_{c}": scored[method, c][:, k] for c in BOX_RULES}
        cols["pxap"] = score(None, x, None, s, "pxap", masks=images.masks).numpy()
        cols["roughness"] = score(None, x, None, s, "roughness").numpy()
        if seconds is not None and method in seconds:
            cols["seconds"] = np.asarray(seconds[method], float)
        rows.append(pd.DataFrame({"model": model, "method": method, "image": np.arange(len(s)), **cols}))
    return pd.concat(rows, ignore_index=True)


def accuracy_table(rows: pd.DataFrame, methods, iou: float = 0.5) -> pd.DataFrame:
    """Box accuracy (IoU >= ``iou``) per model and method under each component rule, with Wilson
    intervals, and the mean PxAP with its bootstrap interval."""
    out = []
    for (model, method), g in rows.groupby(["model", "method"], sort=False):
        r = {"model": model, "method": method}
        for c in BOX_RULES:
            hits = (g[f"iou_{c}"].to_numpy() >= iou).astype(float)
            p, lo, hi = verdicts.proportion_of(hits)
            r[f"box accuracy, {c} [95 % CI]"] = f"{100 * p:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]"
        c = verdicts.paired(g["pxap"].to_numpy())
        r["PxAP [95 % CI]"] = f"{c.mean:.3f} [{c.low:.3f}, {c.high:.3f}]"
        out.append(r)
    t = pd.DataFrame(out)
    order = {m: i for i, m in enumerate(methods)}
    return t.sort_values(["model", "method"], key=lambda s: s.map(order) if s.name == "method" else s)


def threshold_curve(curves_by_model: dict, component: str = "largest", iou: float = 0.5,
                    thresholds=loc.THRESHOLDS) -> pd.DataFrame:
    """Box accuracy at each threshold: rows (model, method), columns the thresholds."""
    rows = {(model, m): (c >= iou).mean(0) for model, cs in curves_by_model.items()
            for (m, comp), c in cs.items() if comp == component}
    return pd.DataFrame(rows, index=np.asarray(thresholds, float)).T


def max_box_acc(held: dict, scored: dict, methods, deltas=DELTAS) -> pd.DataFrame:
    """Per (model, method, component, IoU level): Choe et al.'s MaxBoxAcc (the accuracy at the
    best threshold on the scored images, and that threshold) and the book's held-out variant (the
    threshold chosen on the held-out images, its accuracy on the scored images with a Wilson
    interval). Their MaxBoxAcc is the ``"largest"`` rows at IoU 0.5, their MaxBoxAccV2 the mean of
    the ``"each"`` rows over the IoU levels (:func:`v2`)."""
    rows = []
    for model in scored:
        for m in methods:
            for c in loc.COMPONENTS:
                for d in deltas:
                    best_t, best = loc.max_box_acc(scored[model][m, c], d)
                    t, hits = loc.heldout_box_acc(held[model][m, c], scored[model][m, c], d)
                    p, lo, hi = verdicts.proportion_of(hits)
                    rows.append({"model": model, "method": m, "component": c, "IoU": d,
                                 "MaxBoxAcc": best, "MaxBoxAcc threshold": best_t,
                                 "held-out threshold": t, "held-out accuracy": p, "low": lo, "high": hi})
    return pd.DataFrame(rows)


def v2(table: pd.DataFrame, column: str = "MaxBoxAcc") -> pd.Series:
    """MaxBoxAccV2 from :func:`max_box_acc`'s table: the mean of ``column`` over the IoU levels,
    every component boxed (``"each"``), per (model, method)."""
    each = table[table.component == "each"]
    if each.empty:
        from ..errors import ParameterError
        raise ParameterError("the table has no row boxing each component (component 'each')")
    return each.groupby(["model", "method"], sort=False)[column].mean()


def correlations(a, b, kind: str = "spearman") -> np.ndarray:
    """Per-image correlation of the signed maps ``a[i]`` and ``b[i]``: Spearman's rank correlation
    (scipy, :mod:`xailib.metrics.similarity`) or Pearson's (a flat map correlates 0)."""
    if kind == "spearman":
        return np.asarray(sim.similarities(a, b, ("spearman",))["spearman"], dtype=float)
    x = a.detach().double().flatten(1).cpu().numpy()
    y = b.detach().double().flatten(1).cpu().numpy()
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    return np.where(den > 0, (x * y).sum(1) / np.where(den > 0, den, 1), 0.0)




def claims(rows: pd.DataFrame, pairs: pd.DataFrame, depth: dict, methods, *, high: float = HIGH,
           stable: float = STABLE, n_boot: int = 2000, seed: int = 0) -> list:
    """The thesis's claims and the localisation claims, one per model (and method where it applies).

    ``rows``: :func:`per_image` rows of the scored images (with ``seconds``); ``pairs``: per-image
    correlations with columns model, image, :data:`DL_IG` and :data:`LIME_AGAIN` where computed;
    ``depth``: weight layers per model. Cost ("LIME costs more") is reported in the chapter's cost
    table, not tested here: a timing is a fact of the machine, and would only inflate the Holm
    family of the localisation claims."""
    out = []
    by = {k: g.sort_values("image") for k, g in rows.groupby(["model", "method"], sort=False)}
    models = list(dict.fromkeys(rows.model))
    for model in models:
        hit = lambda m: (by[model, m]["iou_largest"].to_numpy() >= 0.5).astype(float)   # noqa: E731
        nulls = {n: hit(n).mean() for n in NULLS if (model, n) in by}
        if nulls:
            # at CAM's 20 % threshold a random map boxes the whole image and never hits, so beating
            # it means "any hit"; the strongest null (the edge detector, often) is the bar
            null = strongest_null(nulls, higher_is_better=True)
            for m in methods:
                if m in NULLS or (model, m) not in by:
                    continue
                out.append(verdicts.Claim(
                    f"{m}: localises the object better than the strongest null", model,
                    verdicts.paired(hit(m), hit(null), n_boot=n_boot, seed=seed), kind="better",
                    effect=0.2, paper="— (the thesis's metric; it reports no result)",
                    setting=f"box accuracy, CAM's rule (largest component, 20 %, IoU >= 0.5), against the {null} map",
                    scale=100, unit=" points", group="localises better than the strongest null"))
        p = pairs[pairs.model == model].sort_values("image")
        if DL_IG in p and p[DL_IG].notna().any():
            out.append(verdicts.Claim(
                "DeepLIFT and integrated gradients give highly correlated maps", model,
                verdicts.paired(p[DL_IG].to_numpy(), high, n_boot=n_boot, seed=seed),
                kind="above", effect=PLANNING_EFFECT,
                paper="holds (Ancona et al., as the thesis reports: 'very high correlation')",
                setting=f"Pearson correlation above {high:g}"))
        if LIME_AGAIN in p and p[LIME_AGAIN].notna().any():
            out.append(verdicts.Claim(
                "LIME's map varies from run to run", model,
                verdicts.paired(p[LIME_AGAIN].to_numpy(), stable, n_boot=n_boot, seed=seed),
                kind="below", effect=PLANNING_EFFECT, paper="holds (the thesis, after Ribeiro et al.)",
                setting=f"Spearman (signed) of two seeds below {stable:g}"))
    if len(models) >= 2:
        deep, shallow = max(models, key=depth.get), min(models, key=depth.get)
        if depth[deep] > depth[shallow]:
            for m in gradient_based(methods):
                if (deep, m) in by and (shallow, m) in by:
                    out.append(verdicts.Claim(
                        f"{m}: noisier maps on the deeper network", f"{deep} vs {shallow}",
                        verdicts.paired(by[deep, m]["roughness"].to_numpy(), by[shallow, m]["roughness"].to_numpy(),
                                        n_boot=n_boot, seed=seed),
                        kind="better", effect=0.01, paper="holds (Ancona et al., as the thesis reports)",
                        setting=f"roughness, {depth[deep]} against {depth[shallow]} weight layers",
                        group="noisier on the deeper network"))
    return out


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def _rect(ax, box, colour, style="-"):
    x0, y0, x1, y1 = [float(v) for v in box]
    if x1 > x0 and y1 > y0:
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.2, ls=style))


def wsol_boxes(images, maps: dict, gt_boxes, threshold: float, row_titles=None, cell: float = 1.3):
    """Rows: images; columns: methods. Each panel: the normalised map (positive part, min-max),
    the region at or above ``threshold`` outlined, the box around its largest connected
    component (solid), around all of it (dashed), and the ground-truth box (white)."""
    names = list(maps)
    norm = {m: loc.normalise(maps[m]).numpy() for m in names}
    boxes = {(m, c): loc.boxes(maps[m], threshold, c) for m in names for c in ("largest", "all")}

    def draw(ax, r, m):
        ax.imshow(norm[m][r], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.contour(norm[m][r] > threshold, [0.5], colors="cyan", linewidths=0.6)
        _rect(ax, boxes[m, "largest"][r], "lime")
        _rect(ax, boxes[m, "all"][r], "orange", "--")
        for b in torch.as_tensor(gt_boxes[r]).reshape(-1, 4).tolist():
            _rect(ax, b, "white", ":")
    return plots.image_grid(images, names, draw, row_titles, cell, label_size=7)


def threshold_curves(table, title: str = "", highlight=("random", "constant", "ground-truth mask")):
    """Box accuracy (rows of ``table``: methods; columns: thresholds) against the threshold, one
    line per method; the references dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for m, row in table.iterrows():
        ref = m in highlight
        ax.plot(table.columns, 100 * row.to_numpy(), ls="--" if ref else "-", lw=1.0 if ref else 1.4,
                label=str(m).replace("_", " "), color="grey" if m in ("random", "constant") else None)
    ax.axvline(0.2, color="k", lw=0.6, ls=":")
    ax.set_xlabel("threshold (share of the map's maximum)")
    ax.set_ylabel("box accuracy (IoU >= 0.5), %")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2, frameon=False, loc="upper right")
    fig.tight_layout()
    return fig
