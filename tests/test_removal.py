"""Known answers for the removal operators, sensitivity-n, the hyper-parameter sensitivity and the
chapter 09 plumbing (xailib.metrics.removal, xailib.metrics.faithfulness, xailib.metrics.robustness,
xailib.chapters.faithfulness)."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xailib import metrics, verdicts
from xailib.chapters import faithfulness as faith
from xailib.errors import ParameterError
from xailib.metrics import removal
from xailib.metrics.faithfulness import sensitivity_n_from, subset_outputs
from xailib.metrics.robustness import hyperparameter_sensitivity, hyperparameters


class Normalised(nn.Module):
    """A tiny network with its input normalisation inside (mean 0.2, 0.4, 0.6)."""

    def __init__(self):
        super().__init__()
        self.normalize = nn.Module()
        self.normalize.mean = torch.tensor([0.2, 0.4, 0.6])
        self.normalize.std = torch.tensor([1.0, 1.0, 1.0])
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        x = (x - self.normalize.mean.view(1, 3, 1, 1)) / self.normalize.std.view(1, 3, 1, 1)
        return self.head(x.mean((2, 3)))


class Linear(nn.Module):
    """f_c(x) = sum(w_c * x): the exact attribution of x is w_c * x (against black)."""

    def __init__(self, side=16, seed=0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x):
        return (x[:, None] * self.w).flatten(2).sum(-1)


def neighbour_residual(image: np.ndarray, removed: np.ndarray) -> float:
    """Largest deviation of a removed pixel from ROAD's weighted mean of its neighbours."""
    c, h, w = image.shape
    pad, ones = np.pad(image, ((0, 0), (1, 1), (1, 1))), np.pad(np.ones((h, w)), 1)
    num, den = np.zeros_like(image), np.zeros((h, w))
    for (dy, dx), wt in (((0, 1), 1 / 6), ((0, -1), 1 / 6), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
                         ((1, 1), 1 / 12), ((1, -1), 1 / 12), ((-1, 1), 1 / 12), ((-1, -1), 1 / 12)):
        num += wt * pad[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        den += wt * ones[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return float(np.abs(image - num / den)[:, removed].max())


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 16, 16, generator=g)
    r = torch.rand(2, 16, 16, generator=g) < 0.3
    return x, r


@pytest.mark.parametrize("op", list(removal.OPERATORS) + [0.25])
def test_every_operator_leaves_the_other_pixels_untouched(op):
    x, r = _batch()
    out = removal.remove(x, r, op, model=Normalised(), road_noise=0.01)
    keep = ~r[:, None].expand_as(x)
    assert torch.equal(out[keep], x[keep])
    assert not torch.equal(out, x)


def test_each_operator_fills_as_documented():
    x, r = _batch(1)
    m = r[:, None].expand_as(x)
    assert (removal.remove(x, r, "zero")[m] == 0).all()
    assert (removal.remove(x, r, 0.25)[m] == 0.25).all()
    mean = x.mean((2, 3), keepdim=True).expand_as(x)
    assert torch.equal(removal.remove(x, r, "mean")[m], mean[m])
    ds = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand_as(x)
    assert torch.equal(removal.remove(x, r, "dataset_mean", model=Normalised())[m], ds[m])
    blurred = removal.blur(x, sigma=1.5)
    assert torch.equal(removal.remove(x, r, "blur", blur_sigma=1.5)[m], blurred[m])
    # ROAD without noise: every removed pixel is the weighted mean of its eight neighbours
    road = removal.remove(x, r, "road", road_noise=0.0)
    for b in range(2):
        assert neighbour_residual(road[b].double().numpy(), r[b].numpy()) < 1e-5


def test_road_of_a_constant_image_is_that_constant_up_to_its_noise():
    x = torch.full((1, 3, 24, 24), 0.37)
    r = torch.zeros(1, 24, 24, dtype=torch.bool)
    r[:, 5:19, 3:20] = True
    exact = removal.remove(x, r, "road", road_noise=0.0)
    torch.testing.assert_close(exact, x, atol=1e-5, rtol=0)
    noisy = removal.remove(x, r, "road", road_noise=0.01, seed=3)
    dev = (noisy - x)[r[:, None].expand_as(x)]
    assert dev.abs().max() < 0.06 and 0.008 < dev.std() < 0.012      # the stated noise, 0.01
    assert torch.equal(noisy, removal.remove(x, r, "road", road_noise=0.01, seed=3))   # seeded
    assert not torch.equal(noisy, removal.remove(x, r, "road", road_noise=0.01, seed=4))


def test_road_edge_cases_nothing_and_everything_removed():
    x, _ = _batch()
    none = torch.zeros(2, 16, 16, dtype=torch.bool)
    assert torch.equal(removal.remove(x, none, "road"), x)
    everything = removal.remove(x, ~none, "road", road_noise=0.0)
    assert (everything == 0).all()


def test_deletion_under_road_equals_removing_step_by_step():
    net = Normalised()
    x, _ = _batch(2)
    s = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(5))
    frac, curves, auc = metrics.causal_curves(net, x, torch.tensor([0, 1]), s, "deletion", n_steps=4, removal="road")
    order = torch.argsort(s.flatten(1), dim=1, descending=True, stable=True)
    for k, f in enumerate(frac.tolist()):
        n = round(f * 256)
        gone = torch.zeros(2, 256, dtype=torch.bool)
        gone.scatter_(1, order[:, :n], True)
        xs = removal.remove(x, gone.view(2, 16, 16), "road")
        p = torch.softmax(net(xs), 1)[torch.arange(2), torch.tensor([0, 1])]
        torch.testing.assert_close(curves[:, k], p, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell,op", [(1, "zero"), (4, "zero"), (4, 0.5)])
def test_sensitivity_n_of_a_linear_models_exact_attribution_is_one_for_every_n(cell, op):
    net = Linear()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 0])
    base = 0.0 if op == "zero" else op
    exact = ((x - base) * net.w[t]).sum(1).detach()        # the exact attribution against the removal value
    nv, chosen, deltas = subset_outputs(net, x, t, cell=cell, n_subsets=12, removal=op)
    r = sensitivity_n_from(exact, chosen, deltas, cell)
    assert len(nv) > 3
    torch.testing.assert_close(r, torch.ones_like(r), atol=1e-9, rtol=0)
    torch.testing.assert_close(metrics.score(net, x, t, exact, "sensitivity_n", cell=cell, removal=op),
                               torch.ones(3, dtype=torch.float64), atol=1e-9, rtol=0)


def test_sensitivity_n_of_a_constant_map_is_zero_and_of_a_negated_map_minus_one():
    net = Linear()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, 0])
    exact = (x * net.w[t]).sum(1).detach()
    nv, chosen, deltas = subset_outputs(net, x, t, n_subsets=10)
    assert (sensitivity_n_from(torch.ones_like(exact), chosen, deltas, 4) == 0).all()
    torch.testing.assert_close(sensitivity_n_from(-exact, chosen, deltas, 4), -torch.ones(2, len(nv), dtype=torch.float64),
                               atol=1e-9, rtol=0)


def test_a_method_without_hyperparameters_has_zero_sensitivity_and_one_with_them_moves():
    net = Linear()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([0, 1])
    assert hyperparameters("gradient") == {}
    rows = hyperparameter_sensitivity(net, x, t, "gradient")
    assert list(rows.parameter.unique()) == ["(none)"]
    assert (rows["1 - spearman_abs"] == 0).all() and np.allclose(rows["1 - ssim"], 0)
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 2))
    moved = hyperparameter_sensitivity(relu, x, t, "smoothgrad", {"noise": [0.5]})
    assert (moved["1 - spearman_abs"] > 0.01).all()
    with pytest.raises(ParameterError, match="'window' is not a parameter of method 'smoothgrad'"):
        hyperparameter_sensitivity(net, x, t, "smoothgrad", {"window": [3]})


def test_bad_input_names_what_is_wrong():
    x, r = _batch()
    with pytest.raises(ParameterError, match="removal='noise' is not accepted"):
        removal.remove(x, r, "noise")
    with pytest.raises(ParameterError, match="grey value must be in"):
        removal.remove(x, r, 1.5)
    with pytest.raises(ParameterError, match="road_noise"):
        removal.remove(x, r, "road", road_noise=-1)
    with pytest.raises(ParameterError, match="regions must be"):
        removal.remove(x, r[:1], "zero")
    net = Linear()
    with pytest.raises(ParameterError, match="n_values"):
        subset_outputs(net, x, torch.tensor([0, 1]), n_values=[0, 5])
    with pytest.raises(ParameterError, match="cell="):
        subset_outputs(net, x, torch.tensor([0, 1]), cell=40)
    with pytest.raises(ParameterError, match="n_subsets"):
        subset_outputs(net, x, torch.tensor([0, 1]), n_subsets=2)
    with pytest.raises(ParameterError, match="removal="):
        metrics.score(net, x, torch.tensor([0, 1]), x[:, 0], "deletion", removal="black")


# ------------------------------------------------------------------------------------------
# chapter 09 plumbing on constructed data
# ------------------------------------------------------------------------------------------

def _rows(n=12):
    rng = np.random.default_rng(0)
    out = []
    for op, rate in (("zero", 1.0), ("road", 0.0)):
        for m, d in (("random", 0.5), ("good", 0.1), ("bad", 0.9)):
            out.append(pd.DataFrame({"model": "net", "method": m, "operator": op, "image": range(n),
                                     "deletion": d + 0.01 * rng.standard_normal(n),
                                     "insertion": 1 - d + 0.01 * rng.standard_normal(n),
                                     "impact": rate if m == "random" else 1.0}))
    return pd.concat(out, ignore_index=True)


def test_rank_table_orders_by_the_registry_direction_with_intervals():
    r = faith.rank_table(_rows(), "deletion", n_boot=200).set_index(["operator", "method"])
    assert r.loc[("road", "good"), "rank"] == 1 and r.loc[("road", "bad"), "rank"] == 3
    assert (r["low"] <= r["rank"]).all() and (r["rank"] <= r["high"]).all()
    ins = faith.rank_table(_rows(), "insertion", n_boot=200).set_index(["operator", "method"])
    assert ins.loc[("zero", "good"), "rank"] == 1          # higher insertion is better
    tau = faith.rank_agreement(faith.rank_table(_rows(), "deletion", n_boot=200))
    assert tau.loc[("net", "zero"), "road"] == pytest.approx(1.0)


def test_operator_claims_withhold_a_verdict_where_a_random_map_passes():
    table = verdicts.claims_table(faith.operator_claims(_rows(), ["random", "good", "bad"], n_boot=200))
    zero = table[table.setting.str.contains("zero") & table.claim.str.startswith("good")]
    road = table[table.setting.str.contains("road") & table.claim.str.startswith("good")]
    assert zero.verdict.iloc[0] == verdicts.UNJUDGED
    assert road.verdict.iloc[0] == verdicts.HOLDS
    bad = table[table.setting.str.contains("road") & table.claim.str.startswith("bad")]
    assert bad.verdict.iloc[0] == verdicts.FAILS
    harmless = table[table.group == "random removal harmless"].set_index("setting").verdict
    assert harmless["removal: road"] == verdicts.HOLDS and harmless["removal: zero"] == verdicts.FAILS


def test_deletion_claims_take_the_strongest_null_as_their_bar():
    rows = _rows()
    smooth = rows[rows.method == "random"].assign(method="smooth_random", deletion=lambda t: t.deletion - 0.45)
    table = verdicts.claims_table(faith.operator_claims(pd.concat([rows, smooth]), ["random", "smooth_random", "good"],
                                                        n_boot=200))
    good = table[table.setting.str.contains("road") & table.claim.str.startswith("good")].iloc[0]
    # the smooth random map (0.05) beats "good" (0.1): against it, good does not hold
    assert "smooth random map" in good.setting and good.verdict == verdicts.FAILS
    assert not table.claim.str.startswith(("random:", "smooth_random:")).any()


def test_operator_claims_on_a_setting_that_removes_nothing_get_no_verdict():
    why = "full removal (blur) leaves 97 % of net's test images classified correctly"
    table = verdicts.claims_table(faith.operator_claims(_rows(), ["random", "good", "bad"], n_boot=200,
                                                        degenerate={("net", "road"): why}))
    road = table[table.setting.str.contains("road")]
    assert len(road) == 3 and (road.verdict == verdicts.UNJUDGED).all() and road.rule.str.startswith(why).all()
    assert road["p (Holm)"].isna().all()                       # out of the Holm family
    assert not (table[~table.setting.str.contains("road")].verdict == verdicts.UNJUDGED).all()


def test_roar_tables_and_claims():
    per_image = []
    for m, acc in (("(none)", 1.0), ("random", 0.9), ("gradient", 0.2)):
        for f in ((0.0,) if m == "(none)" else (0.5,)):
            correct = (np.arange(100) < 100 * acc).astype(int)
            per_image.append(pd.DataFrame({"method": m, "fraction": f, "image": range(100), "correct": correct}))
    per_image = pd.concat(per_image, ignore_index=True)
    acc = per_image.groupby(["method", "fraction"], sort=False).correct.mean().rename("accuracy").reset_index()
    t = faith.roar_table(acc)
    assert t.loc["gradient", "k = 50 %"] == pytest.approx(0.2) and t.loc["gradient", "k = 0 %"] == 1.0
    claims = verdicts.claims_table(faith.roar_claims(per_image, n_boot=200))
    assert list(claims.verdict) == [verdicts.HOLDS]


def test_a_setting_whose_object_mask_does_not_beat_the_strongest_null_gives_no_verdict():
    """Where removing the object's own pixels lowers the score no more than the strongest null's do
    (a silhouette kept, a blur seen through), the methods' deletion claims there get no verdict and
    say why; the object mask's own claim, that evidence, is judged; elsewhere nothing changes."""
    rows = _rows()
    mask = rows[rows.method == "good"].assign(method=faith.CEILING)
    mask.loc[mask.operator == "road", "deletion"] += 0.6          # under ROAD the mask (0.7) loses to random (0.5)
    table = verdicts.claims_table(faith.operator_claims(pd.concat([rows, mask]), ["random", "good", "bad", faith.CEILING],
                                                        n_boot=200))
    road = table[table.setting.str.contains("road") & ~table.claim.str.startswith("a random")].set_index("claim")
    assert road.loc["good: deletion beats the strongest null (road)", "verdict"] == verdicts.UNJUDGED
    assert road.loc["good: deletion beats the strongest null (road)", "rule"].startswith(
        "the object mask does not beat the random map here")
    assert road.loc["bad: deletion beats the strongest null (road)", "verdict"] == verdicts.UNJUDGED
    assert road.loc[f"{faith.CEILING}: deletion beats the strongest null (road)", "verdict"] == verdicts.FAILS
    # under the zero fill the mask leads, and the claims are as before (no verdict for the random removal's reason)
    before = verdicts.claims_table(faith.operator_claims(_rows(), ["random", "good", "bad"], n_boot=200))
    zero = lambda t: t[t.setting.str.contains("zero") & t.claim.str.startswith("good")].verdict.iloc[0]  # noqa: E731
    assert zero(table) == zero(before)


def test_operator_findings_count_the_methods_that_beat_the_strongest_null():
    table = verdicts.claims_table(faith.operator_claims(_rows(), ["random", "good", "bad"], n_boot=200))
    text = faith.operator_findings(table)
    # ROAD: a random removal is harmless (holds) and good beats the null, bad does not
    assert "does a random 10 % removal leave most decisions intact? yes under road; no under zero" in text
    assert "road: 1 of 2" in text and "zero: no verdict" in text


def test_reference_leads_name_the_settings_without_verdicts():
    rows = _rows()
    mask = rows[rows.method == "good"].assign(method=faith.CEILING)
    mask.loc[mask.operator == "road", "deletion"] += 0.6
    leads = faith.reference_leads(pd.concat([rows, mask])).set_index("removal")
    assert leads.loc["zero", "lead"] == pytest.approx(0.5 - 0.1, abs=0.02) and leads.loc["zero", "verdicts"] == "yes"
    assert leads.loc["road", "lead"] == pytest.approx(0.5 - 0.7, abs=0.02)
    assert leads.loc["road", "verdicts"].startswith("no") and leads.loc["road", "strongest null"] == "random"


def test_every_chapter_that_blurs_uses_the_books_one_blur():
    """Issue 27: one blur, the same in every chapter: the chapters' blur defaults (a parameter
    or a constant in their code) and the Impact Score's equal ``removal.BLUR_SIGMA``."""
    import json
    import re
    from pathlib import Path
    from xailib.metrics import impact
    from xailib.chapters import leaderboard
    root = Path(__file__).resolve().parents[1] / "notebooks"
    found = {}
    for nb, name in (("02_rise", "insertion_blur_sigma"), ("05_neuromask", "BLUR_SIGMA"),
                     ("09_faithfulness", "blur_sigma")):
        cells = json.loads((root / f"{nb}.ipynb").read_text())["cells"]
        code = "".join("".join(c["source"]) + "\n" for c in cells if c["cell_type"] == "code")
        found[nb] = float(re.search(rf"^{name} = ([0-9.]+)", code, re.M).group(1))
    found["03/04 (impact)"] = impact.blur_setting(64, 64, None)[1]
    found["10 (leaderboard)"] = leaderboard.BLUR_SIGMA
    assert found == {k: removal.BLUR_SIGMA for k in found}
    # and the kernel is the same +-3 sigma one at the benchmark's side
    assert impact.blur_setting(64, 64, None)[0] == removal.blur_kernel(64, None, removal.BLUR_SIGMA)[0] == 19


def test_road_in_both_orders_equals_the_grad_cam_packages_roadcombined(monkeypatch):
    """Known answer from the reference code: on maps without ties and 100 pixels (where the
    package's interpolated percentile removes exactly (100 - p) % / p %), with the imputation's
    noise off on both sides, MoRF, LeRF and their combination equal pytorch_grad_cam's."""
    from pytorch_grad_cam.metrics import road as gc_road
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    class Quiet(gc_road.NoisyLinearImputer):
        def __init__(self, noise=0.0, weighting=None):
            super().__init__(noise=0.0)
    monkeypatch.setattr(gc_road, "NoisyLinearImputer", Quiet)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 100, 3)).eval()
    x = torch.rand(4, 3, 10, 10)
    y = torch.tensor([0, 1, 2, 0])
    maps = torch.rand(4, 10, 10)
    morf, lerf, both = metrics.road_scores(net, x, y, maps, road_noise=0.0)
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in y]
    cams = maps.numpy()
    theirs_morf = gc_road.ROADMostRelevantFirstAverage()(x, cams, targets, net)
    theirs_lerf = gc_road.ROADLeastRelevantFirstAverage()(x, cams, targets, net)
    np.testing.assert_allclose(morf, theirs_morf, atol=1e-6)
    np.testing.assert_allclose(lerf, theirs_lerf, atol=1e-6)
    np.testing.assert_allclose(both, gc_road.ROADCombined()(x, cams, targets, net), atol=1e-6)
    # through score(): the three registered metrics, with the direction each reads
    np.testing.assert_allclose(metrics.score(net, x, y, maps, "road_combined", road_noise=0.0), both)
    assert not metrics.METRICS["road_morf"].higher_is_better and metrics.METRICS["road_lerf"].higher_is_better
    with pytest.raises(ParameterError, match="percentiles"):
        metrics.road_scores(net, x, y, maps, percentiles=[0, 50])
