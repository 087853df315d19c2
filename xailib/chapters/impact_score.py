"""Chapter 03's plumbing (Impact Score, Lin et al. 2019): the grid of choices the paper leaves open,
each cell against a matched random control, the paired bootstrap of its tables, its Table 1 and
its claims against the paper's.

The scores themselves are the library's (:mod:`xailib.metrics.impact`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import inference, plots, verdicts
from ..errors import check_choice, check_fraction, check_positive_int
from ..metrics.impact import (PAPER_METHODS, RANDOM_CONTROLS, REMOVALS, SEGMENT_METHODS, TAU, _probs,
                              critical_region, impact_outcome, random_maps, segment_labels, selection_for)
from ..metrics.removal import check_removal


# The grid of choices

CONTROL = "(random)"


def grid(model: nn.Module, images: torch.Tensor, targets, maps: dict, *, removals=REMOVALS,
         fractions=(0.05, 0.1, 0.2), granularities=("own", "pixels", "segments"), segments=None,
         n_random: int = 8, tau: float = TAU, seed: int = 0, blur_sigma: float | None = None,
         batch_size: int = 256):
    """Impact outcomes of every map in ``maps`` ({method: (B, H, W)}) and of ``n_random`` matched
    random maps per image, over the grid removal x area x granularity, as a per-image table.

    Granularity ``"own"`` cuts each method's map as the method itself works (superpixels for LIME
    and KernelSHAP, pixels otherwise); ``"pixels"`` and ``"segments"`` cut every map the same way.
    The control rows (method ``"(random)"``) hold, per image, the *share* of the random maps that
    are impactful (a number in [0, 1]), once per actual selection (pixels, segments); column
    ``control`` of every row is the matched control of that image under the same removal, area and
    selection, so ``impact - control`` is a method's gap over a random map of its own kind.
    Columns: method, removal, fraction, granularity, selection, image, impact, strict, area,
    control, control_strict.
    """
    for r in removals:
        check_removal(r)
    for g_ in granularities:
        check_choice("granularities", g_, ("own", "pixels", "segments"))
    for f in fractions:
        check_fraction("fractions", f)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    with torch.no_grad():
        p = _probs(model, x, batch_size)
    if segments is None and ("segments" in granularities or any(m in SEGMENT_METHODS for m in maps)):
        segments = segment_labels(images)
    noise = random_maps(len(x), tuple(x.shape[-2:]), n_random, seed)
    selections = {g_ for g_ in granularities if g_ != "own"}
    if "own" in granularities:
        selections |= {selection_for(m) for m in maps}
    rows = []

    def outcome(regions, rem):
        return impact_outcome(model, x, regions, targets, rem, tau, blur_sigma, batch_size, probs=p)

    for rem in removals:
        for frac in fractions:
            for sel in sorted(selections):       # one control per kind of cut in use
                hit, strict, area = 0.0, 0.0, 0.0
                for r in range(n_random):
                    c = critical_region(noise[r], sel, frac, segments=segments if sel == "segments" else None)
                    o = outcome(c, rem)
                    hit = hit + o.impact.double() / n_random
                    strict = strict + o.decision_changed.double() / n_random
                    area = area + c.double().mean((1, 2)).cpu() / n_random
                rows.append(pd.DataFrame({"method": CONTROL, "removal": str(rem), "fraction": frac,
                                          "granularity": sel, "selection": sel, "image": np.arange(len(x)),
                                          "impact": hit.numpy(), "strict": strict.numpy(), "area": area.numpy()}))
            for meth, smap in maps.items():
                done = {}
                for gran in granularities:
                    sel = selection_for(meth) if gran == "own" else gran
                    if sel not in done:    # "own" is "pixels" or "segments": computed once
                        c = critical_region(smap, sel, frac, segments=segments if sel == "segments" else None)
                        done[sel] = (c, outcome(c, rem))
                    c, o = done[sel]
                    rows.append(pd.DataFrame({
                        "method": meth, "removal": str(rem), "fraction": frac, "granularity": gran,
                        "selection": sel, "image": np.arange(len(x)),
                        "impact": o.impact.double().numpy(), "strict": o.decision_changed.double().numpy(),
                        "area": c.float().mean((1, 2)).cpu().numpy()}))
    out = pd.concat(rows, ignore_index=True)
    ctrl = out[out.method == CONTROL][["removal", "fraction", "selection", "image", "impact", "strict"]]
    ctrl = ctrl.rename(columns={"impact": "control", "strict": "control_strict"})
    return out.merge(ctrl, on=["removal", "fraction", "selection", "image"], how="left")


def grids(nets: dict, images: torch.Tensor, targets, maps: dict, *, removals=REMOVALS, scheduler=None,
          progress: bool = True, **kw) -> pd.DataFrame:
    """:func:`grid` of every network (``nets`` {name: network}, ``maps`` {name: {method: (B, H, W)}})
    with a column ``model``, one task per (network, removal): in this process, or on the Dask
    cluster of ``scheduler`` (None: ``$XAILIB_SCHEDULER``, else here;
    :func:`xailib.map_store.run_tasks`). The tasks are independent and their rows are those of one
    call per network (the matched controls are drawn from ``seed`` alike in every task)."""
    from ..map_store import run_tasks
    calls = [(nets[name], images, targets, maps[name], [rem], kw) for name in nets for rem in removals]
    parts = run_tasks(_grid_task, calls, scheduler, desc="Impact grid" if progress else None)
    per = len(removals)
    return pd.concat([pd.concat(parts[i * per:(i + 1) * per], ignore_index=True).assign(model=name)
                      for i, name in enumerate(nets)], ignore_index=True)


def _grid_task(net, images, targets, maps, removals, kw):
    return grid(net, images, targets, maps, removals=removals, **kw)


def grid_wide(table):
    """The per-image grid of :func:`grid` in its compact form, for publishing: one row per
    (model, removal, fraction, selection, image), one column of 0 / 1 impacts per method and the
    matched control's share in column ``CONTROL``. "own" rows repeat a "pixels" or "segments"
    row, so they are dropped here and restored by :func:`grid_long`."""
    t = table[table.granularity != "own"]
    keys = [k for k in ("model", "removal", "fraction", "selection", "image") if k in t]
    return t.pivot_table(index=keys, columns="method", values="impact", aggfunc="first").reset_index()


def grid_long(wide):
    """Back from :func:`grid_wide` to one row per (model, method, removal, fraction,
    granularity, image) with ``impact`` and its matched ``control``; "own" rows included."""
    keys = [k for k in ("model", "removal", "fraction", "selection", "image") if k in wide]
    methods = [c for c in wide.columns if c not in keys and c != CONTROL]
    long = wide.melt(id_vars=keys + [CONTROL], value_vars=methods, var_name="method", value_name="impact")
    long = long.dropna(subset=["impact"]).rename(columns={CONTROL: "control"})
    cut = long.assign(granularity=long.selection)
    own = long[[selection_for(m) == s for m, s in zip(long.method, long.selection)]].assign(granularity="own")
    return pd.concat([cut, own], ignore_index=True)


# --------------------------------------------------------------------------------------------
# Uncertainty: paired bootstrap over images
# --------------------------------------------------------------------------------------------

def bootstrap(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Paired percentile bootstrap of column means: ``values`` (n_images, k) -> (mean, low, high,
    replicates (n_boot, k)). The same resampled images serve every column, so differences and
    rankings between columns can be read off the replicates."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    check_positive_int("n_boot", n_boot)
    check_fraction("level", level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    reps = v[idx].mean(1)
    a = (1 - level) / 2
    return v.mean(0), np.quantile(reps, a, axis=0), np.quantile(reps, 1 - a, axis=0), reps


# --------------------------------------------------------------------------------------------
# The chapter's tables and claims
# --------------------------------------------------------------------------------------------

# The paper's Table 1 (ResNet-50 on ImageNet, in %)
PAPER_T1 = pd.DataFrame({"I": [38.05, 44.15, 51.22, 76.10], "I_strict": [35.12, 40.24, 47.80, 50.73]},
                        index=["lime", "kernel_shap", "expected_gradients", "GSInquire"])
# the paper's three orderings (Table 1: A above B in I) and its gaps, in points
PAIRS = [("kernel_shap", "lime", 44.15 - 38.05), ("expected_gradients", "kernel_shap", 51.22 - 44.15),
         ("expected_gradients", "lime", 51.22 - 38.05)]
RATIO = {"lime": 35.12 / 38.05, "kernel_shap": 40.24 / 44.15, "expected_gradients": 47.80 / 51.22}
REFERENCE = "object mask"      # the upper reference: the object's own pixels as a map
CONTROLS = RANDOM_CONTROLS
CUT_LABELS = {"own": "each method's own cut", "pixels": "all cut into pixels", "segments": "all cut into superpixels"}
BLACK_BASELINE = {"integrated_gradients", "deeplift"}     # their baseline = what zero removal inserts


def cell_label(removal, fraction) -> str:
    """A cell of the grid as the tables name it: the removal and the area."""
    return f"{removal} {100 * fraction:g} %"


def pct(k, n) -> str:
    """``k`` of ``n`` in % with its Wilson interval."""
    p, lo, hi = verdicts.proportion(int(k), int(n))
    return f"{100 * p:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def table_one(per_image: pd.DataFrame, order, nulls, own: str, n_boot: int, seed: int) -> pd.DataFrame:
    """The paper's Table 1 beside this run's: I and I_strict with intervals, each method's gap over
    its matched random control, the object mask (the upper reference), the random controls and
    the nulls; ``own``: the granularity of the headline setting."""
    out = {}
    for mname, sub in per_image.groupby("model", sort=False):
        col = {}
        for m in order + [m for m in nulls if m in set(sub.method)]:
            r = sub[(sub.method == m) & (sub.granularity == own)]
            gap = verdicts.paired(r.impact, r.control, n_boot=n_boot, seed=seed)
            col[m] = {"I % [95 % CI]": pct(r.impact.sum(), len(r)), "I_strict %": pct(r.strict.sum(), len(r)),
                      "gap over random (pts)": f"{100 * gap.mean:+.1f} [{100 * gap.low:+.1f}, {100 * gap.high:+.1f}]",
                      "area %": round(100 * r.area.mean(), 1)}
        ref = sub[(sub.method == REFERENCE) & (sub.granularity == own)]
        if len(ref):                      # the upper reference: the object's pixels removed
            gap = verdicts.paired(ref.impact, ref.control, n_boot=n_boot, seed=seed)
            col[f"({REFERENCE})"] = {"I % [95 % CI]": pct(ref.impact.sum(), len(ref)),
                                     "I_strict %": pct(ref.strict.sum(), len(ref)),
                                     "gap over random (pts)": f"{100 * gap.mean:+.1f} [{100 * gap.low:+.1f}, {100 * gap.high:+.1f}]",
                                     "area %": round(100 * ref.area.mean(), 1)}
        for label, sel in CONTROLS.items():
            r = sub[(sub.method == CONTROL) & (sub.selection == sel)].drop_duplicates("image")
            ci = verdicts.paired(r.impact, n_boot=n_boot, seed=seed)
            col[label] = {"I % [95 % CI]": f"{100 * ci.mean:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]",
                          "I_strict %": f"{100 * r.strict.mean():.1f}", "gap over random (pts)": "—",
                          "area %": round(100 * r.area.mean(), 1)}
        out[mname] = pd.DataFrame(col).T
    t = pd.concat(out, axis=1)
    paper = PAPER_T1.rename(columns=lambda c: ("paper (ResNet-50, ImageNet)", c))
    paper.columns = pd.MultiIndex.from_tuples(paper.columns)
    t = paper.join(t, how="outer").reindex([*order[:3], "GSInquire", *order[3:], f"({REFERENCE})", *CONTROLS, *nulls])
    t = t.dropna(how="all")
    t.index = [PAPER_METHODS.get(m, m) + (" (no public implementation)" if m == "GSInquire" else "") for m in t.index]
    t.index.name = "method"
    return t.astype(object).where(t.notna(), "—")


def region_and_outcome(net, smap, images, targets, segments, method: str, selection: str, fraction: float,
                       removal, tau: float):
    """One method's critical regions on ``images`` and what removing them did (for the figures)."""
    sel = selection_for(method, selection)
    c = critical_region(smap, sel, fraction, segments=segments if sel == "segments" else None)
    return c, impact_outcome(net, images, c, targets, removal=removal, tau=tau)


def control_rate(g: pd.DataFrame, model: str, removal, fraction, selection) -> float:
    """The share of impactful random maps of one cut in one cell of the grid."""
    r = g[(g.model == model) & (g.method == CONTROL) & (g.removal == removal) & (g.fraction == fraction)
          & (g.selection == selection)]
    return r.drop_duplicates("image").impact.mean()


def is_degenerate(g: pd.DataFrame, model: str, removal, fraction) -> bool:
    """A cell where a random map of either cut is impactful half of the time or more."""
    return any(verdicts.degenerate(control_rate(g, model, removal, fraction, s)) for s in ("pixels", "segments"))


def grid_claims(long: pd.DataFrame, order, seed: int = 0):
    """Every method against its matched control, and the paper's orderings, in every grid cell. A
    comparison on the same data under two cut labels (a method's own cut is pixels or superpixels)
    is one claim, judged once, so Holm's family does not count it twice. Returns (the claims
    table, one row per (model, cut, claim, cell) with its verdict and gap)."""
    claims, made, rows = [], {}, []

    def once(key, make):
        if key not in made:
            made[key] = len(claims)
            claims.append(make())
        return made[key]
    for (mname, rem, f), sub in long.groupby(["model", "removal", "fraction"], sort=False):
        ctl = sub.groupby("selection").control.mean().max()      # >= 50 %: degenerate, no verdict
        for cut, label in CUT_LABELS.items():
            s2 = sub[sub.granularity == cut]
            w = s2.pivot(index="image", columns="method", values="impact")
            wc = s2.pivot(index="image", columns="method", values="control")
            where = f"{cell_label(rem, f)}, {label}"
            cut_of = lambda m: selection_for(m) if cut == "own" else cut    # noqa: E731
            for m in [m for m in order if m in w]:
                i = once((mname, rem, f, m, cut_of(m)), lambda: verdicts.Claim(
                    f"{m} beats its matched random control", mname, verdicts.paired(w[m], wc[m], n_boot=1000, seed=seed),
                    scale=100, unit=" pts", setting=where, group=f"beats its matched random control ({label})", control=ctl))
                rows.append(((mname, cut, m, cell_label(rem, f)), i))
            for a, b, gap in PAIRS:
                if a in w and b in w:
                    i = once((mname, rem, f, a, b, cut_of(a), cut_of(b)), lambda: verdicts.Claim(
                        f"{PAPER_METHODS[a]} above {PAPER_METHODS[b]} in I", mname,
                        verdicts.paired(w[a], w[b], n_boot=1000, seed=seed), paper_gap=gap / 100,
                        scale=100, unit=" pts", setting=where, control=ctl))
                    rows.append(((mname, cut, f"{PAPER_METHODS[a]} above {PAPER_METHODS[b]}", cell_label(rem, f)), i))
    table = verdicts.claims_table(claims)
    key = pd.MultiIndex.from_tuples([k for k, _ in rows], names=["model", "cut", "claim", "cell"])
    idx = [i for _, i in rows]
    return table, pd.DataFrame({"verdict": table.verdict.to_numpy()[idx],
                                "gap": [claims[i].comparison.mean for i in idx]}, index=key).sort_index()


def cuts(own: str) -> dict:
    """The cuts the headline claims are judged under, and their labels."""
    return {own: "own cut", "pixels": "all cut into pixels", "segments": "all cut into superpixels"}


def impact_claims(per_image: pd.DataFrame, order, own: str, selection: str, nulls, removal,
                  degenerate: dict) -> pd.DataFrame:
    """The chapter's claims at its headline setting: the paper's orderings under each cut, each
    method against the strongest null, and whether an impactful removal mostly flips the
    decision. ``degenerate``: ``{(network, operator): why}`` (:func:`xailib.calibration.reasons`)."""
    labels = cuts(own)
    label_own = labels[own]
    claims = []
    for mname, sub in per_image.groupby("model", sort=False):
        # the random control at this setting: at 50 % or more the setting is degenerate, no verdict
        ctl = sub[sub.method == CONTROL].groupby("selection").impact.mean().max()
        dead = degenerate.get((mname, removal), "")
        for cut, label in labels.items():
            w = sub[sub.granularity == cut].pivot(index="image", columns="method", values="impact")
            for a, b, gap in PAIRS:
                same_as_own = cut != own and all(selection_for(m, selection) == cut for m in (a, b))
                if a in w and b in w and not same_as_own:     # else: the own cut's claim, on the same data
                    claims.append(verdicts.Claim(f"{PAPER_METHODS[a]} above {PAPER_METHODS[b]} in I", mname,
                                                 verdicts.paired(w[a], w[b]), paper_gap=gap / 100, scale=100, unit=" pts",
                                                 paper=f"Table 1: +{gap:.1f} pts", setting=label, control=ctl,
                                                 degenerate=dead))
        mine = sub[sub.granularity == own]
        for m in order:
            r = mine[mine.method == m].sort_values("image")
            # the strongest null: the random map cut and removed like the method, or a map made
            # without the network cut the same way, whichever undoes more decisions
            pool = {"a random map cut like it": r.control.to_numpy()}
            for n in nulls:
                q = sub[(sub.method == n) & (sub.granularity == r.selection.iloc[0])].sort_values("image")
                if len(q) == len(r):
                    pool[f"the {n.replace('_', ' ')} map"] = q.impact.to_numpy()
            null = max(pool, key=lambda k: pool[k].mean())
            claims.append(verdicts.Claim(f"{m} beats the strongest null in I", mname,
                                         verdicts.paired(r.impact.to_numpy(), pool[null]), scale=100,
                                         unit=" pts", paper="(no control reported)", setting=f"{label_own}, against {null}",
                                         group="beats the strongest null in I", control=ctl, degenerate=dead))
        for m in PAPER_METHODS:
            r = mine[(mine.method == m) & (mine.impact == 1)]
            if len(r):
                claims.append(verdicts.Claim(f"more than half of {PAPER_METHODS[m]}'s impactful removals flip the decision",
                                             mname, verdicts.paired(r.strict.to_numpy(), 0.5), kind="above",
                                             scale=100, unit=" pts above 50 %", paper=f"I_strict / I = {RATIO[m]:.2f}",
                                             setting=label_own, control=ctl, degenerate=dead))
    return verdicts.claims_table(claims)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def impact_examples(images, removed: dict, regions: dict, outcomes: dict, class_names,
                    row_titles=None, cell: float = 1.55):
    """The paper's Fig. 3: rows are images; columns the image, then for each method the image
    without its critical region (outlined in yellow), captioned with the decision and the
    confidence in it before -> after. Red captions: the removal had impact (eq. 5)."""
    def draw(ax, r, name):
        out = outcomes[name]
        ax.imshow(plots.to_hwc(removed[name][r]), interpolation="nearest")
        ax.contour(regions[name][r].cpu().numpy().astype(float), [0.5], colors="yellow",
                   linewidths=0.4, alpha=0.7)
        y, y2 = int(out.decision[r]), int(out.new_decision[r])
        text = f"{float(out.confidence[r]):.2f} → {float(out.new_confidence[r]):.2f}"
        if y2 != y:
            text += f"\nnow: {class_names[y2]}"
        ax.set_xlabel(text, fontsize=7, color="tab:red" if bool(out.impact[r]) else "black")
    return plots.image_grid(images, list(removed), draw, row_titles, cell, row_height=cell + 0.45)


def wide_scores(per_image: pd.DataFrame) -> pd.DataFrame:
    """The committed per-image table (model, method, granularity, image, impact, strict, ...) as one
    row per model, method and image and one column per "<score> (<cut>)", the form
    :func:`xailib.carryover.section` compares."""
    cut = {"own": "own cut", "pixels": "pixels", "segments": "superpixels"}
    long = per_image.melt(id_vars=["model", "method", "granularity", "image"],
                          value_vars=["impact", "strict"], var_name="score")
    long["column"] = (long["score"].map({"impact": "I", "strict": "I_strict"}) + " ("
                      + long["granularity"].map(cut).fillna(long["granularity"]) + ")")
    wide = long.pivot_table(index=["model", "method", "image"], columns="column", values="value", sort=False)
    wide.columns.name = None
    return wide.reset_index()
