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
    big = v.sign_flip_p(np.ones(40), n_perm=999)           # Monte Carlo: (0 + 1) / (999 + 1)
    assert big == pytest.approx(1 / 1000)


def test_holm_known_answer():
    assert np.allclose(v.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.allclose(v.holm([0.5]), [0.5])


def test_n_needed_known_answer():
    # the review's example: spread 0.05, gap 0.01 -> about 200 images
    assert v.n_needed(0.01, 0.05) == int(np.ceil(((1.959964 + 0.841621) * 5) ** 2))
    assert v.n_needed(0.0, 0.05) is None


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


def test_independent_samples_known_answers():
    a, b = np.ones(20), np.zeros(20)
    c = v.independent(a, b)
    assert c.mean == 1 and c.low == 1 and c.high == 1 and c.p < 0.001
    same = v.independent(np.r_[np.ones(10), np.zeros(10)], np.r_[np.ones(10), np.zeros(10)])
    assert same.mean == 0 and same.p > 0.5
    with pytest.raises(ParameterError):
        v.independent([], [1.0])


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
