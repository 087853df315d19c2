"""Chapter 04's plumbing (adversarial patches and Impact Coverage, Lin et al. 2019, after Brown et
al. 2017): the explained attacks scored at the paper's area or at the patch's own, the pooled
table, and the claims against the paper's Table 2.

The patches (:mod:`xailib.patches`) and the scores (:mod:`xailib.metrics.impact`) are the library's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import plots, verdicts
from ..methods import METHODS
from ..metrics.impact import (PAPER_METHODS, RANDOM_CONTROLS, coverage, critical_region, impact_outcome,
                              segment_labels, selection_for)

CONTROLS = RANDOM_CONTROLS
REFERENCE = "(the patch)"      # the upper reference: the patch itself as a map
# The paper's Table 2 (ResNet-50 on ImageNet, in %), per patch scale
PAPER_T2 = pd.DataFrame(
    [[0.64, 9.70, 9.80, 3.53, 40.41, 41.32, 2.57, 36.00, 36.80, 13.90, 66.90, 68.00],
     [1.53, 9.90, 10.00, 3.33, 36.73, 37.54, 2.31, 35.00, 35.40, 19.24, 64.50, 65.80],
     [0.67, 8.70, 8.80, 3.08, 36.28, 36.62, 2.09, 39.20, 39.40, 20.02, 66.90, 67.80],
     [0.37, 10.50, 10.60, 3.04, 38.20, 38.78, 1.88, 39.00, 39.40, 19.09, 67.20, 67.90],
     [0.41, 10.80, 10.80, 2.87, 43.16, 43.61, 1.80, 42.80, 43.20, 17.29, 68.90, 69.70]],
    index=pd.Index([0.3, 0.4, 0.5, 0.6, 0.7], name="scale"),
    columns=pd.MultiIndex.from_product([["lime", "kernel_shap", "expected_gradients", "GSInquire"],
                                        ["I_cov", "I (printed)", "I_strict (printed)"]]))


@dataclass
class Attacks:
    """The explained attacks of every network, concatenated: the patched images, the patches'
    masks, the attack's target class, the patch's scale, the network each belongs to (an index
    into ``model_names``) and the clean test image each was made from."""

    images: torch.Tensor
    patch_masks: torch.Tensor
    targets: torch.Tensor
    scales: np.ndarray
    owner: np.ndarray
    clean: np.ndarray
    model_names: list
    _segments: dict = field(default_factory=dict, repr=False)

    def rows(self, model: str) -> np.ndarray:
        return np.flatnonzero(self.owner == self.model_names.index(model))

    def segments_for(self, rows, method: str, method_params: dict) -> torch.Tensor:
        """The superpixels the method cuts with (its ``n_segments``), of the images ``rows``."""
        own = METHODS[method].defaults if method in METHODS else {}
        n_seg = {**own, **method_params.get(method, {})}.get("n_segments", 50)
        if n_seg not in self._segments:
            self._segments[n_seg] = segment_labels(self.images, n_seg)
        return self._segments[n_seg][rows]


def outcomes(net, images, patch_masks, targets, smap, how: str, seg, fraction: float, matched: bool, removal,
             tau: float):
    """Per-image outcome columns of one map (B, H, W) of ``images`` and its critical regions;
    ``matched``: every region gets the area of its image's patch."""
    A = patch_masks
    if matched:
        c = torch.cat([critical_region(smap[i:i + 1], how, A[i].float().mean().item(),
                                       segments=None if seg is None else seg[i:i + 1])
                       for i in range(len(smap))])
    else:
        c = critical_region(smap, how, fraction, segments=seg)
    out = impact_outcome(net, images, c, targets, removal=removal, tau=tau)
    inter = (c & A).flatten(1).sum(1).double()
    return {"impact": out.impact.double().numpy(), "strict": out.decision_changed.double().numpy(),
            "coverage": coverage(c, A).numpy(),
            "on_patch": (inter / c.flatten(1).sum(1).clamp(min=1)).numpy(),
            "area": c.float().mean((1, 2)).numpy()}, c, out


def _evaluate_one(net, images, patch_masks, targets, smap, control: bool, how, seg, fraction, matched, removal, tau):
    """One (network, method)'s outcome columns (a control's: the mean over its random maps), its
    regions and outcome (None for a control); a task of :func:`evaluate`."""
    if control:
        cols = [outcomes(net, images, patch_masks, targets, m, how, seg, fraction, matched, removal, tau)[0]
                for m in smap]
        return {k: np.mean([c[k] for c in cols], 0) for k in cols[0]}, None
    cols, c, out = outcomes(net, images, patch_masks, targets, smap, how, seg, fraction, matched, removal, tau)
    return cols, (c, out)


def evaluate(attacks: Attacks, nets: dict, maps: dict, *, selection: str, fraction: float, removal, tau: float,
             method_params: dict, matched: bool = False, keep: bool = False, scheduler=None):
    """Per-image outcomes of every map in ``maps`` ({(model, method): (B, H, W)}, a control's a
    stack of random maps); ``matched=True`` gives every region the area of its image's patch. A
    control's row is the mean over its random maps. One task per (model, method), in this process
    or on the Dask cluster of ``scheduler`` (None: ``$XAILIB_SCHEDULER``, else here;
    :func:`xailib.map_store.run_tasks`). Returns (rows, {(model, method): (regions, outcome)} when
    ``keep``)."""
    from ..map_store import run_tasks
    calls, meta = [], []
    X, A, T = attacks.images, attacks.patch_masks, attacks.targets
    for (mname, meth), smap in maps.items():
        rows = attacks.rows(mname)
        how = CONTROLS.get(meth) or selection_for(meth, selection)
        seg = attacks.segments_for(rows, meth, method_params) if how == "segments" else None
        calls.append((nets[mname], X[rows], A[rows], T[rows], smap, meth in CONTROLS, how, seg, fraction, matched,
                      removal, tau))
        meta.append((mname, meth, rows, how))
    out_rows, kept = [], {}
    for (mname, meth, rows, how), (cols, regions) in zip(meta, run_tasks(_evaluate_one, calls, scheduler)):
        if keep and regions is not None:
            kept[mname, meth] = regions
        out_rows.append(pd.DataFrame({"model": mname, "method": meth, "scale": attacks.scales[rows], "image": rows,
                                      "clean": attacks.clean[rows], "selection": how, **cols,
                                      "patch_area": attacks.patch_masks[rows].float().mean((1, 2)).numpy()}))
    return pd.concat(out_rows, ignore_index=True), kept


def pooled_table(per_image: pd.DataFrame, order, n_boot: int, seed: int) -> pd.DataFrame:
    """I_cov, I and I_strict pooled over the scales, with intervals over clean images."""
    out = {}
    for mname, sub in per_image.groupby("model", sort=False):
        col = {}
        for m in order:
            r = sub[sub.method == m]
            cov = verdicts.paired(r.coverage.to_numpy(), clusters=r.clean.to_numpy(), n_boot=n_boot, seed=seed)
            row = {"n": len(r), "I_cov % [95 % CI]": f"{100 * cov.mean:.1f} [{100 * cov.low:.1f}, {100 * cov.high:.1f}]"}
            for c, label in (("impact", "I %"), ("strict", "I_strict %")):
                if m in CONTROLS:      # a share of random maps per image, not 0 / 1
                    row[label] = f"{100 * r[c].mean():.1f}"
                else:
                    p, lo, hi = verdicts.proportion_of(r[c].to_numpy(), r.clean.to_numpy())
                    row[label] = f"{100 * p:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
            row["on patch %"] = round(100 * r.on_patch.mean(), 1)
            col[PAPER_METHODS.get(m, m)] = row
        out[mname] = pd.DataFrame(col).T
    t = pd.concat(out, axis=1)
    t.index.name = "method"
    return t


def show_by_network(t: pd.DataFrame) -> None:
    """One table per network, so that no verdict's numbers sit off the page's right edge."""
    from IPython.display import Markdown, display
    for mname in t.columns.get_level_values(0).unique():
        display(Markdown(f"**{mname}**"))
        display(t[mname])


def paper_gap(tab: pd.DataFrame, a: str, b: str) -> float:
    """The paper's mean per-scale gap between two methods, in points."""
    return float((tab[a] - tab[b]).mean())


def patch_claims(per_image: pd.DataFrame, hit_table: pd.DataFrame, drawn_table: pd.DataFrame | None = None, *,
                 order, paper3, nulls, scales, removal, degenerate: dict, n_boot: int = 2000,
                 seed: int = 0) -> pd.DataFrame:
    """The chapter's claims: the paper's orderings in I_cov and I (Table 2), each method against
    the strongest null, the patch against a drawn object, and the attack against its scale.
    ``degenerate``: ``{(network, operator): why}`` (:func:`xailib.calibration.reasons`)."""
    paper_I = pd.DataFrame({m: PAPER_T2[m][["I (printed)", "I_strict (printed)"]].max(axis=1)
                            for m in PAPER_T2.columns.levels[0]})
    paper_cov = PAPER_T2.xs("I_cov", axis=1, level=1)
    claims = []
    for mname, sub in per_image.groupby("model", sort=False):
        units = sub[sub.method == order[0]].set_index("image").clean
        # the random controls' I: at 50 % or more the removal is degenerate and I-claims get no verdict
        ctl = sub[sub.method.isin(list(CONTROLS))].groupby("method").impact.mean().max()

        def cmp(col, a, b):
            w = sub.pivot(index="image", columns="method", values=col)
            return verdicts.paired(w[a], w[b], clusters=units.loc[w.index].to_numpy(), n_boot=n_boot, seed=seed)
        if len(paper3) == 3:
            for col, label, tab in (("coverage", "I_cov", paper_cov), ("impact", "I", paper_I)):
                for other in ("kernel_shap", "expected_gradients"):
                    g = paper_gap(tab, other, "lime")
                    claims.append(verdicts.Claim(f"LIME below {PAPER_METHODS[other]} in {label}", mname, cmp(col, other, "lime"),
                                                 paper_gap=g / 100, scale=100, unit=" pts", paper=f"Table 2: by {g:.1f} pts",
                                                 control=ctl if col == "impact" else None,
                                                 degenerate=degenerate.get((mname, removal), "") if col == "impact" else ""))
                g = paper_gap(tab, "kernel_shap", "expected_gradients")
                claims.append(verdicts.Claim(f"SHAP and Expected Gradients alike in {label} (within 5 pts)", mname,
                                             cmp(col, "kernel_shap", "expected_gradients"), kind="alike", margin=0.05,
                                             scale=100, unit=" pts", paper=f"Table 2: {g:+.1f} pts",
                                             control=ctl if col == "impact" else None,
                                             degenerate=degenerate.get((mname, removal), "") if col == "impact" else ""))
            claims.append(verdicts.Claim("Expected Gradients covers the patch better than SHAP", mname,
                                         cmp("coverage", "expected_gradients", "kernel_shap"), scale=100, unit=" pts",
                                         paper=f"Fig. 4 text (Table 2: {paper_gap(paper_cov, 'expected_gradients', 'kernel_shap'):+.1f} pts)"))
        means = sub.groupby("method")[["coverage", "impact"]].mean()
        for col, label in (("coverage", "I_cov"), ("impact", "I")):
            dead = degenerate.get((mname, removal), "") if col == "impact" else ""
            for m in [m for m in order if m not in CONTROLS and m not in nulls and m != REFERENCE]:
                # the strongest null: the random control cut like the method, or a map made without the network
                ctrl = next(k for k, v in CONTROLS.items() if v == sub[sub.method == m].selection.iloc[0])
                pool = {k: means.loc[k, col] for k in [ctrl, *nulls] if k in means.index}
                null = max(pool, key=pool.get)
                why = dead
                if not why and col == "coverage" and REFERENCE in means.index and means.loc[REFERENCE, col] <= pool[null]:
                    why = (f"the patch itself ({100 * means.loc[REFERENCE, col]:.1f} %) does not cover more than "
                           f"{null} ({100 * pool[null]:.1f} %): the score cannot tell the patch from no explanation")
                claims.append(verdicts.Claim(f"{m} beats the strongest null in {label}", mname,
                                             cmp(col, m, null), scale=100, unit=" pts", paper="(no control reported)",
                                             setting=f"against {null.strip('()').replace('_', ' ')}",
                                             group=f"beats the strongest null in {label}",
                                             control=ctl if col == "impact" else None, degenerate=why))
        h = hit_table[hit_table.model == mname]
        if drawn_table is not None and len(drawn_table[drawn_table.model == mname]) == len(h):
            d = drawn_table[drawn_table.model == mname]
            for sc in [str(s) for s in scales if str(s) in h and str(s) in d]:   # scale by scale: same images
                claims.append(verdicts.Claim(f"the patch succeeds more often than a drawn target-class object at scale {sc}", mname,
                                             verdicts.paired(h[sc].to_numpy(), d[sc].to_numpy()),
                                             scale=100, unit=" pts", paper="— (the book's control: adversarial, not a drawing)",
                                             setting="the same images, places and sizes",
                                             group="the patch beats a drawn object"))
        lo_s, hi_s = min(scales), max(scales)
        claims.append(verdicts.Claim(f"the attack succeeds more often at scale {hi_s} than at {lo_s}", mname,
                                     verdicts.paired(h[str(hi_s)].to_numpy(), h[str(lo_s)].to_numpy()), scale=100,
                                     unit=" pts", paper="Brown et al. (not reported by Lin et al.)"))
    return verdicts.claims_table(claims)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def patch_regions(images, patch_masks, regions: dict, row_titles=None, cell: float = 1.45):
    """The paper's Fig. 4: rows are patched images; columns the image, then each method's
    critical region (bright; the rest dimmed) with the patch's outline in yellow."""
    def outline(r):
        return patch_masks[r].cpu().numpy().astype(float)

    def draw(ax, r, name):
        img, keep = plots.to_hwc(images[r]), regions[name][r].cpu().numpy()[..., None]
        ax.imshow(np.where(keep, img, 0.25 * img), interpolation="nearest")
        ax.contour(outline(r), [0.5], colors="yellow", linewidths=0.7)
    return plots.image_grid(images, list(regions), draw, row_titles, cell, first_title="patched image",
                       label_size=7, draw_first=lambda ax, r: ax.contour(
                           outline(r), [0.5], colors="yellow", linewidths=0.7))


def wide_scores(per_image: pd.DataFrame) -> pd.DataFrame:
    """The committed per-image table as the form :func:`xailib.carryover.section` compares: one
    row per model, method and attacked image (each scale's images apart), one column per score
    (I_cov, I, I_strict, and the share of the critical region that lies on the patch)."""
    wide = per_image.assign(image=per_image["scale"].astype(str) + "/" + per_image["image"].astype(str))
    wide = wide.rename(columns={"coverage": "I_cov", "impact": "I", "strict": "I_strict",
                                "on_patch": "region on the patch"})
    return wide[["model", "method", "image", "I_cov", "I", "I_strict", "region on the patch"]]
