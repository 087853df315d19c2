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
