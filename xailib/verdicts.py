"""Judging a claim: intervals, paired comparisons, and one rule for holds / does not hold / not resolved.

Every chapter judges the papers' claims with these functions, so that no notebook carries its
own statistics. The rule, at level ``alpha`` (default 0.05) after Holm's correction over the
chapter's family of claims, judges **direction and size apart**:

- a claim that A is better than B (``kind="better"``) **holds** when the paired difference is
  significant in the claimed direction (a paired sign-flip test over images or clusters, or an
  exact test for 0 / 1 values, below), whatever its size. Its size is reported beside the
  paper's (``paper_gap``: "smaller than the paper's gap", with both numbers), never turned into
  a verdict: the papers' gaps are ImageNet numbers, and a benchmark's scores sit elsewhere;
- it **does not hold** only on evidence: the difference significant in the other direction, or
  shown to lie within ``margin`` of zero by two one-sided tests whose p-value (the smallest
  ``a`` at which the ``1 - 2a`` interval lies inside +-margin) is Holm-corrected over the same
  family and judged at the same level. ``margin`` must mean something on *this* benchmark
  (:func:`benchmark_margin`: a share of the spread between the metric's upper reference and its
  null, stated in the rule); a claim without one cannot be refuted by equivalence;
- otherwise it is **not resolved**;
- a claim that A and B are alike (``kind="alike"``) holds only by that same equivalence test,
  does not hold when the difference lies beyond the margin at the same adjusted level (the
  ``1 - a`` interval wholly outside +-margin), and is otherwise not resolved;
- a claim about one proportion or mean against a reference value (``kind="above"`` /
  ``"below"``) is judged like ``better`` against that value.

Cost and timing are reported beside the claims, never tested among them.

A verdict that is not resolved names the number of images that would decide it: the ``n`` at
which a paired difference of the size the *paper* reports (``effect``; not the one observed
here) would be detected with 80 % power at the observed spread (the normal approximation,
``n = ((z_{1-alpha/2} + z_{0.8}) sd / effect)^2``).

Intervals: proportions get Wilson score intervals (scipy), which do not collapse at 0 or 1;
paired differences get a percentile bootstrap over images, or over *clusters* when the same unit
(a clean image attacked at several scales) appears more than once, so that repeated units are
not counted as independent. When both sides are 0 / 1 per image (a hit, an impact), a bootstrap
collapses to a point as soon as every pair agrees, so these get exact small-sample answers
instead: a paired difference of two proportions Newcombe's score interval (his method 10) and
the exact McNemar test; one proportion against a reference value its Wilson interval and the
exact binomial test. With clusters the counts are taken at the number of distinct units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats

from .errors import ParameterError, check_choice, check_fraction, check_positive_int, check_values

HOLDS, FAILS, OPEN = "holds", "does not hold", "not resolved"
UNJUDGED = "no verdict (degenerate setting)"
KINDS = ("better", "alike", "above", "below")


def proportion(k: int, n: int, level: float = 0.95, method: str = "wilson") -> tuple[float, float, float]:
    """(estimate, low, high) of a proportion k / n; ``method`` "wilson" or "exact" (Clopper-Pearson)."""
    check_positive_int("n", n)
    if not 0 <= k <= n or k != int(k):
        raise ParameterError(f"k={k} must be a whole number between 0 and n={n}")
    check_choice("method", method, ("wilson", "exact"))
    check_fraction("level", level)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method=method)
    return k / n, float(ci.low), float(ci.high)


def proportion_of(values, clusters=None, level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high) of the share of 1s in ``values`` (0 / 1 per image). Without
    ``clusters`` a Wilson interval on k of n; with them (the same unit seen several times) the
    Wilson interval is taken at the number of distinct units, the share unchanged, so repeated
    units do not narrow it."""
    check_values("values", values, low=0, high=1, ndim=1)
    if clusters is not None and len(clusters) != len(values):
        raise ParameterError(f"clusters must have one entry per value ({len(values)}), got {len(clusters)}")
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
    p: float                  # two-sided p-value for "no difference" (by ``test``)
    sd: float                 # spread of the per-unit differences (units = clusters)
    n: int                    # values
    n_units: int              # independent units (clusters; = n without clusters)
    level: float
    replicates: np.ndarray = field(repr=False, default=None)
    test: str = "paired sign-flip test"      # how p was computed (named in every verdict's rule)
    interval_at: Callable | None = field(repr=False, default=None)   # level -> (low, high), exact cases

    def interval(self, level: float) -> tuple[float, float]:
        check_fraction("level", level)
        if self.interval_at is not None:
            return self.interval_at(level)
        a = (1 - level) / 2
        return float(np.quantile(self.replicates, a)), float(np.quantile(self.replicates, 1 - a))


def paired(a, b=0.0, clusters=None, n_boot: int = 4000, seed: int = 0, level: float = 0.95,
           n_perm: int = 20000, outcomes: bool | None = None, p_value: bool = True) -> Comparison:
    """The mean of ``a - b`` (per image, same images; ``b`` may be a number), with a percentile
    bootstrap interval that resamples ``clusters`` (one label per value) or single values, and the
    sign-flip p-value from ``n_perm`` random sign patterns (exact up to 16 units). The smallest
    Monte Carlo p is 1 / (n_perm + 1); 20000 patterns keep it below what Holm's correction over a
    chapter's fifty-odd claims needs. Values that are all 0 / 1 (and ``b`` 0 / 1 too, or a
    reference in [0, 1]) get the exact answers of the module's doc instead, named in ``test``.
    ``outcomes=False`` keeps a continuous score that happens to sit at 0 or 1 everywhere (a
    similarity of exactly 1) out of that branch; ``True`` demands 0 / 1 values. ``p_value=False``
    leaves the sign-flip p out (NaN) where only the mean and its interval are wanted: its exact
    lattice computation is the costly part for many units."""
    n_a, b_ = len(check_values("a", a, ndim=1)), check_values("b", b, ndim=(0, 1))
    if b_.ndim and len(b_) != n_a:
        raise ParameterError(f"a and b must be one value per image each, got {n_a} and {len(b_)} values")
    check_positive_int("n_perm", n_perm)
    a = np.asarray(a, dtype=np.float64)
    d = a - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ParameterError("a and b must be one value per image (1-D, not empty)")
    if not np.isfinite(d).all():
        raise ParameterError("the values contain NaN or infinite entries")
    check_positive_int("n_boot", n_boot)
    check_fraction("level", level)
    if clusters is None:
        groups, sums, sizes = range(len(d)), d, np.ones(len(d))
    else:
        groups = _clusters(len(d), clusters)
        sums = np.array([d[g].sum() for g in groups])
        sizes = np.array([len(g) for g in groups], dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    reps = sums[idx].sum(1) / sizes[idx].sum(1)
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    mean = float(d.mean())
    unit_means = sums / sizes
    sd = float(np.std(unit_means, ddof=1)) if len(groups) > 1 else float("nan")
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    if outcomes and not (_binary(a) and (np.ndim(b) == 0 or _binary(b_arr))):
        raise ParameterError("outcomes=True needs 0 / 1 values on both sides")
    if outcomes is not False and _binary(a) and (np.ndim(b) == 0 and 0 <= float(b) <= 1 or np.ndim(b) == 1 and _binary(b_arr)):
        return _paired_binary(a, b, d, clusters, len(groups), sd, level, reps, sums, n_perm, seed)
    p = sign_flip_p(sums, n_perm=n_perm, seed=seed) if p_value else float("nan")
    test = "paired sign-flip test"
    if len(groups) > 1 and np.ptp(unit_means) <= 1e-12 * max(1.0, abs(mean)):
        # a continuous score with no spread at all (a control whose map never depends on the
        # network; a flat map, whose rank correlation counts as 0): the interval is truly a point
        test += f" {_point_note(mean)}"
    return Comparison(mean, float(lo), float(hi), p, sd, len(d), len(groups), level, reps, test=test)


def bootstrap_statistic(statistic, n: int, n_boot: int = 4000, seed: int = 0, level: float = 0.95) -> Comparison:
    """A difference that is no mean over images, such as a share of a network's units computed from
    counts pooled over a data set (Network Dissection's IoU): ``statistic(weights)`` takes
    resampling weights (R, ``n``), how often each image is drawn, and returns the R differences;
    its value on the images themselves is ``statistic`` at weight 1. The interval is a percentile
    bootstrap over images (one draw for both sides of a paired difference, when the statistic
    computes both from the same weights); the two-sided p is read from the bootstrap's tails,
    ``2 min(#{d* <= 0} + 1, #{d* >= 0} + 1) / (R + 1)`` (its smallest value is 2 / (R + 1): 4000
    replicates keep it below what Holm's correction over a chapter's claims needs). Unlike the
    sign-flip test it assumes enough images for the bootstrap to hold: use it for data sets of
    dozens of images or more."""
    check_positive_int("n", n)
    check_positive_int("n_boot", n_boot)
    check_fraction("level", level)
    value = float(np.asarray(statistic(np.ones((1, n))), dtype=np.float64).ravel()[0])
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(np.float64)
    reps = np.asarray(statistic(weights), dtype=np.float64).ravel()
    if len(reps) != n_boot or not np.isfinite(reps).all():
        raise ParameterError("statistic must return one finite value per row of weights")
    return from_replicates(value, reps, n, level)


def from_replicates(value: float, reps, n: int, level: float = 0.95) -> Comparison:
    """:func:`bootstrap_statistic`'s comparison from its value and its bootstrap replicates (kept
    in a committed run, ``draws`` of :func:`claims_frames`), so that a chapter judges a run it
    cannot repeat by the rule as it is now."""
    reps = check_values("replicates", reps, ndim=1)
    check_positive_int("n", n)
    check_fraction("level", level)
    n_boot = len(reps)
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2 * min((reps <= 0).sum() + 1, (reps >= 0).sum() + 1) / (n_boot + 1))
    if value == 0 and np.ptp(reps) == 0:
        p = 1.0
    sd = float(np.std(reps, ddof=1) * np.sqrt(n))       # per image, as n_needed plans with it
    return Comparison(value, float(lo), float(hi), float(p), sd, n, n, level, reps,
                      test="percentile bootstrap over images (p from its tails)")


def _point_note(mean: float) -> str:
    """What :func:`paired` adds to its test's name when every unit gives the same difference (a
    rule that names the test, or an untested claim's, repeats it)."""
    return f"(every image gives the same difference, {mean:+.3f}: the interval is that point)"


def _binary(v: np.ndarray) -> bool:
    return bool(np.isin(v, (0.0, 1.0)).all())


def wilson(p: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``p`` observed on ``n`` units; ``n`` may be a
    non-integer effective count (clusters), which scipy's binomtest does not take."""
    p = float(check_values("p", p, low=0, high=1, ndim=0))
    n = float(check_values("n", n, ndim=0))
    if not n > 0:
        raise ParameterError(f"n={n!r} must be > 0 (the number of units the proportion is observed on)")
    check_fraction("level", level)
    z = stats.norm.ppf((1 + level) / 2)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def newcombe_paired(both: float, only_a: float, only_b: float, neither: float,
                    level: float = 0.95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) score interval for p_a - p_b from a paired 2 x 2 table:
    Wilson intervals for each margin, combined with the continuity-corrected phi correlation of
    the pairs. Written out because scipy and scikit-learn have no paired-proportion interval.
    Unlike a bootstrap it does not collapse when every pair agrees (16 of 16 hits on both:
    about +-0.19)."""
    both, only_a, only_b, neither = (float(check_values(k, v, low=0, ndim=0)) for k, v in
                                     (("both", both), ("only_a", only_a), ("only_b", only_b), ("neither", neither)))
    n = both + only_a + only_b + neither
    if n == 0:
        raise ParameterError("newcombe_paired needs at least one pair (both + only_a + only_b + neither = 0)")
    pa, pb = (both + only_a) / n, (both + only_b) / n
    la, ua = wilson(pa, n, level)
    lb, ub = wilson(pb, n, level)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / np.sqrt(denom) if denom > 0 else 0.0
    diff = pa - pb
    low = diff - np.sqrt(max(0.0, (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2))
    high = diff + np.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    return float(max(-1.0, low)), float(min(1.0, high))


def _paired_binary(a, b, d, clusters, n_units, sd, level, reps, sums, n_perm, seed) -> Comparison:
    """Exact answers for 0 / 1 values (see the module's doc); counts scaled to ``n_units``
    distinct units when values repeat a unit, as :func:`proportion_of` does."""
    n, mean = len(a), float(d.mean())
    scale = n_units / n
    if np.ndim(b) == 0:                      # one proportion against a reference value
        ref, pa = float(b), float(a.mean())
        interval_at = lambda lvl: tuple(v - ref for v in wilson(pa, n_units, lvl))
        k = int(round(pa * n_units))
        # against 0 or 1 a single outcome the other way refutes the reference outright (p = 0);
        # outcomes all at the reference are no evidence (p = 1)
        p = float(stats.binomtest(k, n_units, ref).pvalue) if 0 < ref < 1 else float(k == round(ref * n_units))
        test = "exact binomial test"
    else:
        b = np.asarray(b, dtype=np.float64)
        cells = [scale * float(((a == x) & (b == y)).sum()) for x, y in ((1, 1), (1, 0), (0, 1), (0, 0))]
        interval_at = lambda lvl: newcombe_paired(*cells, level=lvl)
        if clusters is None:
            only_a, only_b = int(cells[1]), int(cells[2])
            p = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
            test = "exact McNemar test"
        else:
            p = sign_flip_p(sums, n_perm=n_perm, seed=seed)
            test = "paired sign-flip test over clusters"
    lo, hi = interval_at(level)
    return Comparison(mean, lo, hi, p, sd, n, n_units, level, reps, test=test, interval_at=interval_at)


def sign_flip_p(unit_sums, n_perm: int = 4000, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip (randomisation) test that the mean difference
    is 0: under that hypothesis each unit's sum of differences is as likely negative as positive.
    Exact (every sign pattern) up to 16 units, or when the values sit on a lattice (counts, or
    0 / 1 outcomes against shares of a few random maps: the null distribution is then a
    convolution of binomials); otherwise ``n_perm`` random patterns plus the observed one.
    Unlike a bootstrap p it is valid for a handful of units (2 of 2 positive: p = 0.5)."""
    s = check_values("unit_sums", unit_sums, ndim=1)
    check_positive_int("n_perm", n_perm)
    obs = abs(s.sum())
    if obs == 0:
        return 1.0
    if len(s) <= 16:
        signs = 1 - 2 * ((np.arange(2 ** len(s))[:, None] >> np.arange(len(s))) & 1)
        return float((np.abs(signs @ s) >= obs * (1 - 1e-12)).mean())
    exact = _lattice_p(s)
    if exact is not None:
        return exact
    # units with the same |value| are exchangeable: one binomial draw per distinct |value|
    rng = np.random.default_rng(seed)
    values, counts = np.unique(np.abs(s), return_counts=True)
    positive = rng.binomial(counts, 0.5, size=(n_perm, len(values)))
    sums = (2 * positive - counts) @ values
    return float(((np.abs(sums) >= obs * (1 - 1e-12)).sum() + 1) / (n_perm + 1))


def _lattice_p(s: np.ndarray, max_support: int = 400_000) -> float | None:
    """The exact sign-flip p when every |value| is a whole multiple of 1 / L for a small L (None
    otherwise): the sum of w * (+-1) over units of integer weight w, distributed as the
    convolution over distinct weights of w * (2 Binomial(count, 1/2) - count)."""
    a = np.abs(s)
    for L in (1, 2, 4, 8, 16, 32, 64, 3, 6, 12, 24, 5, 10, 20, 40, 100):
        w = np.round(a * L)
        if np.allclose(w, a * L, rtol=0, atol=1e-9):
            break
    else:
        return None
    w = w.astype(np.int64)
    if 2 * int(w.sum()) + 1 > max_support:
        return None
    weights, counts = np.unique(w[w > 0], return_counts=True)
    pmf = np.array([1.0])                            # over sums -total .. +total, step 1
    for wt, c in zip(weights, counts):
        step = np.zeros(2 * wt * c + 1)
        step[::2 * wt] = stats.binom.pmf(np.arange(c + 1), c, 0.5)   # sum w * (2K - c), K ~ Bin(c, 1/2)
        pmf = np.convolve(pmf, step)
    total = (len(pmf) - 1) // 2
    observed = round(abs(float((np.sign(s) * w).sum())))
    return float(min(1.0, pmf[np.abs(np.arange(-total, total + 1)) >= observed].sum()))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given; none for none)."""
    p = check_values("pvalues", pvalues, low=0, high=1, ndim=1, empty=True)
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
    if effect is not None:
        check_values("effect", effect, ndim=0)
    check_fraction("alpha", alpha)
    check_fraction("power", power)
    if effect is None or not np.isfinite(sd) or effect == 0 or sd == 0:
        return None      # no spread (every image gave the same difference): no sample size can be planned
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    if not np.isfinite(z):
        raise ParameterError(f"alpha={alpha!r}, power={power!r}: no sample size reaches a level of 0 "
                             "or a power of 0 or 1")
    return int(np.ceil((z * sd / abs(effect)) ** 2))


def _smallest_tail(c: Comparison, inside, floor: float) -> float:
    """The smallest tail share ``a`` at which ``inside(low, high)`` holds for the ``1 - 2a``
    interval (1.0 when it holds at no level): intervals narrow as ``a`` grows, so bisection on a
    log scale finds it. ``floor``: the smallest share the interval can resolve."""
    at = lambda a: inside(*c.interval(1 - 2 * a))
    if not at(0.4999):
        return 1.0
    if at(floor):
        return floor
    lo, hi = np.log(floor), np.log(0.4999)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if at(np.exp(mid)) else (mid, hi)
    return float(np.exp(hi))


def _floor(c: Comparison) -> float:
    return 1.0 / (len(c.replicates) + 1) if c.interval_at is None and c.replicates is not None else 1e-12


def equivalence_p(c: Comparison, margin: float) -> float:
    """The p-value of two one-sided tests that the difference lies inside +-``margin``: the
    smallest ``a`` at which the ``1 - 2a`` interval (bootstrap or exact, as ``c`` has it) lies
    inside (the margin is symmetric, so a turned comparison gives the same p)."""
    if margin is None or not check_values("margin", margin, ndim=0) > 0:
        raise ParameterError(f"margin must be a positive number, got {margin!r}")
    return _smallest_tail(c, lambda lo, hi: -margin < lo and hi < margin, _floor(c))


def beyond_p(c: Comparison, margin: float) -> float:
    """The p-value that the difference lies beyond +-``margin`` (two-sided: twice the smallest
    tail at which the ``1 - 2a`` interval lies wholly on one side outside the margin)."""
    if margin is None or not check_values("margin", margin, ndim=0) > 0:
        raise ParameterError(f"margin must be a positive number, got {margin!r}")
    return min(1.0, 2 * _smallest_tail(c, lambda lo, hi: lo >= margin or hi <= -margin, _floor(c)))


def benchmark_margin(reference: float, null: float, share: float = 0.1) -> float:
    """A margin of equivalence that means something on this benchmark: ``share`` (10 %) of the
    spread between a metric's upper reference (the object mask, the trigger) and its null (the
    strongest null map), both measured here. Two methods within it are "alike" on this metric."""
    check_fraction("share", share)
    check_values("reference", reference, ndim=0)
    check_values("null", null, ndim=0)
    spread = abs(float(reference) - float(null))
    if not np.isfinite(spread) or spread == 0:
        raise ParameterError(f"the reference ({reference}) and the null ({null}) do not differ: no margin can be set")
    return share * spread


def reference_margin(reference, null, lower_is_better: bool = False, share: float = 0.1,
                     names: tuple[str, str] = ("the object mask", "a random map")) -> tuple[float | None, str]:
    """The margin of equivalence for one metric on this benchmark, and the sentence that states it:
    ``share`` of the lead of the upper reference's mean score (``reference``, per image) over the
    null's (``null``). None, said so, when the reference does not lead: then no margin means
    anything, and nothing on that metric can be refuted by equivalence."""
    check_values("reference", reference, ndim=(0, 1))
    check_values("null", null, ndim=(0, 1))
    check_fraction("share", share)
    ref, nul = float(np.mean(reference)), float(np.mean(null))
    lead = (nul - ref) if lower_is_better else (ref - nul)
    if not np.isfinite(lead) or lead <= 0:
        return None, f"{names[0]} does not beat {names[1]} here ({ref:.3g} against {nul:.3g})"
    return benchmark_margin(ref, nul, share), f"{100 * share:.0f} % of {names[0]}'s lead over {names[1]}, {lead:.3g}"


def size_beside(c: Comparison, paper_gap: float, sign: float = 1.0, scale: float = 1.0, unit: str = "") -> str:
    """How the difference found here compares with the paper's gap, in the claimed direction:
    "smaller than", "larger than", or "as large as" (the 95 % interval contains it); numbers
    multiplied by ``scale`` for display (100: points)."""
    check_values("paper_gap", paper_gap, ndim=0)
    check_values("scale", scale, ndim=0)
    mean, (lo, hi) = sign * c.mean, sorted((sign * c.low, sign * c.high))
    gap = abs(float(paper_gap))
    word = "smaller than" if hi < gap else "larger than" if lo > gap else "as large as"
    return f"{word} the paper's gap ({scale * mean:+.3g}{unit} here, {scale * gap:+.3g}{unit} in the paper)"


@dataclass
class Verdict:
    verdict: str
    rule: str
    comparison: Comparison
    p_adjusted: float
    n_to_decide: int | None = None
    p_equivalence: float | None = None     # Holm-adjusted, when a margin was given
    size: str = ""                         # beside the paper's gap, when the paper gives one

    def describe(self, fmt: str = "{:+.3f}") -> str:
        c = self.comparison
        units = f"{c.n} images" if c.n_units == c.n else f"{c.n} values in {c.n_units} clusters"
        text = (f"{self.verdict}: difference {fmt.format(c.mean)} "
                f"[{fmt.format(c.low)}, {fmt.format(c.high)}] ({100 * c.level:.0f} % interval, {units}; "
                f"Holm-adjusted p = {self.p_adjusted:.3g}; {self.rule})")
        if self.size:
            text += f"; {self.size}"
        if self.verdict == OPEN and self.n_to_decide:
            text += f"; about {self.n_to_decide} {'clusters' if c.n_units != c.n else 'images'} would decide it"
        return text


def judge(comparison: Comparison, kind: str = "better", margin: float | None = None,
          effect: float | None = None, p_adjusted: float | None = None, alpha: float = 0.05,
          p_equivalence: float | None = None, paper_gap: float | None = None,
          margin_note: str = "", p_beyond: float | None = None) -> Verdict:
    """The verdict on one claim (see the module's doc). ``comparison`` is of the claimed-better
    minus the other (``kind="better"`` / ``"above"``; for ``"below"`` give it as is, the sign is
    turned here); ``p_adjusted`` / ``p_equivalence`` / ``p_beyond``: the claim's Holm-adjusted p
    of the directional test, of the equivalence test and (``"alike"``) of a difference beyond the
    margin (default: their own, unadjusted); ``paper_gap``: the size the
    paper reports, set beside the one found here; ``effect``: the size to plan the n that would
    decide an open claim (default: the paper's gap, else the margin)."""
    check_choice("kind", kind, KINDS)
    check_fraction("alpha", alpha)
    for name, v in (("p_adjusted", p_adjusted), ("p_equivalence", p_equivalence), ("p_beyond", p_beyond)):
        if v is not None:
            check_values(name, v, low=0, high=1, ndim=0)
    if margin is not None and not check_values("margin", margin, ndim=0) > 0:
        raise ParameterError(f"margin must be a positive number, got {margin!r}")
    c = comparison
    p = c.p if p_adjusted is None else float(p_adjusted)
    sign = -1.0 if kind == "below" else 1.0
    mean, (lo, hi) = sign * c.mean, sorted((sign * c.low, sign * c.high))
    pe = None
    if margin is not None:
        pe = equivalence_p(c, margin) if p_equivalence is None else float(p_equivalence)
    why = f" ({margin_note})" if margin_note else ""
    rule = f"{c.test}, alpha {alpha}" + (f", margin {margin:.3g}{why}" if margin is not None else "")
    plan = effect if effect is not None else paper_gap if paper_gap is not None else margin
    need = n_needed(plan, c.sd, alpha)
    size = size_beside(c, paper_gap, sign) if paper_gap is not None else ""
    if kind == "alike":
        if margin is None:
            raise ParameterError("a claim that two things are alike needs margin= (what counts as alike)")
        if pe < alpha:
            return Verdict(HOLDS, rule + " (equivalence: two one-sided tests, Holm-adjusted)", c, p,
                           p_equivalence=pe, size=size)
        beyond = beyond_p(c, margin) if p_beyond is None else float(p_beyond)
        if beyond < alpha:
            return Verdict(FAILS, rule + " (a difference beyond the margin)", c, p, p_equivalence=pe, size=size)
        return Verdict(OPEN, rule, c, p, need, p_equivalence=pe, size=size)
    if p < alpha and mean > 0:
        return Verdict(HOLDS, rule, c, p, p_equivalence=pe, size=size)
    if p < alpha and mean < 0:
        return Verdict(FAILS, rule + " (significant in the other direction)", c, p, p_equivalence=pe, size=size)
    if pe is not None and pe < alpha:
        return Verdict(FAILS, rule + " (equivalent within the margin: two one-sided tests, Holm-adjusted)", c, p,
                       p_equivalence=pe, size=size)
    return Verdict(OPEN, rule, c, p, need, p_equivalence=pe, size=size)


def judge_family(comparisons: dict, kinds: dict | None = None, margins: dict | None = None,
                 effects: dict | None = None, alpha: float = 0.05) -> dict:
    """Verdicts for a chapter's family of claims ``{name: Comparison}``, Holm-corrected together
    (the directional tests over every claim; the equivalence tests over the claims with a margin)."""
    names = list(comparisons)
    kinds, margins, effects = kinds or {}, margins or {}, effects or {}
    adj = holm([comparisons[k].p for k in names]) if names else []
    eq, beyond = margin_family([(comparisons[k], kinds.get(k, "better"), margins.get(k)) for k in names])
    return {k: judge(comparisons[k], kinds.get(k, "better"), margins.get(k), effects.get(k), p_adjusted=a,
                     alpha=alpha, p_equivalence=e, p_beyond=bp) for k, a, e, bp in zip(names, adj, eq, beyond)}


def margin_family(items) -> tuple[list, list]:
    """The tests against a margin of a family of claims ``[(comparison, kind, margin)]``, Holm-
    corrected together: equivalence for every claim with a margin, and a difference beyond it for
    the "alike" ones. Returns the adjusted (equivalence, beyond) p per claim (None where untested)."""
    tests = []
    for i, (c, kind, margin) in enumerate(items):
        if margin is not None:
            tests.append((i, "eq", equivalence_p(c, margin)))
            if kind == "alike":
                tests.append((i, "beyond", beyond_p(c, margin)))
    eq, beyond = [None] * len(items), [None] * len(items)
    for (i, what, _), a in zip(tests, holm([t[2] for t in tests]) if tests else []):
        (eq if what == "eq" else beyond)[i] = float(a)
    return eq, beyond


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
    margin: float | None = None      # of equivalence, meaningful on this benchmark (benchmark_margin)
    effect: float | None = None      # the size to plan for (the n that would decide it); default paper_gap
    paper: str = ""
    setting: str = ""
    scale: float = 1.0
    unit: str = ""
    group: str = ""                  # claims of one statement over many methods, summarised together
    control: float | None = None     # a random map's score at this setting: at DEGENERATE or more, no verdict
    paper_gap: float | None = None   # the size the paper reports, set beside the one found here
    margin_note: str = ""            # where the margin comes from, stated in the rule
    degenerate: str = ""             # why the setting measures nothing here (no verdict), when it does not


def claims_table(claims: list[Claim], alpha: float = 0.05) -> "pd.DataFrame":
    """Judge a chapter's family of claims together and tabulate each with its rule, n, interval,
    adjusted p, its size beside the paper's and, when not resolved, the n that would decide it.
    Holm's correction runs over the claims that are tested: a claim on a degenerate setting gets
    no verdict and does not enter the family. The tests against a margin (equivalence, or a
    difference beyond it) are Holm-corrected together, at the same level."""
    import pandas as pd
    check_fraction("alpha", alpha)
    if not claims:
        return pd.DataFrame(columns=["claim", "model", "verdict"])
    tested = [i for i, c in enumerate(claims) if not (c.degenerate or c.control is not None and degenerate(c.control))]
    adj = dict(zip(tested, holm([claims[i].comparison.p for i in tested]) if tested else []))
    eq, beyond = margin_family([(claims[i].comparison, claims[i].kind, claims[i].margin) for i in tested])
    eq, beyond = dict(zip(tested, eq)), dict(zip(tested, beyond))
    any_margin = any(c.margin is not None for c in claims)
    rows = []
    for i, c in enumerate(claims):
        k = c.comparison
        sign = -1.0 if c.kind == "below" else 1.0
        if i in adj:
            p = adj[i]
            v = judge(k, c.kind, c.margin, c.effect, p_adjusted=p, alpha=alpha, p_equivalence=eq[i],
                      paper_gap=None, margin_note=c.margin_note, p_beyond=beyond[i])
        else:
            p = float("nan")
            why = c.degenerate or f"a random map scores {100 * c.control:.0f} % here"
            point = f" {_point_note(k.mean)}" if k.test.endswith(_point_note(k.mean)) else ""
            v = Verdict(UNJUDGED, f"{why}: the setting is degenerate (not tested, not in the Holm family){point}", k, p)
        f = _interval_format(k, c.scale)
        units = f"{k.n}" if k.n_units == k.n else f"{k.n} ({k.n_units} clusters)"
        size = size_beside(k, c.paper_gap, sign, c.scale, c.unit) if c.paper_gap is not None else ""
        row = {"claim": c.claim, "model": c.model, "setting": c.setting, "paper": c.paper, "group": c.group,
               "difference [95 % CI]": f"{f(k.mean)} [{f(k.low)}, {f(k.high)}]{c.unit}",
               "n": units, "p (Holm)": float(f"{p:.3g}"), "verdict": v.verdict,
               "size beside the paper's": size,
               "rule": v.rule, "n to decide": v.n_to_decide if v.verdict == OPEN else None}
        if any_margin:
            row["p equivalence (Holm)"] = float(f"{v.p_equivalence:.3g}") if v.p_equivalence is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


SPEC = ("claim", "model", "kind", "paper", "setting", "scale", "unit", "degenerate", "value", "n")


def claims_frames(claims: list[Claim]) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Claims tested by :func:`bootstrap_statistic`, as two tables to commit: one row per claim
    (what it says, its value and n: :data:`SPEC`) and its bootstrap replicates, one column per
    claim (named by its row number). :func:`claims_from_frames` reads them back."""
    import pandas as pd
    for c in claims:
        if c.comparison.replicates is None or c.margin is not None or c.control is not None:
            raise ParameterError(f"claim {c.claim!r} ({c.model}) is not a bootstrap of a statistic without margin or control")
    spec = pd.DataFrame([{"claim": c.claim, "model": c.model, "kind": c.kind, "paper": c.paper, "setting": c.setting,
                          "scale": c.scale, "unit": c.unit, "degenerate": c.degenerate, "value": c.comparison.mean,
                          "n": c.comparison.n} for c in claims], columns=list(SPEC))
    draws = pd.DataFrame({str(i): c.comparison.replicates for i, c in enumerate(claims)})
    return spec, draws


def claims_from_frames(spec: "pd.DataFrame", draws: "pd.DataFrame", level: float = 0.95) -> list[Claim]:
    """The claims :func:`claims_frames` wrote, each rebuilt with :func:`from_replicates`."""
    missing = [c for c in SPEC if c not in spec.columns]
    if missing or len(draws.columns) != len(spec):
        raise ParameterError(f"not a table of claims_frames: missing columns {missing}, {len(draws.columns)} draws "
                             f"for {len(spec)} claims")
    out = []
    for i, row in enumerate(spec.fillna({"paper": "", "setting": "", "unit": "", "degenerate": ""}).itertuples(index=False)):
        k = from_replicates(float(row.value), draws[str(i)].to_numpy(np.float64), int(row.n), level)
        out.append(Claim(row.claim, row.model, k, kind=row.kind, paper=row.paper, setting=row.setting,
                         scale=float(row.scale), unit=row.unit, degenerate=row.degenerate))
    return out


def _interval_format(k: Comparison, scale: float = 1.0):
    """Three decimals (three significant digits for a scaled unit), more where an interval of
    some width would otherwise print as a point ([+0.875, +0.875]) and read as no spread at all."""
    for digits in range(3, 9):
        f = (lambda x, d=digits: f"{scale * x:+.{d}g}") if scale != 1 else (lambda x, d=digits: f"{x:+.{d}f}")
        if k.high <= k.low or f(k.low) != f(k.high):
            return f
    return f


# Why a cell of a claims table is empty, said once under the table instead of a raw NaN.
EMPTY_BECAUSE = {
    "p (Holm)": "not tested (the setting is degenerate: outside the Holm family)",
    "p equivalence (Holm)": "the claim has no equivalence margin",
    "n to decide": "the claim is resolved (or no size to plan for is known)",
    "size beside the paper's": "the paper reports no size to set beside it",
    "this run": "this run does not make the claim",
    "verdict (default run)": "the default run does not make the claim",
    "difference [95 % CI] (default run)": "the default run does not make the claim",
}


def readable(table, because: dict | None = None):
    """``(table, note)``: the table with each empty cell (NaN, None, <NA>) shown as "—", whole
    numbers that pandas made float by an empty cell shown whole again, and one Markdown line
    saying why each column has empty cells (``because`` adds or overrides reasons)."""
    import pandas as pd
    reasons = {**EMPTY_BECAUSE, **(because or {})}
    out, said = table.copy(), []
    for c in out.columns:
        col = out[c]
        if not col.isna().any():
            continue
        known = col.dropna()
        if pd.api.types.is_float_dtype(col) and len(known) and (known % 1 == 0).all():
            col = col.astype("Int64")
        out[c] = col.astype(object).where(col.notna(), "—")
        said.append(f"*{c}*: {reasons.get(c, 'does not apply to that row')}")
    note = ("— marks an empty cell. " + "; ".join(said) + ".") if said else ""
    return out, note


def show(table, because: dict | None = None) -> None:
    """Display ``table`` through :func:`readable`, its note under it."""
    from IPython.display import Markdown, display
    shown, note = readable(table, because)
    display(shown)
    if note:
        display(Markdown(note))


def findings(table, n_label: str = "images", counted: str = "methods") -> str:
    """Markdown bullets generated from a claims table (so the prose never goes stale when the
    chapter is re-run on other data): one per claim, and one per (group, model) that counts the
    verdicts of a statement made for many methods (``counted``) at once."""
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
            parts = [f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, OPEN, UNJUDGED) if counts.get(v, 0)]
            lines.append(f"- **{group}**, {r['model']}{where}: of {len(sub)} {counted}, " + ", ".join(parts)
                         + f" (each {counted.rstrip('s')}'s row is in the table).")
            continue
        text = (f"- **{r['claim']}**, {r['model']}{where}: **{r['verdict']}**; difference "
                f"{r['difference [95 % CI]']}, n = {r['n']}")
        p = r["p (Holm)"]
        text += f", Holm-adjusted p = {p:.3g}" if np.isfinite(p) else " (not tested: the setting is degenerate)"
        size = r.get("size beside the paper's")
        if r["verdict"] == HOLDS and isinstance(size, str) and size:
            text += f"; {size}"
        need = r.get("n to decide")
        if r["verdict"] == OPEN and need is not None and np.isfinite(need) and need > 0:
            text += f"; about {int(need)} {n_label} would decide it"
        lines.append(text + ".")
    return "\n".join(lines)


# The reasons a verdict moved between two editions, read from the rules the two tables record.
_WHY = (
    ("equivalent within the margin", HOLDS,
     "size no longer turns into a verdict: the paper's gap was the margin of 'does not hold'; "
     "the difference is significant in the claimed direction, its size is reported beside the paper's"),
    ("equivalent within the margin", OPEN,
     "'does not hold' needs evidence: the paper's ImageNet gap is no longer a margin of equivalence "
     "on this benchmark, and the difference is not significant either way"),
)


def changes(previous, current, key=("claim", "model", "setting")) -> "pd.DataFrame":
    """The claims whose verdict differs between two claims tables (the last edition's and this
    one), with the reason read from their rules: before, after, why. Claims only in one of the
    two are listed as added or no longer tested."""
    import pandas as pd
    key = [k for k in key if k in previous.columns and k in current.columns]
    cols = key + ["verdict", "rule"] + (["p (Holm)"] if "p (Holm)" in previous and "p (Holm)" in current else [])
    prev = previous[cols].drop_duplicates(key).fillna({k: "" for k in key})
    cur = current[cols].drop_duplicates(key).fillna({k: "" for k in key})
    both = prev.merge(cur, on=key, how="outer", suffixes=(" before", " now"), indicator=True)
    rows = []
    for _, r in both.iterrows():
        before, now = r.get("verdict before"), r.get("verdict now")
        if r["_merge"] == "both" and before == now:
            continue
        if r["_merge"] == "left_only":
            why = "not in this edition (dropped, or reframed under another name: see the chapter's text)"
        elif r["_merge"] == "right_only":
            why = "a claim new in this edition"
        elif now == UNJUDGED:
            why = "no verdict: " + str(r["rule now"]).split(": the setting is degenerate")[0]
        elif before == UNJUDGED:
            why = "the setting is no longer degenerate: " + str(r["rule now"])
        else:
            old_rule = str(r["rule before"])
            why = next((w for frag, to, w in _WHY if frag in old_rule and now == to), None)
            if why is None and "p (Holm) before" in r:
                why = (f"the Holm-adjusted p moved from {r['p (Holm) before']:.3g} to {r['p (Holm) now']:.3g} "
                       "across the level: the family changed (claims on degenerate settings, or timings, left it)")
            elif why is None:
                why = f"the rule now reads: {r['rule now']}"
        rows.append({**{k: r[k] for k in key}, "before": before if isinstance(before, str) else "—",
                     "now": now if isinstance(now, str) else "—", "why": why})
    return pd.DataFrame(rows, columns=key + ["before", "now", "why"])


def since_last_edition(notebook: str, current, name: str = "verdicts",
                       key=("claim", "model", "setting"), this_run: dict | None = None) -> tuple[str, "pd.DataFrame"]:
    """A sentence and the table of :func:`changes` between the verdicts a chapter states now
    (``current``) and those of the book's previous edition (``results/<notebook>/previous_edition/``,
    kept by ``scripts/new_edition.py``). The sentence says when no edition is kept, and when
    ``this_run`` (the run's parameters) is not the book's default run: the editions are of that
    run, so another run is not compared with them."""
    import pandas as pd
    from .results import differs_from_default, previous_edition
    if this_run is not None and differs_from_default(notebook, this_run):
        return ("This run is not the book's default run: its verdicts are not compared with the book's "
                "previous edition, which is of that run.", pd.DataFrame())
    prev = previous_edition(notebook, name)
    if prev is None:
        return "No previous edition is kept: nothing to compare.", pd.DataFrame()
    table, record = prev
    ch = changes(table, current, key=key)
    why = f" ({record['note']})" if record.get("note") else ""
    return (f"Against the previous edition (commit {record.get('commit', '?')}{why}): {len(ch)} of "
            f"{len(current)} verdicts differ or are new or gone.", ch)


def rank_intervals(replicates, higher_is_better: bool = True, level: float = 0.95):
    """Point ranks (of the full-sample means) and rank intervals from bootstrap replicates
    (rows: replicates, columns: methods). The interval's ends are ranks some replicate gave (the
    outward order statistics, never an interpolation such as 6.025: whole ranks, or halves where
    methods tie). It is widened, if need be, to contain the point rank, so a table never shows a
    rank outside its own interval."""
    import pandas as pd
    check_values("replicates", replicates, ndim=2)
    check_fraction("level", level)
    reps = pd.DataFrame(replicates)
    ranks = reps.rank(axis=1, ascending=not higher_is_better, method="average")
    lo = ranks.quantile((1 - level) / 2, interpolation="lower")
    hi = ranks.quantile((1 + level) / 2, interpolation="higher")
    point = reps.mean().rank(ascending=not higher_is_better, method="average")
    return pd.DataFrame({"rank": point, "low": np.minimum(lo, point), "high": np.maximum(hi, point)})


def bootstrap_ranks(wide, higher_is_better: bool = True, n_boot: int = 1000, seed=0,
                    level: float = 0.95):
    """Ranks of the columns of ``wide`` (rows: images, columns: methods) by their mean, with
    intervals from a bootstrap over the images (the same resampled images for every method).
    ``seed``: an integer or a ``numpy.random.Generator`` to draw from. Columns: rank (1 = best),
    low, high, mean."""
    import pandas as pd
    check_positive_int("n_boot", n_boot)
    wide = pd.DataFrame(wide)
    if len(wide) == 0:
        raise ParameterError("no images to rank by")
    check_values("wide", wide, ndim=2)
    check_fraction("level", level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(wide), size=(n_boot, len(wide)))
    reps = pd.DataFrame(wide.to_numpy(dtype=float)[idx].mean(1), columns=wide.columns)
    out = rank_intervals(reps, higher_is_better=higher_is_better, level=level)
    out["mean"] = wide.mean()
    return out


DEGENERATE = 0.5


def degenerate(control_rate: float, threshold: float = DEGENERATE) -> bool:
    """A setting in which a *random* map reaches ``threshold`` (an Impact Score of 50 %) or more
    measures the removal, not the explanation: no verdict may rest on it."""
    return bool(np.isfinite(control_rate) and control_rate >= threshold)
