"""Do the benchmark's findings carry over to a real network on real photographs?

Two measures, both read from tables a chapter already makes:

* :func:`rank_agreement`: Spearman's correlation between the methods' mean scores on the benchmark
  and on the real network, with a bootstrap interval that resamples the images of each set
  independently (they are different images, so nothing pairs them). An interval above 0 says the
  two orderings agree more than chance would; one that reaches 0 says the photographs cannot tell.
* :func:`directions`: each claim judged on both, side by side: whether the real network's
  difference points the same way as the benchmark's, and the two verdicts.

Written here because it is a chapter-independent comparison of two of the book's own tables; the
rank correlation itself is scipy's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ParameterError, check_fraction, check_positive_int


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho between matching rows of ``a`` and ``b`` (replicates x methods), average ranks
    for ties; nan where a row is constant."""
    from scipy.stats import rankdata
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), np.nan)


def rank_agreement(bench, real, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Spearman's rho between the column means of ``bench`` and ``real`` (rows: images, columns:
    methods; the methods both hold, at least three), with a percentile bootstrap interval over the
    images of each. Returns methods, bench images, real images, rho, low, high."""
    import pandas as pd
    check_positive_int("n_boot", n_boot)
    check_fraction("level", level)
    bench, real = pd.DataFrame(bench), pd.DataFrame(real)
    common = [m for m in bench.columns if m in set(real.columns)]
    if len(common) < 3:
        raise ParameterError(f"a rank correlation needs at least 3 methods in both tables; they share {common}")
    a = bench[common].dropna().to_numpy(float)
    b = real[common].dropna().to_numpy(float)
    if len(a) == 0 or len(b) == 0:
        raise ParameterError("a rank correlation needs images with a score for every shared method in both tables")
    rho = float(_spearman_rows(a.mean(0)[None], b.mean(0)[None])[0])
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), size=(n_boot, len(a)))
    ib = rng.integers(0, len(b), size=(n_boot, len(b)))
    reps = _spearman_rows(a[ia].mean(1), b[ib].mean(1))
    reps = reps[np.isfinite(reps)]
    low, high = (np.quantile(reps, [(1 - level) / 2, (1 + level) / 2]) if len(reps) else (np.nan, np.nan))
    return {"methods": len(common), "bench images": len(a), "real images": len(b), "rho": rho,
            "low": float(low), "high": float(high)}


_POINT = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)")


def point(difference: str) -> float:
    """The point estimate of a claims table's "difference [95 % CI]" cell ("+0.014 [-0.002, +0.029]")."""
    m = _POINT.match(str(difference))
    return float(m.group(1)) if m else float("nan")


def directions(bench, real, key=("claim", "setting")):
    """The claims judged on both runs, one row per claim and benchmark network: the benchmark's
    difference and verdict, the real network's, and whether the real difference points the same way
    ("agrees"), the other way ("flips") or is zero / missing ("—"). The two tables are claims
    tables (:func:`xailib.verdicts.claims_table`) of the same chapter."""
    key = [k for k in key if k in bench.columns and k in real.columns]
    col = "difference [95 % CI]"
    b = bench[key + ["model", col, "verdict"]].copy()
    r = real[key + [col, "verdict"]].drop_duplicates(key).copy()
    b[key] = b[key].fillna("")
    r[key] = r[key].fillna("")
    both = b.merge(r, on=key, suffixes=(" (benchmark)", " (real network)"))
    s = np.sign(both[col + " (benchmark)"].map(point)) * np.sign(both[col + " (real network)"].map(point))
    both["direction"] = np.where(s > 0, "agrees", np.where(s < 0, "flips", "—"))
    return both.rename(columns={"model": "benchmark network"}).reset_index(drop=True)


def direction_summary(table) -> str:
    """One generated sentence on :func:`directions`' table."""
    if len(table) == 0:
        return "No claim is judged on both the benchmark and the real network."
    n = len(table)
    agree, flip = int((table["direction"] == "agrees").sum()), int((table["direction"] == "flips").sum())
    held = table[table["verdict (benchmark)"] == "holds"]
    held_real = int((held["verdict (real network)"] == "holds").sum())
    return (f"Of {n} claim{'s' if n != 1 else ''} judged on both (a benchmark network against the real one), "
            f"the real network's difference points the same way in {agree} and the other way in {flip}. "
            f"Of the {len(held)} that hold on the benchmark, {held_real} also hold{'s' if held_real == 1 else ''} "
            "on the photographs, whose few images rarely decide a claim.")


def agreement_table(bench, real, scores, n_boot: int = 1000, seed: int = 0):
    """:func:`rank_agreement` for each score and benchmark network. ``bench`` and ``real`` are
    per-image tables with columns model, method, image and one column per score (``scores``: the
    names to compare); each benchmark network is set against the real run's (one) network.
    Columns: score, benchmark network, methods, images (benchmark), images (real), rho, low, high."""
    import pandas as pd
    rows = []
    for score in scores:
        if score not in bench.columns or score not in real.columns:
            continue
        wide_real = real.pivot_table(index="image", columns="method", values=score)
        for model, b in bench.groupby("model", sort=False):
            wide = b.pivot_table(index="image", columns="method", values=score)
            try:
                r = rank_agreement(wide, wide_real, n_boot=n_boot, seed=seed)
            except ParameterError:
                continue
            rows.append({"score": score, "benchmark network": model, "methods": r["methods"],
                         "images (benchmark)": r["bench images"], "images (real)": r["real images"],
                         "rho": r["rho"], "low": r["low"], "high": r["high"]})
    return pd.DataFrame(rows, columns=["score", "benchmark network", "methods", "images (benchmark)",
                                       "images (real)", "rho", "low", "high"])


def agreement_summary(table) -> str:
    """One generated sentence on :func:`agreement_table`'s rows."""
    if len(table) == 0:
        return "No score is shared by three or more methods on both: no ranking to compare."
    above = table[table["low"] > 0]
    below = table[table["high"] < 0]
    n = len(table)
    return (f"Of {n} comparison{'s' if n != 1 else ''} (a score on a benchmark network against the real one), "
            f"the methods' order agrees beyond chance (interval above 0) in {len(above)}, is reversed beyond "
            f"chance in {len(below)}, and cannot be told from no agreement in {n - len(above) - len(below)}; "
            f"the median rho is {table['rho'].median():+.2f}.")


@dataclass
class Section:
    """What a chapter's section on the real network shows: a generated note (Markdown), the
    rank agreement per score, the claims side by side, and the real run's own tables."""

    note: str
    agreement: "object" = None
    directions: "object" = None
    tables: dict = field(default_factory=dict)


def section(notebook: str, this_run: dict, table: str, scores=None, prep=None, verdicts=None, show=(),
            key=("claim", "setting"), n_boot: int = 1000, seed: int = 0, root=None) -> Section:
    """A chapter's comparison of its committed benchmark run with its committed run on the real
    network (``results/<notebook>/real_network/``, :func:`xailib.results.real_network`).

    ``table``: the per-image table both runs publish (the benchmark's is read from its larger run
    where it has one); ``prep`` turns it into columns model, method, image and the ``scores``
    (None: every other column of the real run's table); ``verdicts``: the benchmark's claims table
    (default: the committed one), matched to the real run's on ``key``; ``show``: the real run's
    tables to return as they are. Only the book's default run shows the comparison, which
    speaks for it; any other run gets a note saying so."""
    import pandas as pd

    from . import results
    root = Path(root) if root else results.REPO / "results"
    if results.differs_from_default(notebook, this_run, root):
        return Section("*This run is not the book's default run: the comparison with the real network "
                       "(below in the book) speaks for that run only, and is not shown here.*")
    real = results.real_network(notebook, root)
    if real is None:
        return Section(f"*No run on the real network is committed for this chapter: "
                       f"`python scripts/larger_run.py --real {notebook}` makes one.*")
    params, run, tables = real
    if table not in tables:
        return Section(f"*The committed run on the real network has no `{table}` table.*")
    larger = root / notebook / "larger_run" / f"{table}.csv"
    bench = pd.read_csv(larger if larger.exists() else root / notebook / f"{table}.csv")
    mine = pd.read_csv(tables[table])
    if prep is not None:
        bench, mine = prep(bench), prep(mine)
    if scores is None:
        scores = [c for c in mine.columns if c not in ("model", "method", "image")]
    agreement = agreement_table(bench, mine, scores, n_boot=n_boot, seed=seed)
    if verdicts is None and (root / notebook / "verdicts.csv").exists():
        verdicts = pd.read_csv(root / notebook / "verdicts.csv", keep_default_na=False, na_values=[""])
    real_verdicts = (pd.read_csv(tables["verdicts"], keep_default_na=False, na_values=[""])
                     if "verdicts" in tables else None)
    sides = (directions(verdicts, real_verdicts, key) if verdicts is not None and real_verdicts is not None
             else None)
    networks = ", ".join(params.get("model_names", [])) or "?"
    n_real = int(mine["image"].nunique()) if "image" in mine else "?"
    lines = [f"The real network's run: {networks} on {n_real} images "
             f"({params.get('dataset', '?')}, {params.get('image_size', '?')} px), made by "
             f"`{run.get('command', 'scripts/larger_run.py --real ' + notebook)}` in "
             f"{run.get('seconds', float('nan')) / 60:.0f} min"
             f"{' on ' + run['machine'] if 'machine' in run else ''}; the benchmark's numbers are "
             f"{'its larger run' if larger.exists() else 'its default run'}.",
             "", agreement_summary(agreement)]
    if sides is not None:
        lines += ["", direction_summary(sides)]
    return Section("\n".join(lines), agreement, sides,
                   {name: pd.read_csv(tables[name]) for name in show if name in tables})


def figure(agreement, title: str = ""):
    """Each score's rho with its interval, one row per score and a marker per benchmark network:
    the section's table, to be seen at a glance (right of 0: the order carries over)."""
    import matplotlib.pyplot as plt
    scores = list(dict.fromkeys(agreement["score"]))
    nets = list(dict.fromkeys(agreement["benchmark network"]))
    legend = 0.16 * len(nets) + 0.1                     # inches under the axis label, for the legend
    height = 0.32 * len(scores) + 1.2 + legend
    fig, ax = plt.subplots(figsize=(5.2, height))
    for k, (net, marker) in enumerate(zip(nets, "os^Dv")):
        t = agreement[agreement["benchmark network"] == net].set_index("score").reindex(scores)
        y = np.arange(len(scores)) + (k - (len(nets) - 1) / 2) * 0.22
        lo = (t["rho"] - t["low"]).clip(lower=0)           # a percentile interval can miss its point
        hi = (t["high"] - t["rho"]).clip(lower=0)
        ax.errorbar(t["rho"], y, xerr=[lo, hi], fmt=marker, ms=4, lw=1, capsize=2,
                    label=f"{net} against the real network")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(scores)), scores, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Spearman's rho of the methods' mean scores\n(95 % bootstrap interval)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    # the legend under the axis, not over it: the points can sit anywhere in [-1, 1]
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="lower left", frameon=False)
    fig.tight_layout(rect=(0, legend / height, 1, 1))
    return fig
