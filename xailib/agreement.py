"""How far rankings agree: rank correlation, Kendall's W, Krippendorff's alpha, split-half reliability.

The leaderboard (chapter 10) asks of its metrics what MetaQuantus (Hedström et al. 2023) and
Tomsett et al. (2020) ask: do two metrics order the methods alike, and does one metric order
them alike on two halves of the images? Spearman's rho and Kendall's tau are scipy's. Kendall's
coefficient of concordance W over many raters is written here (neither scipy nor scikit-learn
has it); it is the textbook formula with the correction for ties. Krippendorff's alpha is the
``krippendorff`` package's.

Every function takes *oriented* scores or ranks: a metric where lower is better is negated first
(:func:`orient`), so that for every column a larger value is a better one and two metrics that
agree correlate positively.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import krippendorff
from scipy import stats

from .errors import ParameterError, check_choice, check_fraction, check_positive_int, check_values

CORRELATIONS = ("spearman", "kendall")


def orient(table: pd.DataFrame, higher_is_better: dict) -> pd.DataFrame:
    """``table`` (columns: metrics) with every lower-is-better column negated."""
    missing = [c for c in table.columns if c not in higher_is_better]
    if missing:
        raise ParameterError(f"no direction for {missing}")
    return table * pd.Series({c: 1.0 if higher_is_better[c] else -1.0 for c in table.columns})


def rank_correlation(a, b, method: str = "spearman") -> float:
    """Spearman's rho or Kendall's tau (tau-b) of two score vectors over the same items, NaN
    where either is missing; NaN when fewer than three items remain or one side is constant."""
    check_choice("method", method, CORRELATIONS)
    a, b = check_values("a", a, missing=True, empty=True), check_values("b", b, missing=True, empty=True)
    if a.shape != b.shape or a.ndim != 1:
        raise ParameterError(f"a and b must be 1-D and the same length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    fn = stats.spearmanr if method == "spearman" else stats.kendalltau
    return float(fn(a, b)[0])


def agreement_matrix(scores: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Rank correlation of every pair of columns (oriented scores; rows: the ranked items)."""
    check_choice("method", method, CORRELATIONS)
    check_values("scores", scores, ndim=2, missing=True, empty=True)
    cols = list(scores.columns)
    return pd.DataFrame([[rank_correlation(scores[a], scores[b], method) for b in cols] for a in cols],
                        index=cols, columns=cols)


def kendall_w(scores) -> float:
    """Kendall's coefficient of concordance of ``scores`` (rows: raters, e.g. metrics; columns:
    items, e.g. methods; larger = better), with the tie correction:
    W = 12 S / (m^2 (n^3 - n) - m sum_j T_j), S the squared deviations of the items' rank sums
    from their mean, T_j = sum (t^3 - t) over rater j's groups of t tied items. 1 when every rater
    orders the items alike, 0 when the rank sums are all equal. Raters with a missing item are
    left out (NaN marks a missing score; an infinite one is refused); NaN with fewer than two raters
    or items, or when every rater ties everything."""
    s = check_values("scores", scores, ndim=2, missing=True, empty=True)
    s = s[np.isfinite(s).all(1)]
    m, n = s.shape
    if m < 2 or n < 2:
        return float("nan")
    ranks = np.apply_along_axis(stats.rankdata, 1, s)
    sums = ranks.sum(0)
    S = float(((sums - sums.mean()) ** 2).sum())
    ties = sum(float((c ** 3 - c).sum()) for c in (np.unique(r, return_counts=True)[1] for r in s))
    denom = m ** 2 * (n ** 3 - n) - m * ties
    return float("nan") if denom <= 0 else 12 * S / denom


def inter_rater_alpha(per_image, higher_is_better: bool = True) -> float:
    """Tomsett et al.'s (2020) inter-rater reliability of a metric: each image is a rater that
    ranks the methods (rows of ``per_image``: images; columns: methods; scores, larger = better
    unless ``higher_is_better`` is False), and Krippendorff's alpha measures how far the images'
    rankings agree, at the ordinal level (tied scores share their mean rank). 1: every image ranks
    the methods alike; 0: no more agreement than chance; below 0: systematic disagreement. The
    controls (random, constant maps) belong outside: their fixed places make any metric look
    reliable. NaN with fewer than two images or two methods, or when no image tells any two
    methods apart. Every score must be there: a NaN or an infinity is refused."""
    v = check_values("per_image", per_image, ndim=2, empty=True) * (1.0 if higher_is_better else -1.0)
    n, k = v.shape
    if n < 2 or k < 2:
        return float("nan")
    ranks = np.apply_along_axis(stats.rankdata, 1, -v)          # 1 = the image's best method
    if len(np.unique(ranks)) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=ranks, level_of_measurement="ordinal"))


def split_half(per_image: pd.DataFrame, higher_is_better: bool = True, n_splits: int = 200, seed: int = 0,
               method: str = "spearman", level: float = 0.95) -> tuple[float, float, float]:
    """Split-half reliability of a ranking: the images (rows of ``per_image``; columns: methods)
    are split at random into two halves ``n_splits`` times, the methods ranked by their mean on
    each half, and the two rankings correlated. Returns (mean, low, high): the mean correlation
    and the central ``level`` share of the splits' values (their spread, not a confidence interval
    of the mean). NaN with fewer than four images or three methods. Uncorrected: the correlation
    of two half-length rankings, which understates the full data's reliability; the Spearman-Brown
    step-up, :func:`spearman_brown`, estimates that and is shown beside it. Every score must be there (a
    method missing on some image is dropped by the caller, not here): a NaN or an infinity is refused."""
    check_positive_int("n_splits", n_splits)
    check_choice("method", method, CORRELATIONS)
    check_fraction("level", level)
    v = check_values("per_image", per_image, ndim=2, empty=True) * (1.0 if higher_is_better else -1.0)
    n, k = v.shape
    if n < 4 or k < 3:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_splits):
        p = rng.permutation(n)
        values.append(rank_correlation(v[p[: n // 2]].mean(0), v[p[n // 2:]].mean(0), method))
    values = np.array(values)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    a = (1 - level) / 2
    return float(values.mean()), float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def spearman_brown(r, factor: float = 2.0):
    """The Spearman-Brown prophecy: the reliability of a measurement ``factor`` times as long as
    one whose reliability is ``r``, ``factor r / (1 + (factor - 1) r)``. A split-half correlation
    is that of rankings on *half* the images; with ``factor=2`` it estimates the reliability of
    the ranking on all of them. NaN stays NaN (no split-half value), and so is the undefined case
``1 + (factor - 1) r <= 0`` (r = -1 at factor 2); ``r`` outside [-1, 1] is refused."""
    v = check_values("r", r, low=-1, high=1, missing=True, empty=True)
    if not check_values("factor", factor, ndim=0) > 0:
        raise ParameterError(f"factor={factor!r} must be > 0")
    den = 1 + (factor - 1) * v
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, factor * v / np.where(den > 0, den, 1), np.nan)   # undefined at den <= 0 (r = -1)
    return float(out) if np.ndim(r) == 0 else out


def per_image_agreement(a: pd.DataFrame, b: pd.DataFrame, method: str = "spearman") -> pd.Series:
    """Per image (rows of ``a`` and ``b``, columns: methods; oriented), the rank correlation of
    two metrics over the methods."""
    check_choice("method", method, CORRELATIONS)
    cols = [c for c in a.columns if c in b.columns]
    idx = [i for i in a.index if i in b.index]
    if not cols:
        raise ParameterError("a and b share no column (method): there is nothing to correlate")
    va, vb = a.loc[idx, cols].to_numpy(float), b.loc[idx, cols].to_numpy(float)
    if method == "kendall" or not (np.isfinite(va).all() and np.isfinite(vb).all()):
        return pd.Series([rank_correlation(a.loc[i, cols], b.loc[i, cols], method) for i in idx], index=idx)
    # Spearman's rho of every image at once: Pearson's r of the rows' average ranks (scipy's
    # definition; NaN for fewer than three methods or a row without spread, as rank_correlation)
    ra, rb = stats.rankdata(va, axis=1), stats.rankdata(vb, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(1) / den
    r[(np.ptp(va, 1) == 0) | (np.ptp(vb, 1) == 0) | (len(cols) < 3)] = np.nan
    return pd.Series(np.clip(r, -1.0, 1.0), index=idx)
