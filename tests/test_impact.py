"""Impact Score, I_strict and Impact Coverage (Lin et al. 2019) on cases with known answers."""
import math

import pytest
import torch
from torch import nn

from xailib import metrics, models
from xailib.metrics import impact
from xailib.chapters import impact_score
from xailib.errors import ParameterError
from xailib.metrics import order

H = W = 8
REGION = torch.zeros(H, W, dtype=torch.bool)
REGION[2:6, 2:6] = True           # the 4 x 4 block the hand-built model looks at


class RegionModel(nn.Module):
    """Logit of class 0 = gain * mean brightness inside REGION; the other classes have logit
    ``rest`` (0 by default). On an all-ones image class 0 wins with margin ``gain - rest``."""

    def __init__(self, gain, rest=(0.0,)):
        super().__init__()
        self.gain = gain
        self.register_buffer("rest", torch.tensor(rest))
        self.dummy = nn.Parameter(torch.zeros(1))   # gives the model a device

    def forward(self, x):
        inside = (x.mean(1) * REGION).flatten(1).sum(1) / REGION.sum()
        return torch.cat([self.gain * inside[:, None], self.rest.expand(len(x), -1)], 1)


def _ones(n=1):
    return torch.ones(n, 3, H, W)


def test_removing_the_decisive_region_flips_the_decision():
    model = RegionModel(gain=8.0, rest=(4.0,))      # before: logits (8, 4) -> class 0
    x = _ones(3)
    regions = torch.stack([REGION, ~REGION, torch.zeros(H, W, dtype=torch.bool)])
    out = impact.impact_outcome(model, x, regions, targets=0)
    assert out.decision.tolist() == [0, 0, 0]
    assert out.new_decision.tolist() == [1, 0, 0]          # only removing REGION flips it
    assert out.impact.tolist() == [True, False, False]
    assert out.decision_changed.tolist() == [True, False, False]
    z = 1 / (1 + math.exp(-4))
    torch.testing.assert_close(out.confidence, torch.full((3,), z, dtype=torch.float64))
    torch.testing.assert_close(out.new_confidence[0], torch.tensor(1 / (1 + math.exp(4)), dtype=torch.float64))
    # the same through the score registry, from maps whose top 25 % is exactly the region
    maps = regions.float()
    for metric, want in (("impact", [1.0, 0.0, 0.0]), ("impact_strict", [1.0, 0.0, 0.0])):
        got = metrics.score(model, x[:2], 0, maps[:2], metric, selection="pixels", fraction=16 / 64)
        assert got.tolist() == want[:2]


def test_confidence_impact_without_a_decision_change():
    # three classes, logits (5 * inside, 0, 0): z = e^5 / (e^5 + 2) = 0.987
    model = RegionModel(gain=5.0, rest=(0.0, 0.0))
    x = _ones(2)
    most = REGION.clone()
    most[2, 2] = False                                 # 15 of 16 pixels: inside -> 1/16
    some = torch.zeros(H, W, dtype=torch.bool)
    some[2:4, 2:6] = True                              # half of it: inside -> 1/2
    out = impact.impact_outcome(model, x, torch.stack([most, some]))
    # 15/16 removed: logit 5/16, p0 = 0.404 <= 0.5 * 0.987 and class 0 still wins
    assert out.new_decision.tolist() == [0, 0]
    assert out.confidence_halved.tolist() == [True, False]   # half removed: p0 = 0.859
    assert out.impact.tolist() == [True, False]
    assert out.decision_changed.tolist() == [False, False]
    regions = torch.stack([most, some])
    assert metrics.score(model, x, None, regions.float(), "impact", regions=regions).tolist() == [1.0, 0.0]
    assert metrics.score(model, x, None, regions.float(), "impact_strict", regions=regions).tolist() == [0.0, 0.0]
    # tau = 0: a confidence can never fall to 0, so only decision changes count (I = I_strict)
    assert metrics.score(model, x, None, regions.float(), "impact", regions=regions, tau=0.0).tolist() == [0.0, 0.0]


def test_strict_never_exceeds_impact_and_tau_is_monotone():
    torch.manual_seed(0)
    model = models.build_benchmark_model("resnet_mini").eval()
    x = torch.rand(12, 3, 64, 64)
    maps = torch.randn(12, 64, 64)
    y = models.predict(model, x).argmax(1)
    strict = metrics.score(model, x, y, maps, "impact_strict", fraction=0.3)
    scores = [metrics.score(model, x, y, maps, "impact", fraction=0.3, tau=t) for t in (0.0, 0.5, 1.0)]
    assert (strict <= scores[0]).all() and (scores[0] <= scores[1]).all() and (scores[1] <= scores[2]).all()
    torch.testing.assert_close(strict, scores[0])
    with pytest.raises(ParameterError, match="predicted class"):
        metrics.score(model, x, (y + 1) % 10, maps, "impact")


def test_critical_region_selections():
    s = torch.tensor([[[5.0, 4.0, 3.0, -1.0],
                       [3.0, 0.0, 0.0, 2.0]]])                    # (1, 2, 4)
    top = impact.critical_region(s, "pixels", fraction=3 / 8)
    # three highest: 5, 4 and one of the two 3s (pixels 2 and 4), the one that comes first in the
    # fixed random tie order (xailib.metrics.order): pixel 4, not pixel 2 as a row-major sort gives
    perm = order.tie_permutation(8).tolist()
    assert perm.index(4) < perm.index(2)
    assert top[0].tolist() == [[True, True, False, False], [True, False, False, False]]
    with order.tie_rule("index"):
        assert impact.critical_region(s, "pixels", fraction=3 / 8)[0].tolist() == \
            [[True, True, True, False], [False, False, False, False]]
    # never a non-positive pixel, even when the budget is larger than the positive part
    assert impact.critical_region(s, "pixels", fraction=1.0)[0].tolist() == \
        [[True, True, True, False], [True, False, False, True]]
    thr = impact.critical_region(s, "threshold", threshold=0.6)  # >= 3.0
    assert thr[0].tolist() == [[True, True, True, False], [True, False, False, False]]
    assert not impact.critical_region(-s.abs(), "pixels", fraction=0.5).any()


def test_segment_selection_takes_whole_superpixels_nearest_the_budget():
    seg = torch.zeros(1, 4, 4, dtype=torch.long)
    seg[0, :2, 2:], seg[0, 2:, :2], seg[0, 2:, 2:] = 1, 2, 3        # four quadrants of 4 px
    s = torch.zeros(1, 4, 4)
    s[0, :2, :2], s[0, :2, 2:], s[0, 2:, :2], s[0, 2:, 2:] = 0.9, 0.5, -0.2, 0.7
    q = [(seg == k)[0] for k in range(4)]
    one = impact.critical_region(s, "segments", fraction=0.3, segments=seg)[0]
    assert torch.equal(one, q[0])                                    # 4 px is nearer 4.8 than 8
    two = impact.critical_region(s, "segments", fraction=0.45, segments=seg)[0]
    assert torch.equal(two, q[0] | q[3])                             # next best is quadrant 3
    # the negative quadrant is never taken, however large the budget
    assert torch.equal(impact.critical_region(s, "segments", fraction=1.0, segments=seg)[0],
                       q[0] | q[1] | q[3])
    with pytest.raises(ParameterError, match="needs segments="):
        impact.critical_region(s, "segments")


def test_removal_modes():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    r = torch.zeros(2, 16, 16, dtype=torch.bool)
    r[:, 4:8, 4:8] = True
    for how, fill in (("zero", torch.zeros_like(x)), (0.5, torch.full_like(x, 0.5)),
                      ("mean", x.mean((2, 3), keepdim=True).expand_as(x))):
        out = impact.remove(x, r, how)
        m = r[:, None].expand_as(x)
        assert torch.equal(out[m], fill[m]) and torch.equal(out[~m], x[~m])
    blurred = impact.remove(x, r, "blur", blur_sigma=2.0)
    assert torch.equal(blurred[~r[:, None].expand_as(x)], x[~r[:, None].expand_as(x)])
    assert blurred[r[:, None].expand_as(x)].std() < x[r[:, None].expand_as(x)].std()
    with pytest.raises(ParameterError, match="removal='smudge' is not accepted"):
        impact.remove(x, r, "smudge")


def test_impact_coverage_known_answers():
    a = torch.zeros(3, 6, 6, dtype=torch.bool)
    a[:, 1:3, 1:3] = True                                            # the patch: 4 pixels
    c = torch.zeros(3, 6, 6, dtype=torch.bool)
    c[0] = a[0]                                                      # identical
    c[1, 4:6, 4:6] = True                                            # disjoint
    c[2, 1:3, 2:4] = True                                            # 2 shared of 6 in the union
    cov = metrics.score(None, torch.rand(3, 3, 6, 6), None, c.float(), "impact_coverage",
                        regions=c, patch_masks=a)
    torch.testing.assert_close(cov, torch.tensor([1.0, 0.0, 1 / 3], dtype=torch.float64))
    # from maps: the top 4 pixels of a map equal to the patch are the patch
    cov = metrics.score(None, torch.rand(3, 3, 6, 6), None, a.float(), "impact_coverage",
                        fraction=4 / 36, patch_masks=a)
    assert cov.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ParameterError, match="needs patch_masks="):
        metrics.score(None, torch.rand(3, 3, 6, 6), None, a.float(), "impact_coverage")
    with pytest.raises(ParameterError, match="at least one pixel"):
        impact.coverage(c, torch.zeros_like(a))


def test_selection_for_methods_and_parameter_errors():
    assert impact.selection_for("lime") == "segments" == impact.selection_for("kernel_shap")
    assert impact.selection_for("expected_gradients") == "pixels"
    assert impact.selection_for("lime", "pixels") == "pixels"
    s = torch.rand(1, 4, 4)
    with pytest.raises(ParameterError, match="selection='top' is not accepted"):
        impact.critical_region(s, "top")
    with pytest.raises(ParameterError, match="fraction=1.5 must be"):
        impact.critical_region(s, "pixels", fraction=1.5)
    with pytest.raises(ParameterError, match="needs the model"):
        metrics.score(None, torch.rand(1, 3, 4, 4), None, s, "impact")


def test_segment_labels_are_the_superpixels_lime_scored():
    from xailib import data
    from xailib.methods import explain
    model = models.load_model("resnet_mini")
    x = data.load_shapes("test", n=1).images
    y = models.predict(model, x).argmax(1)
    lime_map = explain(model, x, y, "lime", num_samples=60)
    seg = impact.segment_labels(x)[0]
    # LIME's map is constant on each of these superpixels, and differs between most of them
    values = [lime_map[0][seg == k].unique() for k in range(int(seg.max()) + 1)]
    assert all(len(v) == 1 for v in values)
    assert len({round(float(v), 8) for v in values}) > len(values) // 2
    # the critical region of LIME's map is made of whole superpixels, about 10 % of the image
    top = impact.critical_region(lime_map, "segments", 0.1, segments=seg[None])[0]
    for k in range(int(seg.max()) + 1):
        part = top[seg == k]
        assert part.all() or not part.any()
    assert 0.05 < top.float().mean() < 0.15


def test_grid_controls_are_matched_and_a_blind_model_scores_nothing():
    import numpy as np
    model = RegionModel(gain=8.0, rest=(4.0,))
    x = _ones(4)
    decisive = REGION.float().expand(4, H, W) + 0.01 * torch.arange(H * W).view(H, W) / (H * W)
    elsewhere = (~REGION).float().expand(4, H, W).contiguous()
    seg = torch.arange(H * W).view(1, H, W).div(8, rounding_mode="floor").expand(4, H, W)   # rows as segments
    g = impact_score.grid(model, x, 0, {"decisive": decisive, "elsewhere": elsewhere}, removals=("zero",),
                    fractions=(0.25,), segments=seg, n_random=16, seed=0)
    assert set(g.method) == {"decisive", "elsewhere", impact_score.CONTROL}
    # own = pixels for a pixel method: the same outcome
    own = g[(g.method == "decisive") & (g.granularity == "own")].impact.to_numpy()
    pix = g[(g.method == "decisive") & (g.granularity == "pixels")].impact.to_numpy()
    assert np.array_equal(own, pix) and own.tolist() == [1, 1, 1, 1]   # removing 16 of the 16 region pixels
    assert g[(g.method == "elsewhere") & (g.granularity == "pixels")].impact.tolist() == [0, 0, 0, 0]
    ctrl = g[g.method == impact_score.CONTROL]
    assert ((ctrl.impact >= 0) & (ctrl.impact <= 1)).all()
    assert set(ctrl.granularity) == {"pixels", "segments"}
    # every row carries the control of its own selection
    for _, r in g[g.method != impact_score.CONTROL].iterrows():
        c = ctrl[(ctrl.selection == r.selection) & (ctrl.image == r.image)].impact.item()
        assert r.control == c
    # a model that ignores its input never changes its decision: nothing is impactful
    blind = RegionModel(gain=0.0, rest=(-1.0,))
    g0 = impact_score.grid(blind, x, 0, {"decisive": decisive}, removals=("zero", "blur"), fractions=(0.1, 0.5),
                     segments=seg, n_random=4)
    assert g0.impact.sum() == 0 and g0.control.sum() == 0
    assert impact.random_maps(3, (H, W), 2, seed=5).shape == (2, 3, H, W)
    torch.testing.assert_close(impact.random_maps(3, (H, W), 2, seed=5), impact.random_maps(3, (H, W), 2, seed=5))
    with pytest.raises(ParameterError):
        impact_score.grid(model, x, 0, {"d": decisive}, granularities=("blobs",))


def test_grid_wide_round_trips_and_keeps_every_own_row():
    model = RegionModel(gain=8.0, rest=(4.0,))
    x = _ones(4)
    seg = torch.arange(H * W).view(1, H, W).div(8, rounding_mode="floor").expand(4, H, W)
    maps = {"gradient": torch.rand(4, H, W, generator=torch.Generator().manual_seed(0)),
            "lime": torch.rand(4, H, W, generator=torch.Generator().manual_seed(1))}
    g = impact_score.grid(model, x, 0, maps, removals=("zero", "blur"), fractions=(0.1, 0.25), segments=seg, n_random=3)
    wide = impact_score.grid_wide(g)
    assert len(wide) == 2 * 2 * 2 * 4            # removal x fraction x selection x image
    back = impact_score.grid_long(wide)
    cols = ["method", "removal", "fraction", "granularity", "image"]
    a = g[g.method != impact_score.CONTROL][cols + ["impact", "control"]].sort_values(cols).reset_index(drop=True)
    b = back[cols + ["impact", "control"]].sort_values(cols).reset_index(drop=True)
    assert a.equals(b.astype(a.dtypes.to_dict()))
    own = back[(back.granularity == "own")]
    assert set(own[own.method == "lime"].selection) == {"segments"}
    assert set(own[own.method == "gradient"].selection) == {"pixels"}
