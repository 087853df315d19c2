"""Judging a claim: intervals, paired comparisons, and one rule for holds / does not hold / not resolved.

Every chapter judges the papers' claims with these functions, so that no notebook carries its
own statistics. The rule, at level ``alpha`` (default 0.05) after Holm's correction over the
chapter's family of claims:

- a claim that A is better than B (``kind="better"``) **holds** when the paired difference is
  significant in the claimed direction (a paired sign-flip test over images or clusters); it **does not hold** when it is significant in the other
  direction, or when the difference is shown to lie within ``margin`` of zero (two one-sided
  tests: the (1 - 2 alpha) interval inside +-margin); otherwise it is **not resolved**;
- a claim that A and B are alike (``kind="alike"``) holds only by that same equivalence test,
  does not hold when the difference is significant *and* its interval lies wholly outside
  +-margin, and is otherwise not resolved;
- a claim about one proportion or mean against a reference value (``kind="above"`` /
  ``"below"``) is judged like ``better`` against that value.

A verdict that is not resolved names the number of images that would decide it: the ``n`` at
which a paired difference of the size the *paper* reports (``effect``; not the one observed
here) would be detected with 80 % power at the observed spread (the normal approximation,
``n = ((z_{1-alpha/2} + z_{0.8}) sd / effect)^2``).

Intervals: proportions get Wilson score intervals (scipy), which do not collapse at 0 or 1;
paired differences get a percentile bootstrap over images, or over *clusters* when the same unit
(a clean image attacked at several scales) appears more than once, so that repeated units are
not counted as independent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .errors import ParameterError, check_choice, check_fraction, check_positive_int

HOLDS, FAILS, OPEN = "holds", "does not hold", "not resolved"
UNJUDGED = "no verdict (degenerate setting)"
KINDS = ("better", "alike", "above", "below")


def proportion(k: int, n: int, level: float = 0.95, method: str = "wilson") -> tuple[float, float, float]:
    """(estimate, low, high) of a proportion k / n; ``method`` "wilson" or "exact" (Clopper-Pearson)."""
    check_positive_int("n", n)
    if not 0 <= k <= n:
        raise ParameterError(f"k={k} must be between 0 and n={n}")
    check_choice("method", method, ("wilson", "exact"))
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method=method)
    return k / n, float(ci.low), float(ci.high)


def proportion_of(values, clusters=None, level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high) of the share of 1s in ``values`` (0 / 1 per image). Without
    ``clusters`` a Wilson interval on k of n; with them (the same unit seen several times) the
    Wilson interval is taken at the number of distinct units, the share unchanged, so repeated
    units do not narrow it."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0 or not np.isin(v, (0.0, 1.0)).all():
        raise ParameterError("values must be 0 / 1 per image (1-D, not empty)")
    n = len(v) if clusters is None else len(np.unique(np.asarray(clusters)))
    p = float(v.mean())
    _, lo, hi = proportion(int(round(p * n)), n, level)
    return p, lo, hi


def _clusters(n: int, clusters) -> list[np.ndarray]:
    if clusters is None:
        return [np.array([i]) for i in range(n)]
    c = np.asarray(clusters)
    if len(c) != n:
        raise ParameterError(f"clusters must have one entry per value ({n}), got {len(c)}")
    return [np.flatnonzero(c == u) for u in np.unique(c)]


@dataclass
class Comparison:
    """A paired difference (a - b, or a - reference) over images, with its bootstrap interval."""

    mean: float
    low: float
    high: float
    p: float                  # two-sided sign-flip p-value for "no difference"
    sd: float                 # spread of the per-unit differences (units = clusters)
    n: int                    # values
    n_units: int              # independent units (clusters; = n without clusters)
    level: float
    replicates: np.ndarray = field(repr=False, default=None)

    def interval(self, level: float) -> tuple[float, float]:
        a = (1 - level) / 2
        return float(np.quantile(self.replicates, a)), float(np.quantile(self.replicates, 1 - a))


def paired(a, b=0.0, clusters=None, n_boot: int = 4000, seed: int = 0, level: float = 0.95,
           n_perm: int = 20000) -> Comparison:
    """The mean of ``a - b`` (per image, same images; ``b`` may be a number), with a percentile
    bootstrap interval that resamples ``clusters`` (one label per value) or single values, and the
    sign-flip p-value from ``n_perm`` random sign patterns (exact up to 16 units). The smallest
    Monte Carlo p is 1 / (n_perm + 1); 20000 patterns keep it below what Holm's correction over a
    chapter's fifty-odd claims needs."""
    a = np.asarray(a, dtype=np.float64)
    d = a - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ParameterError("a and b must be one value per image (1-D, not empty)")
    if not np.isfinite(d).all():
        raise ParameterError("the values contain NaN or infinite entries")
    check_positive_int("n_boot", n_boot)
    check_fraction("level", level)
    groups = _clusters(len(d), clusters)
    sums = np.array([d[g].sum() for g in groups])
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    reps = sums[idx].sum(1) / sizes[idx].sum(1)
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    mean = float(d.mean())
    p = sign_flip_p(sums, n_perm=n_perm, seed=seed)
    unit_means = sums / sizes
    sd = float(np.std(unit_means, ddof=1)) if len(groups) > 1 else float("nan")
    return Comparison(mean, float(lo), float(hi), p, sd, len(d), len(groups), level, reps)


def sign_flip_p(unit_sums, n_perm: int = 4000, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip (randomisation) test that the mean difference
    is 0: under that hypothesis each unit's sum of differences is as likely negative as positive.
    Exact (every sign pattern) up to 16 units, else ``n_perm`` random patterns plus the observed
    one. Unlike a bootstrap p it is valid for a handful of units (2 of 2 positive: p = 0.5)."""
    s = np.asarray(unit_sums, dtype=np.float64)
    obs = abs(s.sum())
    if obs == 0:
        return 1.0
    if len(s) <= 16:
        signs = 1 - 2 * ((np.arange(2 ** len(s))[:, None] >> np.arange(len(s))) & 1)
        return float((np.abs(signs @ s) >= obs * (1 - 1e-12)).mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, len(s)))
    return float(((np.abs(signs @ s) >= obs * (1 - 1e-12)).sum() + 1) / (n_perm + 1))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def n_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Units needed to detect a paired difference ``effect`` at spread ``sd`` (normal approximation)."""
    if effect is None or not np.isfinite(sd) or effect == 0:
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return int(np.ceil((z * sd / abs(effect)) ** 2))


@dataclass
class Verdict:
    verdict: str
    rule: str
    comparison: Comparison
    p_adjusted: float
    n_to_decide: int | None = None

    def describe(self, fmt: str = "{:+.3f}") -> str:
        c = self.comparison
        units = f"{c.n} images" if c.n_units == c.n else f"{c.n} values in {c.n_units} clusters"
        text = (f"{self.verdict}: difference {fmt.format(c.mean)} "
                f"[{fmt.format(c.low)}, {fmt.format(c.high)}] ({100 * c.level:.0f} % interval, {units}; "
                f"Holm-adjusted p = {self.p_adjusted:.3g}; {self.rule})")
        if self.verdict == OPEN and self.n_to_decide:
            text += f"; about {self.n_to_decide} {'clusters' if c.n_units != c.n else 'images'} would decide it"
        return text


def judge(comparison: Comparison, kind: str = "better", margin: float | None = None,
          effect: float | None = None, p_adjusted: float | None = None, alpha: float = 0.05) -> Verdict:
    """The verdict on one claim (see the module's doc). ``comparison`` is of the claimed-better
    minus the other (``kind="better"`` / ``"above"``; for ``"below"`` give it as is, the sign is
    turned here); ``p_adjusted`` is the claim's Holm-adjusted p (default: its own p)."""
    check_choice("kind", kind, KINDS)
    check_fraction("alpha", alpha)
    c = comparison
    p = c.p if p_adjusted is None else float(p_adjusted)
    sign = -1.0 if kind == "below" else 1.0
    mean, (lo, hi) = sign * c.mean, sorted((sign * c.low, sign * c.high))
    lo2, hi2 = sorted(sign * v for v in c.interval(1 - 2 * alpha)) if margin is not None else (None, None)
    equivalent = margin is not None and -margin < lo2 and hi2 < margin
    rule = f"paired sign-flip test, alpha {alpha}" + (f", margin {margin:g}" if margin is not None else "")
    need = n_needed(effect if effect is not None else margin, c.sd, alpha)
    if kind == "alike":
        if margin is None:
            raise ParameterError("a claim that two things are alike needs margin= (what counts as alike)")
        if equivalent:
            return Verdict(HOLDS, rule + " (equivalence: two one-sided tests)", c, p)
        if p < alpha and (lo >= margin or hi <= -margin):
            return Verdict(FAILS, rule + " (a difference beyond the margin)", c, p)
        return Verdict(OPEN, rule, c, p, need)
    if p < alpha and mean > 0:
        return Verdict(HOLDS, rule, c, p)
    if p < alpha and mean < 0:
        return Verdict(FAILS, rule + " (significant in the other direction)", c, p)
    if equivalent:
        return Verdict(FAILS, rule + " (equivalent within the margin)", c, p)
    return Verdict(OPEN, rule, c, p, need)


def judge_family(comparisons: dict, kinds: dict | None = None, margins: dict | None = None,
                 effects: dict | None = None, alpha: float = 0.05) -> dict:
    """Verdicts for a chapter's family of claims ``{name: Comparison}``, Holm-corrected together."""
    names = list(comparisons)
    adj = holm([comparisons[k].p for k in names]) if names else []
    kinds, margins, effects = kinds or {}, margins or {}, effects or {}
    return {k: judge(comparisons[k], kinds.get(k, "better"), margins.get(k), effects.get(k),
                     p_adjusted=a, alpha=alpha) for k, a in zip(names, adj)}


def independent(a, b, n_boot: int = 4000, seed: int = 0, level: float = 0.95) -> Comparison:
    """mean(a) - mean(b) for two *independent* samples (different images: attack success at two
    scales), with a percentile bootstrap interval (each sample resampled on its own) and the
    two-sided p of a permutation test of the pooled values (scipy)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or len(a) == 0 or len(b) == 0:
        raise ParameterError("a and b must be non-empty 1-D samples")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ParameterError("the values contain NaN or infinite entries")
    rng = np.random.default_rng(seed)
    reps = (a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
            - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1))
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    if np.ptp(np.concatenate([a, b])) == 0:
        p = 1.0
    else:
        p = float(stats.permutation_test((a, b), lambda x, y: x.mean() - y.mean(), n_resamples=n_boot,
                                         random_state=seed, vectorized=False).pvalue)
    sd = float(np.sqrt((a.var(ddof=1) if len(a) > 1 else 0) + (b.var(ddof=1) if len(b) > 1 else 0)))
    mean = float(a.mean() - b.mean())
    return Comparison(mean, float(lo), float(hi), p, sd, len(a) + len(b), len(a) + len(b), level, reps)


# --------------------------------------------------------------------------------------------
# A chapter's claims table
# --------------------------------------------------------------------------------------------

@dataclass
class Claim:
    """One claim of a paper, tested here. ``comparison`` is of the claimed-better minus the other
    (or of a value minus its reference); ``scale`` multiplies numbers for display (100: points)."""

    claim: str
    model: str
    comparison: Comparison
    kind: str = "better"
    margin: float | None = None
    effect: float | None = None      # the paper's own gap, for the n that would decide it
    paper: str = ""
    setting: str = ""
    scale: float = 1.0
    unit: str = ""
    group: str = ""                  # claims of one statement over many methods, summarised together
    control: float | None = None     # a random map's score at this setting: at DEGENERATE or more, no verdict


def claims_table(claims: list[Claim], alpha: float = 0.05) -> "pd.DataFrame":
    """Judge a chapter's family of claims together (Holm over all of them) and tabulate each with
    its rule, n, interval, adjusted p and, when not resolved, the n that would decide it."""
    import pandas as pd
    if not claims:
        return pd.DataFrame(columns=["claim", "model", "verdict"])
    adj = holm([c.comparison.p for c in claims])
    rows = []
    for c, p in zip(claims, adj):
        v = judge(c.comparison, c.kind, c.margin, c.effect, p_adjusted=p, alpha=alpha)
        if c.control is not None and degenerate(c.control):
            v = Verdict(UNJUDGED, f"a random map scores {100 * c.control:.0f} % here: the setting is degenerate",
                        c.comparison, p)
        k = c.comparison
        f = (lambda x: f"{c.scale * x:+.3g}") if c.scale != 1 else (lambda x: f"{x:+.3f}")
        units = f"{k.n}" if k.n_units == k.n else f"{k.n} ({k.n_units} clusters)"
        rows.append({"claim": c.claim, "model": c.model, "setting": c.setting, "paper": c.paper, "group": c.group,
                     "difference [95 % CI]": f"{f(k.mean)} [{f(k.low)}, {f(k.high)}]{c.unit}",
                     "n": units, "p (Holm)": float(f"{p:.3g}"), "verdict": v.verdict,
                     "rule": v.rule, "n to decide": v.n_to_decide if v.verdict == OPEN else None})
    return pd.DataFrame(rows)


def findings(table, n_label: str = "images") -> str:
    """Markdown bullets generated from a claims table (so the prose never goes stale when the
    chapter is re-run on other data): one per claim, and one per (group, model) that counts the
    verdicts of a statement made for many methods at once."""
    lines, seen = [], set()
    for _, r in table.iterrows():
        where = f" ({r['setting']})" if r.get("setting") else ""
        group = r.get("group") or ""
        if group:
            if (group, r["model"]) in seen:
                continue
            seen.add((group, r["model"]))
            sub = table[(table["group"] == group) & (table["model"] == r["model"])]
            counts = sub["verdict"].value_counts()
            parts = [f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, OPEN) if counts.get(v, 0)]
            lines.append(f"- **{group}**, {r['model']}{where}: of {len(sub)} methods, " + ", ".join(parts)
                         + " (each method's row is in the table).")
            continue
        text = (f"- **{r['claim']}**, {r['model']}{where}: **{r['verdict']}**; difference "
                f"{r['difference [95 % CI]']}, n = {r['n']}, Holm-adjusted p = {r['p (Holm)']:.3g}")
        need = r.get("n to decide")
        if r["verdict"] == OPEN and need is not None and np.isfinite(need) and need > 0:
            text += f"; about {int(need)} {n_label} would decide it"
        lines.append(text + ".")
    return "\n".join(lines)


def rank_intervals(replicates, higher_is_better: bool = True, level: float = 0.95):
    """Point ranks (of the full-sample means) and rank intervals from bootstrap replicates
    (rows: replicates, columns: methods). The interval is widened, if need be, to contain the
    point rank, so a table never shows a rank outside its own interval."""
    import pandas as pd
    reps = pd.DataFrame(replicates)
    ranks = reps.rank(axis=1, ascending=not higher_is_better, method="average")
    lo = ranks.quantile((1 - level) / 2)
    hi = ranks.quantile((1 + level) / 2)
    point = reps.mean().rank(ascending=not higher_is_better, method="average")
    return pd.DataFrame({"rank": point, "low": np.minimum(lo, point), "high": np.maximum(hi, point)})


DEGENERATE = 0.5


def degenerate(control_rate: float, threshold: float = DEGENERATE) -> bool:
    """A setting in which a *random* map reaches ``threshold`` (an Impact Score of 50 %) or more
    measures the removal, not the explanation: no verdict may rest on it."""
    return bool(np.isfinite(control_rate) and control_rate >= threshold)
