"""The shared verdict rule: known answers for intervals, tests, corrections and verdicts."""
import numpy as np
import pytest

from xailib import verdicts as v
from xailib.errors import ParameterError


def test_proportion_intervals_do_not_collapse_at_the_ends():
    p, lo, hi = v.proportion(16, 16, method="exact")
    assert p == 1 and hi == 1 and lo == pytest.approx(0.025 ** (1 / 16))   # Clopper-Pearson at k = n
    p, lo, hi = v.proportion(16, 16)                       # Wilson: n / (n + z^2) at k = n
    assert lo == pytest.approx(16 / (16 + 1.959964 ** 2), abs=1e-4) and hi == pytest.approx(1.0)
    p, lo, hi = v.proportion(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi > 0.25
    with pytest.raises(ParameterError):
        v.proportion(11, 10)


def test_sign_flip_p_known_answers():
    assert v.sign_flip_p([1.0, 1.0]) == 0.5                # 2 of 4 sign patterns reach |2|
    assert v.sign_flip_p([1.0] * 5) == pytest.approx(2 / 32)
    assert v.sign_flip_p([1.0, -1.0]) == 1.0
    assert v.sign_flip_p([0.0, 0.0]) == 1.0
    big = v.sign_flip_p(np.sqrt(np.arange(2, 42)), n_perm=999)   # Monte Carlo: (0 + 1) / (999 + 1)
    assert big == pytest.approx(1 / 1000)
    # on a lattice the test is exact: +-1 values give the two-sided sign (binomial) test
    from scipy import stats
    s = np.r_[np.ones(30), -np.ones(12)]
    assert v.sign_flip_p(s) == pytest.approx(stats.binomtest(30, 42).pvalue)
    assert v.sign_flip_p(np.ones(40)) == pytest.approx(2 * 0.5 ** 40)
    # 0 / 1 outcomes against shares of 8 random maps: exact, and what sampling sign patterns estimates
    rng = np.random.default_rng(0)
    d = (rng.random(60) < 0.55) - rng.integers(0, 9, 60) / 8
    signs = rng.choice([-1.0, 1.0], size=(200_000, 60))
    sampled = (np.abs(signs @ d) >= abs(d.sum()) * (1 - 1e-12)).mean()
    assert v.sign_flip_p(d) == pytest.approx(sampled, abs=0.004)


def test_holm_known_answer():
    assert np.allclose(v.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.allclose(v.holm([0.5]), [0.5])


def test_n_needed_known_answer():
    # the review's example: spread 0.05, gap 0.01 -> about 200 images
    assert v.n_needed(0.01, 0.05) == int(np.ceil(((1.959964 + 0.841621) * 5) ** 2))
    assert v.n_needed(0.0, 0.05) is None
    assert v.n_needed(0.1, 0.0) is None          # no spread: nothing to plan


def test_clustering_widens_the_interval():
    rng = np.random.default_rng(0)
    cluster_effect = np.repeat(rng.normal(0.2, 1.0, 10), 10)      # 10 units seen 10 times each
    d = cluster_effect + rng.normal(0, 0.05, 100)
    ids = np.repeat(np.arange(10), 10)
    naive = v.paired(d)
    clustered = v.paired(d, clusters=ids)
    assert clustered.n_units == 10 and naive.n_units == 100
    assert (clustered.high - clustered.low) > 2 * (naive.high - naive.low)
    assert clustered.p > naive.p


def test_verdicts_by_the_rule():
    rng = np.random.default_rng(1)
    up = v.paired(1.0 + rng.normal(0, 0.1, 30))
    down = v.paired(-1.0 + rng.normal(0, 0.1, 30))
    flat = v.paired(rng.normal(0, 0.01, 60))
    noisy = v.paired(rng.normal(0.05, 1.0, 8))
    assert v.judge(up).verdict == v.HOLDS
    assert v.judge(down).verdict == v.FAILS
    assert v.judge(down, kind="below").verdict == v.HOLDS
    assert v.judge(flat, margin=0.05).verdict == v.FAILS           # equivalent: the claimed gap is not there
    assert v.judge(flat).verdict == v.OPEN                         # no margin: merely not significant
    open_ = v.judge(noisy, effect=0.1)
    assert open_.verdict == v.OPEN and open_.n_to_decide == v.n_needed(0.1, noisy.sd)
    assert "would decide it" in open_.describe()
    assert v.judge(flat, kind="alike", margin=0.05).verdict == v.HOLDS
    assert v.judge(up, kind="alike", margin=0.05).verdict == v.FAILS
    assert v.judge(noisy, kind="alike", margin=0.05).verdict == v.OPEN


def test_family_is_holm_corrected():
    rng = np.random.default_rng(2)
    comps = {f"c{i}": v.paired(0.3 + rng.normal(0, 1, 40)) for i in range(5)}
    out = v.judge_family(comps)
    adj = v.holm([c.p for c in comps.values()])
    assert [out[k].p_adjusted for k in comps] == pytest.approx(list(adj))
    assert all(o.p_adjusted >= comps[k].p for k, o in out.items())


def test_bad_input():
    with pytest.raises(ParameterError, match="NaN"):
        v.paired([0.1, np.nan])
    with pytest.raises(ParameterError, match="clusters"):
        v.paired([0.1, 0.2], clusters=[0])
    with pytest.raises(ParameterError, match="margin"):
        v.judge(v.paired([0.1, 0.2, 0.3]), kind="alike")
    with pytest.raises(ParameterError, match="kind"):
        v.judge(v.paired([0.1, 0.2, 0.3]), kind="worse")


def test_paired_proportions_do_not_collapse_when_every_pair_agrees():
    # 16 of 16 hits for both methods: the bootstrap interval is [0, 0]; Newcombe's is about
    # +-(1 - Wilson's lower bound of 16 / 16) = +-0.194, and McNemar's exact p is 1
    c = v.paired(np.ones(16), np.ones(16))
    wilson_low = v.proportion(16, 16)[1]
    assert (c.low, c.high) == pytest.approx((wilson_low - 1, 1 - wilson_low), abs=1e-6)
    assert c.p == 1.0 and c.test == "exact McNemar test"
    assert np.ptp(c.replicates) == 0                        # what the bootstrap alone would have said


def test_mcnemar_and_newcombe_known_answers():
    a = np.r_[np.ones(8), np.zeros(2), np.ones(5), np.zeros(5)]   # 8 pairs only a hits, 2 only b
    b = np.r_[np.zeros(8), np.ones(2), np.ones(5), np.zeros(5)]
    c = v.paired(a, b)
    assert c.mean == pytest.approx(0.3)
    assert c.p == pytest.approx(2 * (1 + 10 + 45) / 2 ** 10)     # two-sided binomial, 8 of 10 discordant
    # the table (both 5, only a 8, only b 2, neither 5): phi's numerator 5*5 - 8*2 = 9 is not above
    # n / 2 = 10, so the continuity-corrected phi is 0 and the interval is the plain square-and-add
    la, ua = v.wilson(13 / 20, 20)
    lb, ub = v.wilson(7 / 20, 20)
    low = 0.3 - np.sqrt((13 / 20 - la) ** 2 + (ub - 7 / 20) ** 2)
    high = 0.3 + np.sqrt((7 / 20 - lb) ** 2 + (ua - 13 / 20) ** 2)
    assert (c.low, c.high) == pytest.approx((low, high))
    swapped = v.paired(b, a)                                    # antisymmetric
    assert (swapped.low, swapped.high) == pytest.approx((-c.high, -c.low))
    assert v.judge(c).rule.startswith("exact McNemar test")


def test_newcombe_interval_covers_at_its_level():
    # correlated pairs (p_a = 0.8, p_b = 0.7): the 95 % interval covers the true 0.1 in 93-98 % of samples
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(1000):
        u = rng.random(30)
        a = (u < 0.8).astype(float)
        b = ((u < 0.65) | ((u >= 0.8) & (rng.random(30) < 0.25))).astype(float)   # P(b) = 0.65 + 0.2 * 0.25 = 0.7
        c = v.paired(a, b, n_boot=10)
        covered += c.low <= 0.1 <= c.high
    assert 0.93 <= covered / 1000 <= 0.985


def test_one_proportion_against_a_reference_is_exact():
    c = v.paired(np.ones(10), 0.5)                          # 10 of 10 above 50 %: Wilson minus 0.5
    assert c.high == pytest.approx(0.5) and c.low == pytest.approx(v.proportion(10, 10)[1] - 0.5)
    assert c.p == pytest.approx(2 / 2 ** 10) and c.test == "exact binomial test"
    clustered = v.paired(np.ones(10), 0.5, clusters=np.repeat(np.arange(5), 2))
    assert clustered.n_units == 5 and clustered.low < c.low   # taken at the 5 distinct units
    assert v.paired([0.2, 0.7, 1.0], 0.5).test == "paired sign-flip test"   # not 0 / 1: bootstrap as before
    # against 0 or 1: one outcome the other way refutes the reference; none at all is no evidence
    assert v.paired(np.r_[np.ones(3), np.zeros(9)], 0.0).p == 0.0
    assert v.paired(np.zeros(12), 0.0).p == 1.0 and v.paired(np.ones(12), 1.0).p == 1.0
    assert v.judge(v.paired(np.ones(12), 0.0), "above").verdict == v.HOLDS


def test_clustered_paired_proportions_are_wider():
    a = np.r_[np.ones(30), np.zeros(10)]
    b = np.r_[np.zeros(20), np.ones(10), np.zeros(10)]
    ids = np.repeat(np.arange(10), 4)                       # 10 units seen 4 times each
    plain, clustered = v.paired(a, b), v.paired(a, b, clusters=ids)
    assert clustered.mean == plain.mean
    assert clustered.high - clustered.low > 1.5 * (plain.high - plain.low)
    assert clustered.test == "paired sign-flip test over clusters"


def test_proportion_of_clustered_values_is_wider():
    vals = np.r_[np.ones(15), np.zeros(5)]
    p, lo, hi = v.proportion_of(vals)
    assert (p, lo, hi) == pytest.approx(v.proportion(15, 20))
    same_units = np.repeat(np.arange(5), 4)                 # 5 clean images seen 4 times each
    pc, loc, hic = v.proportion_of(vals, same_units)
    assert pc == p and loc < lo and hic >= hi
    assert v.proportion_of(np.ones(16))[1] > 0.79           # does not collapse at 100 %
    with pytest.raises(ParameterError):
        v.proportion_of([0.5, 1.0])


def test_claims_table_applies_holm_and_states_n_to_decide():
    rng = np.random.default_rng(3)
    claims = [v.Claim("A beats B", "net", v.paired(0.5 + rng.normal(0, 0.1, 40)), effect=0.1),
              v.Claim("C beats D", "net", v.paired(rng.normal(0, 1, 10)), effect=0.1),
              v.Claim("E beats F", "net", v.paired(-0.5 + rng.normal(0, 0.1, 40)), group="many")]
    t = v.claims_table(claims)
    assert list(t.verdict) == [v.HOLDS, v.OPEN, v.FAILS]
    ps = [c.comparison.p for c in claims]
    assert np.allclose(t["p (Holm)"], [float(f"{x:.3g}") for x in v.holm(ps)])
    need = v.n_needed(0.1, claims[1].comparison.sd)
    assert t["n to decide"].iloc[1] == need and need > 10
    text = v.findings(t)
    assert "**A beats B**, net: **holds**" in text and f"about {need} images" in text
    assert "**many**, net: of 1 methods, 1 does not hold" in text


def test_rank_intervals_contain_their_point_rank():
    import pandas as pd
    rng = np.random.default_rng(0)
    reps = pd.DataFrame({"a": rng.normal(1.0, 0.01, 500), "b": rng.normal(0.0, 0.01, 500),
                         "c": np.r_[np.full(490, 0.5), np.full(10, -30.0)]})   # skewed: mean below b's
    ranks = reps.rank(axis=1, ascending=False)
    assert ranks["c"].quantile(0.975) == 2                  # the plain interval would miss the point rank 3
    r = v.rank_intervals(reps)
    assert list(r["rank"]) == [1, 2, 3]
    assert ((r["low"] <= r["rank"]) & (r["rank"] <= r["high"])).all()
    assert r.loc["c", "high"] == 3 and r.loc["c", "low"] == 2


def test_rank_interval_ends_are_ranks_a_replicate_gave():
    import pandas as pd
    # 40 replicates: c ranks first once, second once (between a and b), last otherwise; d ties b
    c = np.r_[10.0, 0.5, np.full(38, -10.0)]
    reps = pd.DataFrame({"a": np.ones(40), "b": np.zeros(40), "c": c, "d": np.zeros(40)})
    plain = reps.rank(axis=1, ascending=False).quantile(0.025)
    assert plain["c"] == pytest.approx(1.975)             # an interpolated end: no replicate gave it
    r = v.rank_intervals(reps)
    assert r.loc["c", "low"] == 1 and r.loc["c", "high"] == 4
    assert ((r[["low", "high"]] * 2) % 1 == 0).all().all()        # whole ranks, or halves for ties
    assert r.loc["b", "rank"] == r.loc["d", "rank"] == 2.5 and r.loc["b", "low"] in (2.5, 3.5)


def test_degenerate_settings():
    assert v.degenerate(0.5) and v.degenerate(1.0)
    assert not v.degenerate(0.49) and not v.degenerate(float("nan"))


def test_no_verdict_on_a_degenerate_setting():
    rng = np.random.default_rng(3)
    strong = v.paired(0.5 + rng.normal(0, 0.1, 40))
    t = v.claims_table([v.Claim("A beats B", "net", strong, control=0.6),
                        v.Claim("A beats B", "net2", strong, control=0.1)])
    assert list(t.verdict) == [v.UNJUDGED, v.HOLDS]
    assert "degenerate" in t.rule.iloc[0] and "60 %" in t.rule.iloc[0]
    assert "no verdict (degenerate setting)" in v.findings(t)


# -- direction and size judged apart (issue 27) ------------------------------------------------

def _uniform(lo, hi, n=4001):
    """A comparison whose bootstrap replicates are evenly spread over [lo, hi] (known quantiles)."""
    reps = np.linspace(lo, hi, n)
    return v.Comparison(float(reps.mean()), lo, hi, 0.5, 1.0, 20, 20, 0.95, reps)


def test_equivalence_and_beyond_p_known_answers():
    # replicates uniform on [-1, 1]: the 1 - 2a interval is [-1 + 2a, 1 - 2a], inside +-0.5 from a = 0.25
    assert v.equivalence_p(_uniform(-1, 1), 0.5) == pytest.approx(0.25, abs=1e-3)
    # uniform on [0, 2]: the interval lies wholly above +0.5 from a = 0.25, so p = 2 * 0.25
    assert v.beyond_p(_uniform(0, 2), 0.5) == pytest.approx(0.5, abs=2e-3)
    # every replicate inside the margin: the smallest share the bootstrap resolves
    assert v.equivalence_p(_uniform(-0.1, 0.1), 0.5) == pytest.approx(1 / 4002)
    assert v.equivalence_p(_uniform(0.6, 0.9), 0.5) == 1.0
    with pytest.raises(ParameterError, match="margin"):
        v.equivalence_p(_uniform(-1, 1), 0.0)


def test_a_significant_difference_below_the_papers_gap_holds_and_says_smaller():
    rng = np.random.default_rng(5)
    c = v.paired(0.026 + rng.normal(0, 0.02, 40))          # well inside the paper's gap of 0.0746
    out = v.judge(c, paper_gap=0.0746)
    assert out.verdict == v.HOLDS
    assert out.size.startswith("smaller than the paper's gap") and "+0.0746 in the paper" in out.size
    # the same difference with the paper's gap as a margin used to read "does not hold"; a
    # margin that means something here (well below the difference) leaves it holding
    assert v.judge(c, margin=0.0746, paper_gap=0.0746).verdict == v.HOLDS
    big = v.judge(v.paired(0.3 + rng.normal(0, 0.02, 40)), paper_gap=0.0746)
    assert big.verdict == v.HOLDS and big.size.startswith("larger than")
    t = v.claims_table([v.Claim("A beats B", "net", c, paper_gap=0.0746, scale=100, unit=" pts")])
    assert t["verdict"].iloc[0] == v.HOLDS and "+7.46 pts in the paper" in t["size beside the paper's"].iloc[0]
    assert "smaller than the paper's gap" in v.findings(t)


def test_does_not_hold_needs_evidence():
    rng = np.random.default_rng(6)
    flat = v.paired(rng.normal(0, 0.01, 60))
    assert v.judge(flat, paper_gap=0.05).verdict == v.OPEN           # a paper's gap alone refutes nothing
    assert v.judge(flat, margin=0.05).verdict == v.FAILS             # equivalence inside a stated margin does
    assert "two one-sided tests" in v.judge(flat, margin=0.05).rule


def test_equivalence_is_judged_at_the_adjusted_level():
    # ten claims, each equivalent at the unadjusted level only (TOST p about 0.02)
    claims = [v.Claim(f"A{i} beats B", "net", _uniform(-0.52, 0.52), margin=0.5) for i in range(10)]
    alone = v.judge(claims[0].comparison, margin=0.5)
    assert alone.verdict == v.FAILS and alone.p_equivalence < 0.05
    t = v.claims_table(claims)
    assert (t.verdict == v.OPEN).all()
    assert (t["p equivalence (Holm)"] > 0.05).all()
    # and superiority in the same family is Holm-corrected as before
    assert np.allclose(t["p (Holm)"], 1.0)


def test_alike_claims_in_the_margin_family():
    rng = np.random.default_rng(7)
    far = v.paired(0.4 + rng.normal(0, 0.05, 40))
    near = v.paired(rng.normal(0, 0.01, 40))
    t = v.claims_table([v.Claim("far alike", "net", far, kind="alike", margin=0.05),
                        v.Claim("near alike", "net", near, kind="alike", margin=0.05)])
    assert list(t.verdict) == [v.FAILS, v.HOLDS]


def test_a_degenerate_claim_stays_out_of_the_holm_family():
    rng = np.random.default_rng(8)
    a = v.paired(0.2 + rng.normal(0, 0.5, 30))
    t = v.claims_table([v.Claim("A beats B", "net", a),
                        v.Claim("A beats B", "net2", a, control=0.9)])
    assert t["p (Holm)"].iloc[0] == float(f"{a.p:.3g}")            # a family of one
    assert t.verdict.iloc[1] == v.UNJUDGED and np.isnan(t["p (Holm)"].iloc[1])
    assert "not tested" in v.findings(t)


def test_a_continuous_score_at_one_is_not_an_outcome():
    ones = np.ones(12)
    assert v.paired(ones, 0.5).test == "exact binomial test"
    c = v.paired(ones, 0.5, outcomes=False)
    assert c.test.startswith("paired sign-flip test") and c.p == pytest.approx(2 / 2 ** 12)
    assert (c.low, c.high) == (0.5, 0.5) and "the interval is that point" in c.test   # said, not hidden
    spread = v.paired(np.r_[np.ones(11), 0.9], 0.5, outcomes=False)
    assert spread.test == "paired sign-flip test" and spread.low < spread.high
    with pytest.raises(ParameterError, match="0 / 1"):
        v.paired(np.full(5, 0.3), 0.5, outcomes=True)


def test_an_interval_of_some_width_never_prints_as_a_point():
    """Three images a few ten-thousandths apart once printed "+0.875 [+0.875, +0.875]", which reads
    as no spread at all; the table widens its digits until the ends differ, and a true point stays one."""
    narrow = v.paired(np.array([0.8749, 0.8752, 0.8751]))
    cell = v.claims_table([v.Claim("A beats B", "net", narrow)])["difference [95 % CI]"][0]
    low, high = cell.split("[")[1].rstrip("]").split(", ")
    assert narrow.low < narrow.high and low != high and len(low) > len("+0.875")
    point = v.claims_table([v.Claim("A beats B", "net", v.paired(np.full(6, 0.875), outcomes=False))])
    assert point["difference [95 % CI]"][0] == "+0.875 [+0.875, +0.875]"
    assert "the interval is that point" in point["rule"][0]
    unjudged = v.claims_table([v.Claim("A beats B", "net", v.paired(np.full(6, 0.875), outcomes=False),
                                       degenerate="its map never moves")])
    assert unjudged.verdict[0] == v.UNJUDGED and "the interval is that point" in unjudged["rule"][0]


def test_changes_between_editions_name_their_reason():
    import pandas as pd
    old = pd.DataFrame({"claim": ["A beats B", "C beats D", "timing"], "model": ["n"] * 3, "setting": [""] * 3,
                        "verdict": [v.FAILS, v.HOLDS, v.HOLDS],
                        "rule": ["paired sign-flip test, alpha 0.05, margin 0.07 (equivalent within the margin)",
                                 "paired sign-flip test, alpha 0.05", "paired sign-flip test, alpha 0.05"]})
    new = pd.DataFrame({"claim": ["A beats B", "C beats D", "E new"], "model": ["n"] * 3, "setting": [""] * 3,
                        "verdict": [v.HOLDS, v.HOLDS, v.OPEN], "rule": ["paired sign-flip test, alpha 0.05"] * 3})
    ch = v.changes(old, new).set_index("claim")
    assert list(ch.index) == ["A beats B", "E new", "timing"]
    assert ch.loc["A beats B", "before"] == v.FAILS and ch.loc["A beats B", "now"] == v.HOLDS
    assert "size no longer turns into a verdict" in ch.loc["A beats B", "why"]
    assert ch.loc["timing", "now"] == "—" and "not in this edition" in ch.loc["timing", "why"]
    assert "new" in ch.loc["E new", "why"]
    assert v.changes(new, new).empty


def test_reference_margin_known_answers():
    m, note = v.reference_margin([0.8, 0.9], [0.2, 0.3])           # lead 0.6
    assert m == pytest.approx(0.06) and "10 % of the object mask's lead over a random map, 0.6" == note
    m, _ = v.reference_margin([0.1, 0.1], [0.5, 0.5], lower_is_better=True)
    assert m == pytest.approx(0.04)
    m, note = v.reference_margin([0.33], [0.16], lower_is_better=True)   # the reference loses: no margin
    assert m is None and "does not beat" in note


def test_a_setting_whose_reference_loses_to_the_null_gets_no_verdict():
    rng = np.random.default_rng(9)
    strong = v.paired(0.5 + rng.normal(0, 0.1, 40))
    margin, note = v.reference_margin([0.33], [0.16], lower_is_better=True)
    t = v.claims_table([v.Claim("A beats B", "net", strong, degenerate="" if margin else note),
                        v.Claim("A beats C", "net", strong)])
    assert list(t.verdict) == [v.UNJUDGED, v.HOLDS]
    assert "does not beat a random map" in t.rule.iloc[0] and "degenerate" in t.rule.iloc[0]


def test_empty_cells_read_as_a_dash_with_their_reason():
    import pandas as pd
    t = pd.DataFrame({"claim": ["a", "b"], "p (Holm)": [0.01, np.nan], "n to decide": [np.nan, 13.0],
                      "other": [None, "x"]})
    shown, note = v.readable(t)
    assert list(shown["p (Holm)"]) == [0.01, "—"] and list(shown["n to decide"]) == ["—", 13]
    assert list(shown["other"]) == ["—", "x"] and list(shown["claim"]) == ["a", "b"]
    assert "*p (Holm)*: not tested" in note and "*other*: does not apply" in note
    assert "NaN" not in shown.to_string() and "<NA>" not in shown.to_html()
    assert v.readable(t.dropna())[1] == ""


def test_paired_without_its_p_value_gives_the_same_mean_and_interval():
    """``p_value=False`` (the leaderboard's summary: means and intervals only) leaves the p out and
    nothing else: the lattice case, where the exact p is the costly part, included."""
    rng = np.random.default_rng(3)
    for a in (rng.normal(size=40), rng.integers(0, 5, size=40) / 4.0):
        full, bare = v.paired(a, n_boot=300), v.paired(a, n_boot=300, p_value=False)
        assert np.isnan(bare.p) and not np.isnan(full.p)
        assert (bare.mean, bare.low, bare.high, bare.n) == (full.mean, full.low, full.high, full.n)
