"""Chapter 10's measures: known answers for the agreement and reliability measures, and the
leaderboard's tables rebuilt from constructed per-image scores whose right answers are known."""
import numpy as np
import pandas as pd
import pytest

from xailib import agreement, data, models, verdicts
from xailib.methods import approximate, residual
from xailib.chapters import leaderboard as lb
from xailib.errors import ParameterError
from xailib.metrics import METRICS


# -- agreement and reliability: known answers --------------------------------------------------

def test_identical_rankings_correlate_one_and_reversed_minus_one():
    a = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    for method in agreement.CORRELATIONS:
        assert agreement.rank_correlation(a, 2 * a + 3, method) == pytest.approx(1.0)
        assert agreement.rank_correlation(a, -a, method) == pytest.approx(-1.0)
    # monotone but not linear: still 1 for a rank correlation
    assert agreement.rank_correlation(a, np.exp(10 * a)) == pytest.approx(1.0)


def test_rank_correlation_is_nan_when_undefined():
    assert np.isnan(agreement.rank_correlation([1, 2], [1, 2]))            # fewer than three items
    assert np.isnan(agreement.rank_correlation([1, 1, 1], [1, 2, 3]))      # a constant side
    assert agreement.rank_correlation([1, 2, np.nan, 4], [1, 2, 3, 4]) == pytest.approx(1.0)   # missing left out
    with pytest.raises(ParameterError, match="same length"):
        agreement.rank_correlation([1, 2, 3], [1, 2])
    with pytest.raises(ParameterError, match="not accepted"):
        agreement.rank_correlation([1, 2, 3], [1, 2, 3], method="pearson")


def test_kendall_w_known_answers():
    rng = np.random.default_rng(0)
    items = rng.normal(size=7)
    assert agreement.kendall_w(np.tile(items, (5, 1))) == pytest.approx(1.0)          # identical raters
    assert agreement.kendall_w(np.stack([items, -items])) == pytest.approx(0.0)        # two reversed raters
    # identical raters with ties: 1 only with the tie correction
    tied = np.array([1.0, 1.0, 2.0, 3.0])
    assert agreement.kendall_w(np.stack([tied, tied, tied])) == pytest.approx(1.0)
    # a hand-computed case: 3 raters, 3 items; rank sums 4, 6, 8 -> S = 8, W = 12 * 8 / (9 * 24) = 4 / 9
    r = np.array([[1, 2, 3], [2, 1, 3], [1, 3, 2]], dtype=float)
    assert agreement.kendall_w(r) == pytest.approx(4 / 9)
    assert np.isnan(agreement.kendall_w(items[None]))                                  # one rater
    with pytest.raises(ParameterError, match="dimension"):
        agreement.kendall_w(items)


def test_kendall_w_agrees_with_the_mean_spearman_identity():
    """W = ((m - 1) mean rho + 1) / m over all pairs of m raters (no ties): an independent check."""
    rng = np.random.default_rng(1)
    s = rng.normal(size=(4, 9))
    rhos = [agreement.rank_correlation(s[i], s[j]) for i in range(4) for j in range(i + 1, 4)]
    assert agreement.kendall_w(s) == pytest.approx(((4 - 1) * np.mean(rhos) + 1) / 4)


def test_orient_negates_lower_is_better_columns():
    t = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    o = agreement.orient(t, {"a": True, "b": False})
    assert o.a.tolist() == [1.0, 2.0] and o.b.tolist() == [-3.0, -4.0]
    with pytest.raises(ParameterError, match="no direction"):
        agreement.orient(t, {"a": True})


def test_split_half_is_one_for_a_noiseless_ranking_and_low_for_noise():
    rng = np.random.default_rng(0)
    offsets = np.arange(6, dtype=float)
    steady = pd.DataFrame(np.tile(offsets, (20, 1)) + 0.01 * rng.normal(size=(20, 6)))
    mean, lo, hi = agreement.split_half(steady, n_splits=50)
    assert mean == pytest.approx(1.0) and lo == pytest.approx(1.0)
    # lower is better: the same data reversed is just as reliable
    assert agreement.split_half(-steady, higher_is_better=False, n_splits=50)[0] == pytest.approx(1.0)
    noise = pd.DataFrame(rng.normal(size=(20, 6)))
    assert agreement.split_half(noise, n_splits=200)[0] < 0.5
    assert np.isnan(agreement.split_half(steady.iloc[:3], n_splits=5)[0])          # too few images


def test_bootstrap_ranks_orders_by_the_registry_direction():
    wide = pd.DataFrame({"a": [1.0, 1.1, 0.9], "b": [2.0, 2.1, 1.9], "c": [3.0, 3.1, 2.9]})
    hi = verdicts.bootstrap_ranks(wide, higher_is_better=True, n_boot=200)
    lo = verdicts.bootstrap_ranks(wide, higher_is_better=False, n_boot=200)
    assert hi["rank"].tolist() == [3, 2, 1] and lo["rank"].tolist() == [1, 2, 3]
    assert (hi["low"] == hi["rank"]).all() and (hi["high"] == hi["rank"]).all()   # separated: no width
    assert hi["mean"].tolist() == pytest.approx([1.0, 2.0, 3.0])
    with pytest.raises(ParameterError, match="no images"):
        verdicts.bootstrap_ranks(wide.iloc[:0])


# -- LRP across a residual connection ----------------------------------------------------------

def test_lrp_on_a_residual_network_is_marked_approximate():
    res, vgg = models.load_model("resnet_mini"), models.load_model("vgg_mini")
    assert residual(res) and not residual(vgg)
    assert "residual" in approximate("lrp_epsilon", res)
    assert approximate("lrp_epsilon", vgg) is None
    assert approximate("gradient", res) is None


def test_modified_gradients_on_a_network_without_relu_modules_are_marked():
    """A network whose activations are functional (torchvision's Inception-v3 calls F.relu) gives
    captum's guided backpropagation, deconvolution and DeepLIFT nothing to modify: their maps are
    the plain gradient's, which is checked here, and the leaderboard marks them."""
    import torch

    from xailib.methods import explain

    class Functional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.nn.functional.relu(self.conv(x)).mean((2, 3)))

    net = Functional().eval()
    x, t = torch.rand(2, 3, 8, 8), torch.tensor([0, 2])
    plain = explain(net, x, t, "gradient")
    assert torch.allclose(explain(net, x, t, "guided_backprop"), plain)
    for method in ("guided_backprop", "deconvolution", "deeplift"):
        assert "has none" in approximate(method, net), method
        assert approximate(method, models.load_model("vgg_mini")) is None
    assert approximate("gradient", net) is None


# -- the tables, from constructed per-image scores ---------------------------------------------

N = 20
METHODS = ["good", "poor", "random", "constant"]


def _rows(model, column, images, values: dict):
    return [pd.DataFrame({"model": model, "images": images, "method": m, "column": column, "image": np.arange(N),
                          "score": v}) for m, v in values.items()]


def _mask_energy(model, e):
    """'mask energy' rows ranking good > poor > constant > random, with the object mask first."""
    return _rows(model, "mask energy", "benchmark",
                 {"good": 0.8 + e(), "poor": 0.5 + e(), "random": 0.2 + e(), "constant": 0.3 + e(),
                  lb.TRUTH: 1.0 + 0 * e()})


def _scores():
    """Two networks. 'mask energy' (higher is better) ranks good > poor > constant > random and the
    object mask first; 'deletion' (lower is better) gives the random map the best AUC and the
    object mask the worst: a metric that fails its known truth and rewards a random map."""
    rng = np.random.default_rng(0)
    e = lambda: 0.01 * rng.normal(size=N)    # noqa: E731
    parts = []
    for model in ("net_a", "net_b"):
        parts += _mask_energy(model, e)
        parts += _rows(model, "deletion", "benchmark",
                       {"good": 0.4 + e(), "poor": 0.5 + e(), "random": 0.2 + e(), "constant": 0.6 + e(),
                        lb.TRUTH: 0.7 + e()})
        parts += _rows(model, "randomisation similarity", "benchmark",
                       {"good": 0.1 + e(), "poor": 0.9 + e(), "random": 1.0 + 0 * e(), "constant": 0 * e()})
    # the trojan test: deletion prefers the trigger's mask (it passes this one)
    parts += _rows(lb.TRUST_MODEL, "deletion", "trojan", {lb.TRIGGER: 0.1 + e(), lb.TRUTH: 0.6 + e()})
    return pd.concat(parts, ignore_index=True)


def test_rebuild_ranks_by_the_registry_direction_and_flags_what_fails_a_known_truth():
    t = lb.rebuild(_scores(), n_boot=200)
    s = t["summary"].set_index(["model", "column", "method"])
    assert lb.TRUTH not in set(t["summary"].method), "the known truths are never ranked"
    assert s.loc[("net_a", "mask energy", "good"), "rank"] == 1
    assert s.loc[("net_a", "mask energy", "random"), "rank"] == 4
    assert s.loc[("net_a", "deletion", "random"), "rank"] == 1            # lower AUC is better
    assert s.loc[("net_a", "deletion", "constant"), "rank"] == 4
    assert s.loc[("net_a", "mask energy", "good"), "low"] < 0.8 < s.loc[("net_a", "mask energy", "good"), "high"]
    v = t["validity"]
    assert v.loc["mask energy", "object mask > strongest null"] == "holds / holds"
    assert v.loc["mask energy", "trigger > object (trojan)"] == "ignores the model"
    assert v.loc["deletion", "object mask > strongest null"] == "does not hold / does not hold"
    assert v.loc["deletion", "trigger > object (trojan)"] == "holds"
    assert v.loc["deletion", "rewards a control"] == "random"
    assert v.loc["randomisation similarity", "rewards a control"] == "constant"
    assert not v.loc["mask energy", "flag"] and v.loc["deletion", "flag"]
    # no verdict rests on 'deletion'; a column that rewards only the constant map stays usable
    assert lb.unusable(v) == ["deletion"]
    table = lb.leaderboard_table(t["summary"], "net_a", flagged=[c for c, f in v.flag.items() if f])
    assert "deletion ⚑ ↓" in table.columns and "mask energy ↑" in table.columns
    assert table.index[0] == "good"


def test_agreement_and_controls_tables():
    t = lb.rebuild(_scores(), n_boot=200)
    m = t["agreement"]["net_a"]["matrix"]
    # oriented: mask energy ranks good, poor, constant, random; -deletion ranks random, good, poor, constant
    assert m.loc["mask energy", "mask energy"] == pytest.approx(1.0)
    assert m.loc["mask energy", "deletion"] == pytest.approx(agreement.rank_correlation([4, 3, 1, 2], [3, 2, 4, 1]))
    assert 0 <= t["agreement"]["net_a"]["w"] <= 1
    c = t["controls"].set_index(["model", "column"])
    assert c.loc[("net_a", "deletion"), "rewards random"] and not c.loc[("net_a", "mask energy"), "rewards random"]
    r = t["reliability"].set_index(["model", "column"])
    # two explanation methods once the nulls are left out: too few to split, alpha still defined
    assert np.isnan(r.loc[("net_a", "mask energy"), "split-half rho"]) and r.loc[("net_a", "mask energy"), "methods"] == 2
    assert r.loc[("net_a", "mask energy"), "inter-rater alpha"] == pytest.approx(1.0)   # good > poor on every image


def test_questions_name_the_methods_that_hold_up():
    t = lb.rebuild(_scores(), n_boot=200)
    q = t["questions"].set_index(["question", "model"])
    # mask energy alone is scored here: 'good' and 'poor' both beat the random map on 20 images
    loc = q.loc[("localises the object", "net_a")]
    assert loc["hold up"] == 2 and set(loc["methods that hold up"].split(", ")) == {"good", "poor"}
    rand = q.loc[("passes the randomisation check", "net_a")]
    assert rand["methods that hold up"] == "good" and rand["fail"] == 1      # 'poor' stays at 0.9
    assert "Kendall's W" in lb.findings(t)


def test_rebuild_rejects_a_table_it_cannot_read(tmp_path):
    s = _scores()
    with pytest.raises(ParameterError, match="missing \\['score'\\]"):
        lb.rebuild(s.drop(columns=["score"]))
    with pytest.raises(ParameterError, match="unknown leaderboard columns \\['mask enrgy'\\]"):
        lb.rebuild(s.assign(column=s.column.replace("mask energy", "mask enrgy")))
    path = tmp_path / "per_image.csv"
    s.to_csv(path, index=False)
    assert len(lb.rebuild(path, n_boot=100)["summary"]) == len(lb.rebuild(s, n_boot=100)["summary"])


def test_every_column_reads_its_direction_from_the_registry():
    from xailib.metrics import METRICS
    for c in lb.COLUMNS:
        if c.metric:
            assert c.higher is None, f"{c.label} declares a direction of its own"
            assert c.higher_is_better == METRICS[c.metric].higher_is_better
        else:
            assert c.higher is not None
    assert lb.directions()["deletion"] is False and lb.directions()["insertion"] is True


def test_a_column_whose_removal_removes_nothing_is_flagged_and_answers_no_question():
    from xailib.calibration import describe
    rng = np.random.default_rng(1)
    e = lambda: 0.01 * rng.normal(size=N)    # noqa: E731
    blur = [p for model in ("net_a", "net_b") for p in _rows(model, "deletion (blur)", "benchmark", {
        "good": 0.2 + e(), "poor": 0.3 + e(), "random": 0.8 + e(), "constant": 0.7 + e(), lb.TRUTH: 0.05 + e()})]
    s = pd.concat([_scores(), *blur], ignore_index=True)
    calib = pd.DataFrame({"model": ["net_a", "net_b"], "removal": describe("blur", 64, lb.BLUR_SIGMA),
                          "accuracy, all removed": [0.97, 0.95], "degenerate": True})
    plain = lb.rebuild(s, n_boot=100)
    assert "deletion (blur)" not in lb.unusable(plain["validity"])     # good scores alone would pass it
    t = lb.rebuild(s, n_boot=100, calibration=calib, image_size=64)
    v = t["validity"]
    assert v.loc["deletion (blur)", "all removed, still correct"] == "97 % / 95 % (removes nothing)"
    assert v.loc["mask energy", "all removed, still correct"] == "—" and v.loc["deletion (blur)", "flag"]
    assert "deletion (blur)" in lb.unusable(v)
    assert not t["question claims"].setting.eq("deletion (blur)").any()
    q = t["questions"].set_index("question")
    assert q.loc["is faithful to the model", "methods that hold up"] == "not answered: no usable column"
    text = lb.findings(t)
    assert "**is faithful to the model**: not answered here" in text and "still classified correctly: 97 %" in text


def test_a_method_must_beat_the_strongest_null_not_only_the_random_map():
    """An edge detector that localises better than 'poor' makes 'poor' fail to hold up, where
    beating the random map alone would have let it; the null is named and never judged itself."""
    rng = np.random.default_rng(2)
    e = lambda: 0.01 * rng.normal(size=N)    # noqa: E731
    edge = [p for model in ("net_a", "net_b") for p in _rows(model, "mask energy", "benchmark", {"edge": 0.6 + e()})]
    t = lb.rebuild(pd.concat([_scores(), *edge], ignore_index=True), n_boot=100)
    q = t["questions"].set_index(["question", "model"]).loc[("localises the object", "net_a")]
    assert q["methods that hold up"] == "good" and q["fail"] == 1
    assert "mask energy against the edge map" in q["columns"]
    claims = t["question claims"]
    assert not claims.claim.str.startswith(("edge:", "random:", "constant:")).any()
    assert (claims[claims.setting.str.startswith("mask energy")].setting == "mask energy against the edge map").all()


def test_trusted_needs_a_known_truth_test_that_is_evidence_and_holds():
    """A column is trusted only when a non-circular test that applies to it holds: insertion (it calls
    the model, and the object mask beats every null under it) is; mask energy, under which the object
    mask wins by definition, is untested however large its margin; a model-using column whose tests
    cannot decide is not resolved; a flagged column is flagged."""
    rng = np.random.default_rng(1)
    e = lambda: 0.01 * rng.normal(size=N)    # noqa: E731
    parts = []
    for model in ("net_a", "net_b"):
        parts += _mask_energy(model, e)
        parts += _rows(model, "insertion", "benchmark",
                       {"good": 0.8 + e(), "poor": 0.6 + e(), "random": 0.3 + e(), "constant": 0.35 + e(),
                        lb.TRUTH: 0.9 + e()})
        noisy = lambda: rng.normal(size=N)    # noqa: E731
        parts += _rows(model, "Impact Score", "benchmark",
                       {"good": 0.8 + e(), "poor": 0.6 + e(), "random": 0.3 + e(), "constant": 0.1 + e(),
                        lb.TRUTH: 0.3 + noisy()})
        for column in ("max-sensitivity", "roughness"):       # the table has rows for the columns scored
            parts += _rows(model, column, "benchmark", {"good": 0.1 + e(), "poor": 0.2 + e(), "random": 0.9 + e(),
                                                         "constant": 0.5 + e()})
    v = lb.rebuild(pd.concat(parts, ignore_index=True), n_boot=200)["validity"]
    assert v.loc["insertion", "standing"] == "trusted: object mask > strongest null (net_a), " \
                                             "object mask > strongest null (net_b)"
    assert v.loc["mask energy", "object mask > strongest null"] == "holds / holds"
    assert v.loc["mask energy", "standing"].startswith("untested: defined by the known truth")
    assert v.loc["Impact Score", "object mask > strongest null"] == "not resolved / not resolved"
    assert v.loc["Impact Score", "standing"].startswith("not resolved")
    assert v.loc["max-sensitivity", "standing"].startswith("untested: scores a method's own output")
    assert v.loc["roughness", "standing"] == "untested: asks nothing a known truth answers"
    flagged = lb.rebuild(_scores(), n_boot=200)["validity"]
    assert flagged.loc["deletion", "standing"] == "flagged"


def test_a_trigger_finder_must_beat_the_clean_network_too():
    """'seer' puts its mass on the trigger under the trojaned network and not under the clean one;
    'edgy' puts it there under both (as an edge detector would): both beat the nulls, only 'seer'
    holds up, and the clean network's rows are never ranked as a network of their own."""
    rng = np.random.default_rng(3)
    e = lambda: 0.01 * rng.normal(size=N)    # noqa: E731
    parts = _rows(lb.TRUST_MODEL, "trigger mass", "trojan",
                  {"seer": 0.7 + e(), "edgy": 0.7 + e(), "random": 0.05 + e(), "constant": 0.05 + e()})
    parts += _rows(lb.CLEAN, "trigger mass", "trojan", {"seer": 0.1 + e(), "edgy": 0.7 + e()})
    t = lb.rebuild(pd.concat(parts, ignore_index=True), n_boot=200)
    assert lb.CLEAN not in set(t["summary"].model)
    c = t["question claims"].set_index("claim").verdict
    assert c["seer: trigger mass"] == c["edgy: trigger mass"] == "holds"
    assert c["seer: trigger mass, trojaned over clean network"] == "holds"
    assert c["edgy: trigger mass, trojaned over clean network"] != "holds"
    q = t["questions"].set_index(["question", "model"]).loc[("finds a trojan's trigger", lb.TRUST_MODEL)]
    assert q["methods that hold up"] == "seer"


def test_no_verdict_on_a_network_where_the_object_mask_does_not_beat_the_strongest_null():
    """Deletion (blur) on net_b: the object mask's mean AUC is no better than the random map's (the
    known-truth test itself is not resolved, so the column is not flagged). The methods' claims there
    get no verdict, and the question is not answered on net_b; on net_a nothing changes."""
    rng = np.random.default_rng(3)
    e = lambda s=0.01: s * rng.normal(size=N)    # noqa: E731
    parts = []
    for model, truth in (("net_a", 0.1 + e()), ("net_b", 0.31 + e(0.08))):
        parts += _mask_energy(model, e)
        parts += _rows(model, "deletion (blur)", "benchmark",
                       {"good": 0.2 + e(), "poor": 0.25 + e(), "random": 0.3 + e(), "constant": 0.45 + e(),
                        lb.TRUTH: truth})
    t = lb.rebuild(pd.concat(parts, ignore_index=True), n_boot=200)
    v = t["validity claims"].set_index(["claim", "model"]).verdict
    assert v[("deletion (blur): the object mask beats the strongest null", "net_b")] == verdicts.OPEN
    assert "deletion (blur)" not in lb.unusable(t["validity"])
    c = t["question claims"]
    b = c[(c.model == "net_b") & c.claim.str.endswith("deletion (blur)")]
    assert len(b) == 2 and (b.verdict == verdicts.UNJUDGED).all()
    assert b.rule.str.startswith("the object mask does not beat the random map").all()
    a = c[(c.model == "net_a") & c.claim.str.endswith("deletion (blur)")]
    assert (a.verdict == verdicts.HOLDS).all()
    q = t["questions"].set_index(["question", "model"])
    assert q.loc[("is faithful to the model", "net_b"), "no verdict"] == 2
    assert q.loc[("is faithful to the model", "net_b"), "methods that hold up"].startswith("not answered")
    assert q.loc[("is faithful to the model", "net_a"), "methods that hold up"] == "good, poor"
    assert "not answered on this network" in lb.findings(t)
    # the validity table says so beside the column's standing (trusted on net_a's evidence)
    st = t["validity"].loc["deletion (blur)", "standing"]
    assert st.startswith(lb.TRUSTED) and st.endswith("no verdict on net_b, where the object mask does not beat the "
                                                     "strongest null")


def test_spearman_brown_known_answers():
    assert agreement.spearman_brown(0.5) == pytest.approx(2 / 3)          # 2 * 0.5 / 1.5
    assert agreement.spearman_brown(1.0) == 1.0 and agreement.spearman_brown(0.0) == 0.0
    assert np.isnan(agreement.spearman_brown(-1.0))                       # undefined: 1 + r = 0
    assert agreement.spearman_brown(0.5, factor=3) == pytest.approx(0.75)
    assert np.isnan(agreement.spearman_brown(float("nan")))
    np.testing.assert_allclose(agreement.spearman_brown(np.array([0.2, 0.6])), [0.4 / 1.2, 1.2 / 1.6])
    with pytest.raises(ParameterError, match="r has the value 1.5"):
        agreement.spearman_brown(1.5)
    t = lb.reliability(_reliability_scores(ordered=True), lb.summary(_reliability_scores(ordered=True), n_boot=50))
    assert t.set_index("column").loc["mask energy", "all images (Spearman-Brown)"] == pytest.approx(1.0)


def _reliability_scores(ordered: bool):
    """'mask energy' on N images: three explanation methods, either in one order on every image
    (``ordered``) or in an order drawn afresh per image, and the four null maps always last and
    in one order among themselves."""
    rng = np.random.default_rng(3)
    own = {m: (k + 0.01 * rng.normal(size=N)) if ordered else rng.normal(size=N) for k, m in enumerate("abc")}
    nulls = {m: -10.0 - k + 0.01 * rng.normal(size=N) for k, m in enumerate(lb.NULLS)}
    return pd.concat(_rows("net_a", "mask energy", "benchmark", {**own, **nulls}), ignore_index=True)


def test_inter_rater_alpha_known_answers():
    # two images that rank two methods oppositely: Krippendorff's alpha is -1/2 (coincidences
    # o_12 = o_21 = 2, n_1 = n_2 = 2: D_o = delta, D_e = 2 delta / 3, whatever the metric)
    assert agreement.inter_rater_alpha(np.array([[2.0, 1.0], [1.0, 2.0]])) == pytest.approx(-0.5)
    # by hand at the ordinal level: ranks (1, 2, 3) and (1, 3, 2); n_c = 2 each, delta_12 = delta_23
    # = (2 + 2 - 2)^2 = 4, delta_13 = (6 - 2)^2 = 16; alpha = 1 - (n - 1) sum o delta / sum n_c n_k delta
    # = 1 - 5 * 16 / 192
    assert agreement.inter_rater_alpha(np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0]])) == pytest.approx(1 - 80 / 192)
    # orientation: a lower-is-better metric read the other way gives the same agreement
    s = np.random.default_rng(0).normal(size=(6, 4))
    assert agreement.inter_rater_alpha(s) == pytest.approx(agreement.inter_rater_alpha(-s, higher_is_better=False))
    assert agreement.inter_rater_alpha(np.tile([1.0, 2.0, 3.0], (5, 1))) == pytest.approx(1.0)
    assert np.isnan(agreement.inter_rater_alpha(np.ones((4, 3))))         # no image tells the methods apart
    assert np.isnan(agreement.inter_rater_alpha(np.array([[1.0, 2.0]])))  # one rater
    with pytest.raises(ParameterError, match="per_image has the value NaN"):
        agreement.inter_rater_alpha(np.array([[1.0, np.nan], [1.0, 2.0]]))


def test_the_krippendorff_package_gives_krippendorffs_own_worked_example():
    """Krippendorff (2011), 'Computing Krippendorff's alpha-reliability': 4 observers, 12 units,
    missing values; alpha = 0.743 nominal, 0.815 ordinal, 0.849 interval."""
    import krippendorff
    nan = np.nan
    d = np.array([[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
                  [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]])
    for level, want in (("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)):
        assert krippendorff.alpha(reliability_data=d, level_of_measurement=level) == pytest.approx(want, abs=5e-4)


def test_reliability_leaves_the_nulls_out():
    """Null maps in fixed places make any ranking look reliable; the explanation methods alone are
    judged: ordered ones reach 1, ones in a fresh order per image stay near 0."""
    for ordered, lo, hi in ((True, 0.99, 1.0), (False, -0.2, 0.2)):
        sc = _reliability_scores(ordered)
        r = lb.reliability(sc, lb.summary(sc, n_boot=50)).set_index("column").loc["mask energy"]
        assert r["methods"] == 3
        assert lo <= r["inter-rater alpha"] <= hi, r["inter-rater alpha"]
    # with the nulls counted, the unordered methods would have looked reliable
    wide = _reliability_scores(False).pivot(index="image", columns="method", values="score")
    assert agreement.inter_rater_alpha(wide) > 0.6


def test_the_columns_of_other_toolkits_and_what_each_takes():
    """At least 28 columns; the metrics that re-run a method take no map (no mask can be scored
    by them), and each new family is there under the name Quantus and LATEC give it."""
    assert len(lb.COLUMNS) >= 28
    assert len({c.label for c in lb.COLUMNS}) == len(lb.COLUMNS)
    rerun = {c.label for c in lb.COLUMNS if c.reruns_method}
    assert rerun == {"max-sensitivity", "average sensitivity", "local Lipschitz", "relative input stability",
                     "relative output stability", "random logit"}
    assert not any(c.takes_map for c in lb.COLUMNS if c.reruns_method)
    assert lb.BY_LABEL["Focus"].images == "mosaics" and lb.BY_LABEL["recovering rate"].images == "trojan"
    # every registered metric is a column, or the same number as one (the docstrings say so)
    aliases = {"relevance_mass_accuracy", "attribution_localisation", "region_mean", "box_accuracy",
               "road_morf", "road_lerf", "road_combined"}
    assert set(METRICS) - {c.metric for c in lb.COLUMNS} <= aliases


def test_robustness_columns_explain_each_method_once(tmp_path, monkeypatch):
    """score_maps runs the columns that re-run a method method by method, so the five robustness
    metrics read one set of perturbed copies per method: 1 + n_samples explanations each."""
    import torch
    from xailib import methods
    from xailib.map_store import MapStore
    from xailib.metrics import shared
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    x, t = torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 2])
    shared.forget()
    calls = []
    real = methods.explain
    monkeypatch.setattr(methods, "explain", lambda model, xx, tt, m, **k: calls.append(m) or real(model, xx, tt, m, **k))
    cols = [c for c in lb.COLUMNS if c.question == "robustness"]
    maps = {m: real(net, x, t, m) for m in ("gradient", "gradient_x_input")}
    rows = lb.score_maps(lb.Scored(MapStore(str(tmp_path))), "k", "net", net, x, t, maps, {}, image_set="benchmark",
                         columns=cols, sensitivity_methods=["gradient", "gradient_x_input"], sensitivity_samples=2)
    assert sorted(calls) == ["gradient"] * 3 + ["gradient_x_input"] * 3
    assert set(rows.column) == {c.label for c in cols} and len(rows) == len(cols) * 2 * 3
    # rows in column order, then method order, as the other columns
    assert list(dict.fromkeys(rows.column)) == [c.label for c in cols]


def test_input_dependence_scores_are_the_rates_per_image():
    rows = pd.DataFrame({"method": ["a", "a", "b", "b"], "image": [0, 1, 0, 1],
                         "dependent": [True, False, True, True], "independent": [False, False, True, False]})
    s = lb.input_dependence_scores(rows)
    rates = s.groupby(["column", "method"]).score.mean()
    assert rates["input dependence (BAM)", "a"] == 0.5 and rates["input dependence (BAM)", "b"] == 1.0
    assert rates["input independence (BAM)", "b"] == 0.5 and set(s.images) == {"bam pairs"}


def test_mosaic_params_tile_expected_gradients_references_and_keep_the_rest():
    import torch
    bg = torch.rand(2, 3, 4, 4)
    p = lb.mosaic_params({"expected_gradients": {"background": bg, "n_samples": 8}, "lime": {"num_samples": 10}})
    out = p["expected_gradients"]["background"]
    assert out.shape == (2, 3, 8, 8) and p["expected_gradients"]["n_samples"] == 8 and p["lime"] == {"num_samples": 10}
    for i in (0, 4):
        for j in (0, 4):
            assert torch.equal(out[:, :, i:i + 4, j:j + 4], bg)        # each quadrant is the reference image
    assert lb.mosaic_params({}) == {}


def test_quantus_tables_summarise_the_committed_comparison(tmp_path):
    import json
    assert lb.quantus_tables(tmp_path) is None                       # not made: None, the chapter says so
    pd.DataFrame({"metric": ["sparseness", "sparseness"], "quantus": ["Sparseness"] * 2, "method": ["a", "b"],
                  "book mean": [0.5, 0.6], "book ms per image": [0.1, 0.2], "quantus ms per image": [1.0, 2.0],
                  "why the defaults differ": ["x", "x"], "largest difference, matched": [1e-6, 3e-6],
                  "largest difference, defaults": [0.1, 0.2], "quantus defaults": ["scored", "refused: flat"]}
                 ).to_csv(tmp_path / "comparison.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({"n_images": 4, "model": "m", "methods": ["a", "b"], "quantus": "0.6.0",
                                                   "model-based": {"n_images": 3, "methods": ["a", "b", "c"]}}))
    rows = []
    for metric, q, book, quant in (("monotonicity", "Monotonicity", [0.0, 0.2, 0.4], [1.0, 1.0, 1.0]),
                                   ("avg_sensitivity", "AvgSensitivity", [0.1, 0.2, 0.3], [0.1, 0.25, 0.3])):
        rows += [{"metric": metric, "quantus": q, "method": m, "book mean": b, "quantus mean": v, "per-image r": 0.5,
                  "quantus NaN": 0, "book ms per image": 1.0, "quantus ms per image": 2.0, "how they differ": "y"}
                 for m, b, v in zip("abc", book, quant)]
    pd.DataFrame(rows).to_csv(tmp_path / "model_based.csv", index=False)
    pd.DataFrame({"metric": ["monotonicity", "avg_sensitivity"], "methods": [3, 3],
                  "rank correlation of the method means": [np.nan, 1.0]}).to_csv(tmp_path / "model_based_order.csv",
                                                                                 index=False)
    t = lb.quantus_tables(tmp_path)
    assert t["map only"].loc["sparseness", "largest difference, matched"] == 3e-6
    assert "agrees to 3e-06" in t["note"] and "refuses b outright" in t["note"]
    assert "alike (rank correlation of the means at least 0.8) under 1: avg_sensitivity" in t["note"]
    assert ("Under monotonicity, every one of the 3 methods (the random map included) gets the same mean in Quantus (1); "
            "its means range in the book from 0 to 0.4") in t["note"]


def test_a_column_under_which_every_map_scores_alike_is_flagged():
    """Arya's monotonicity at 64 px scores 0 for every map, the object mask included: the column
    tells nothing apart, is flagged, and answers no question."""
    s = _scores()
    alike = s[s.column == "mask energy"].assign(column="monotonicity (Arya)", score=0.0)
    t = lb.rebuild(pd.concat([s, alike], ignore_index=True), n_boot=200)
    row = t["validity"].loc["monotonicity (Arya)"]
    assert row["every map alike"] == "every map scores 0" and bool(row["flag"])
    assert "monotonicity (Arya)" in lb.unusable(t["validity"])
    assert t["validity"].loc["mask energy", "every map alike"] == "no"
    assert "every map scores 0, the known truths included" in lb.findings(t)


def test_the_columns_parameter_names_columns_and_the_tables_show_only_those_scored():
    """``columns``: labels in any order give the columns in the book's order; an unknown label
    is refused by the chapter's rule with the list of known ones; a table scored under some
    columns gets validity rows for those only (not 'n/a' rows that would read as unflagged)."""
    from xailib.errors import ParameterError
    assert [c.label for c in lb.selected(["deletion", "pointing game"])] == ["pointing game", "deletion"]
    assert lb.selected(None) == lb.COLUMNS
    with pytest.raises(ParameterError, match="unknown leaderboard columns"):
        lb.selected(["pointing gmae"])
    rule = lb.columns_rule()
    assert rule.read("columns", "all", {}) == [c.label for c in lb.COLUMNS]
    assert rule.read("columns", "deletion", {}) == ["deletion"]
    with pytest.raises(ParameterError, match="did you mean 'pointing game'"):
        rule.read("columns", ["pointing gmae"], {})
    t = lb.rebuild(_scores(), n_boot=200)
    assert list(t["validity"].index) == ["mask energy", "deletion", "randomisation similarity"]


def test_per_image_agreement_at_once_is_scipys_spearman_image_by_image():
    """The vectorised Spearman path gives scipy's rho per image, ties averaged, and NaN for an
    image whose scores do not vary (as rank_correlation does)."""
    from xailib.agreement import per_image_agreement, rank_correlation
    rng = np.random.default_rng(5)
    a = pd.DataFrame(rng.integers(0, 4, size=(12, 6)).astype(float), columns=list("pqrstu"))
    b = pd.DataFrame(rng.normal(size=(12, 6)), columns=list("pqrstu"))
    a.iloc[3] = 1.0                                          # a flat image
    got = per_image_agreement(a, b)
    want = [rank_correlation(a.loc[i], b.loc[i]) for i in a.index]
    np.testing.assert_allclose(got.to_numpy(), want, rtol=0, atol=1e-12)
    assert np.isnan(got[3]) and got.drop(3).notna().all()


def test_columns_scored_only_on_the_known_truth_sets_are_refused_without_them(tmp_path):
    """A data set without the shapes' known-truth sets (trust_sets=False) and columns scored only
    on those sets: one clear error before any map is made, not an empty concatenation after."""
    from xailib.results import ResultStore
    pool = data.load_dataset("shapes", "test", size=64, seed=0)
    kw = dict(n_images=3, n_truth=2, method_params={}, n_steps=4, sensitivity_methods=[], sensitivity_samples=1,
              randomisation={}, patch_scale=0.5, trust_sets=False, image_size=64, seed=0)
    with pytest.raises(ParameterError, match=r"only on the known-truth sets.*add a column"):
        lb.collect(ResultStore("refused", {}, root=tmp_path), pool, {}, ["random"],
                   columns=["trigger mass", "Focus"], **kw)
