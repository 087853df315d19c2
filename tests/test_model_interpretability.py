"""Network Dissection and Consensus: known answers, properties and bad input."""
import numpy as np
import pytest
import torch
from torch import nn

from xailib import consensus as cs
from xailib import dissection as nd
from xailib import variants, verdicts
from xailib.errors import ParameterError


class Probe(nn.Module):
    """Three units at the image's resolution: a copy of the red channel, a constant, and the
    green channel (ReLU'd, so probe_layers finds them)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.relu = nn.ReLU()

    def forward(self, x):
        units = torch.stack([x[:, 0], torch.full_like(x[:, 0], 0.5), x[:, 1]], 1) * self.scale
        return self.relu(units).mean((2, 3))


def probe_images(n=6, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        y, x = torch.randint(0, size - 5, (2,), generator=g)
        masks[i, y:y + 5, x:x + 5] = True
    images = torch.zeros(n, 3, size, size)
    images[:, 0] = masks.float()                                   # red: exactly the concept
    images[:, 1] = torch.rand(n, size, size, generator=g) * 0.5    # green: noise
    return images, masks


def test_a_unit_that_copies_a_concept_scores_iou_1_and_a_constant_unit_detects_nothing():
    images, masks = probe_images()
    d = nd.dissect(Probe(), images, {"square": masks, "corner": torch.zeros_like(masks).index_fill_(1, torch.tensor([0]), True)})
    iou = d.iou()
    assert iou[0, 0] == pytest.approx(1.0)                          # the copy: IoU 1 with its concept
    assert iou[1].max() == 0                                        # the constant unit selects nothing
    table = d.table()
    assert table.detector.tolist() == [True, False, False] and table.concept[0] == "square"
    s = nd.summary(table)
    assert s.loc["relu", "detectors"] == 1 and s.loc["all layers", "unique detectors"] == 1
    # the green noise unit keeps about its top 0.5 % of positions
    assert d.selected[:, 2].sum() == pytest.approx(0.005 * masks.numel(), rel=0.5)


def test_resampling_weights_equal_dissecting_the_resampled_images():
    images, masks = probe_images(n=5)
    concepts = {"square": masks}
    d = nd.dissect(Probe(), images, concepts)
    weights = np.array([[2, 0, 1, 1, 1]])
    idx = torch.tensor([0, 0, 2, 3, 4])
    # the same thresholds: counts re-summed, not recomputed (the copy unit's threshold is 1 either way)
    again = nd.dissect(Probe(), images[idx], {"square": masks[idx]})
    np.testing.assert_allclose(d.iou(weights)[0, :2], again.iou()[:2])


def test_benchmark_concepts_are_exact_masks():
    imgs = variants.load_variant("bam", "test", n=12)
    concepts, families = nd.benchmark_concepts(imgs)
    objects = [c for c, f in families.items() if f == "object"]
    scenes = [c for c, f in families.items() if f == "scene"]
    assert set(families.values()) == {"object", "scene", "colour"}
    union = torch.stack([concepts[c] for c in objects]).any(0)
    assert torch.equal(union, imgs.masks)                           # objects: exactly the object masks
    everywhere = torch.stack([concepts[c] for c in objects + scenes]).sum(0)
    assert torch.equal(everywhere, torch.ones_like(everywhere))     # object or scene: each pixel once
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    assert nd.colour_names(red).eq(list(nd.COLOURS).index("red")).all()


def test_dissection_refuses_bad_input():
    images, masks = probe_images()
    with pytest.raises(ParameterError, match="one \\(H, W\\) mask per image"):
        nd.dissect(Probe(), images, {"square": masks[:3]})
    with pytest.raises(ParameterError, match="no module named"):
        nd.dissect(Probe(), images, {"square": masks}, layers=["features.9"])
    with pytest.raises(ParameterError, match="at least one concept"):
        nd.dissect(Probe(), images, {})
    with pytest.raises(ParameterError, match="families has no entry"):
        nd.dissect(Probe(), images, {"square": masks}, families={"other": "object"})


def test_the_consensus_of_identical_networks_equals_each():
    torch.manual_seed(0)
    m = torch.randn(4, 8, 8)
    c = cs.consensus({"a": m, "b": m.clone(), "c": 3 * m})          # a scale does not change a vote
    torch.testing.assert_close(c, cs.normalise(m))
    torch.testing.assert_close(cs.agreement(m, c), torch.ones(4, dtype=torch.float64))


def test_agreement_is_a_cosine_of_normalised_maps():
    a = torch.zeros(2, 4, 4)
    b = torch.zeros(2, 4, 4)
    a[0, 0, 0] = b[0, 3, 3] = 1                                     # disjoint: 0
    a[1, :2] = 1
    b[1, :1] = 1                                                    # 4 of a's 8 pixels, all of b's 4
    got = cs.agreement(a, b)
    assert got[0] == 0 and got[1] == pytest.approx(4 / np.sqrt(8 * 4))
    assert cs.agreement(torch.zeros(1, 4, 4), b[:1])[0] == 0          # no mass: 0, not NaN
    with pytest.raises(ParameterError, match="at least two"):
        cs.consensus({"a": a})
    with pytest.raises(ParameterError, match="same images"):
        cs.consensus({"a": a, "b": torch.zeros(2, 5, 5)})


def test_bootstrap_statistic_of_a_mean_matches_its_value_and_decides_a_clear_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, 200)
    c = verdicts.bootstrap_statistic(lambda w: (w @ x) / w.sum(1), len(x), n_boot=2000)
    assert c.mean == pytest.approx(x.mean()) and c.low < c.mean < c.high
    assert c.p == pytest.approx(2 / 2001)                           # every replicate above 0
    assert verdicts.judge(c).verdict == verdicts.HOLDS
    flat = verdicts.bootstrap_statistic(lambda w: np.zeros(len(w)), 50, n_boot=100)
    assert flat.p == 1.0 and verdicts.judge(flat).verdict == verdicts.OPEN


def test_unit_maps_are_what_dissect_thresholds():
    images, masks = probe_images()
    s = nd.unit_maps(Probe(), images, "relu", 0)
    torch.testing.assert_close(s, masks.float())                   # the copy unit, at the image's size
    with pytest.raises(ParameterError, match="has 3 units"):
        nd.unit_maps(Probe(), images, "relu", 3)


def test_counts_do_not_depend_on_how_many_images_are_upsampled_at_once(monkeypatch):
    images, masks = probe_images(n=7)
    whole = nd.dissect(Probe(), images, {"square": masks})
    monkeypatch.setattr(nd, "MASK_ELEMENTS", 16 * 16 * 3 * 2)       # two images at a time
    parts = nd.dissect(Probe(), images, {"square": masks})
    assert np.array_equal(whole.inter, parts.inter) and np.array_equal(whole.selected, parts.selected)


def test_colour_concepts_name_pure_colours_exactly():
    img = torch.zeros(2, 3, 8, 8)
    img[:, 0, :, :4] = 1.0                     # left half red
    img[:, 2, :, 4:] = 1.0                     # right half blue
    concepts, families = nd.colour_concepts(img)
    assert set(concepts) == {"red (colour)", "blue (colour)"} and set(families.values()) == {"colour"}
    assert concepts["red (colour)"][:, :, :4].all() and not concepts["red (colour)"][:, :, 4:].any()
    assert concepts["blue (colour)"][:, :, 4:].all()


def test_random_init_is_seeded_and_untrained():
    from xailib import models
    a, b, c = (models.random_init("resnet_mini", s) for s in (0, 0, 1))
    sa, sb, sc = (m.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    trained = models.load_model("resnet_mini").state_dict()
    assert any(not torch.equal(sa[k], trained[k]) for k in sa if sa[k].is_floating_point())
    with pytest.raises(ParameterError):
        models.random_init("no_such_network")


def test_claims_kept_as_replicates_are_judged_as_before():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.3, 1, 40), rng.normal(0, 1, 40)
    stat = lambda w, v=x: (w @ v) / w.sum(1)                     # a mean, resampled
    claims = [verdicts.Claim("x is above 0", "m", verdicts.bootstrap_statistic(stat, 40, n_boot=500, seed=1),
                             paper="p", setting="s", scale=100.0, unit=" pts"),
              verdicts.Claim("y is above 0", "m", verdicts.bootstrap_statistic(lambda w: (w @ y) / w.sum(1), 40,
                                                                                n_boot=500, seed=1),
                             degenerate="the setting measures nothing")]
    spec, draws = verdicts.claims_frames(claims)
    import io
    import pandas as pd
    spec = pd.read_csv(io.StringIO(spec.set_index(["claim", "model"]).to_csv()))      # the committed round trip
    draws = pd.read_csv(io.StringIO(draws.rename_axis("draw").to_csv()), index_col=0)
    again = verdicts.claims_from_frames(spec, draws)
    before, after = verdicts.claims_table(claims), verdicts.claims_table(again)
    pd.testing.assert_frame_equal(before, after)
    with pytest.raises(ParameterError):
        verdicts.claims_from_frames(spec, draws.iloc[:, :1])
    with pytest.raises(ParameterError):                                  # a paired comparison is not one
        verdicts.claims_frames([verdicts.Claim("c", "m", verdicts.paired(x, y, n_boot=100), margin=0.1)])


def test_trusted_reads_the_book_answer(tmp_path):
    from xailib.chapters import model_interpretability as mi
    folder = tmp_path / "10_leaderboard"
    folder.mkdir()
    (folder / "questions.csv").write_text(
        ",question,model,methods that hold up,hold up,fail,not resolved,no verdict,of,columns\n"
        '0,localises the object,m,"a, b (approximate)",2,0,1,0,3,x\n'
        "1,is faithful to the model,m,a,1,0,2,0,3,x\n"
        "2,is faithful to the model,other,not answered,0,0,0,3,3,x\n"
        "3,finds a trojan's trigger,m,not answered on this network,0,0,0,3,3,x\n")
    book = mi.trusted(["a", "b", "c"], "m", root=tmp_path)
    assert book["trusted"].tolist() == [True, False, False]
    assert book["localises the object"].tolist() == [True, True, False]
    assert "finds a trojan's trigger" not in book                       # not answered on this network
    assert "trusted" not in mi.trusted(["a"], "m", root=tmp_path / "nowhere")


def test_reachable_bounds_every_unit_iou_by_its_real_selected_share():
    import pandas as pd
    from xailib.chapters import model_interpretability as mi
    images, masks = probe_images(n=8)
    concepts = {"square": masks, "most": ~masks}
    d = nd.dissect(Probe(), images, concepts, quantile=0.02)
    share = mi.coverage(concepts)
    bound = mi.reachable(d, share)
    iou = d.iou()
    for c, name in enumerate(d.concepts):
        assert iou[:, c].max() <= bound[name] + 1e-12                      # a bound that holds
    s = mi.selected_shares(d)
    p = share.to_numpy()
    manual = (np.minimum(s[:, None], p) / np.maximum(s[:, None], p)).max(0)
    np.testing.assert_allclose(bound.to_numpy(), manual)
    assert isinstance(bound, pd.Series) and list(bound.index) == ["square", "most"]


def test_lowest_names_the_last_network_in_each_order():
    import pandas as pd
    from xailib.chapters import model_interpretability as mi
    rows = []
    for method in ("a", "b"):
        for net, agree, pxap in (("x", 0.9, 0.8), ("y", 0.5, 0.7), ("z", 0.8, 0.1 if method == "a" else 0.9),
                                 (mi.CONSENSUS, 1.0, 0.95)):
            rows.append({"method": method, "network": net, "image": 0, "agreement": agree, "pxap": pxap})
    text = mi.lowest(pd.DataFrame(rows))
    assert "lowest in agreement with the consensus: y for 2 of 2 methods (a, b)" in text
    assert "z for 1 of 2 methods (a)" in text and "y for 1 of 2 methods (b)" in text


def test_the_consensus_is_judged_against_the_average_member_with_and_without_outliers():
    import pandas as pd
    from xailib.chapters import model_interpretability as mi
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        for net, px in (("good1", 0.8), ("good2", 0.7), ("bad", 0.0), (mi.CONSENSUS, 0.6)):
            rows.append({"method": "m", "network": net, "image": i, "agreement": rng.uniform(), "pxap": px + 0.01 * rng.normal()})
    claims = mi.consensus_claims(pd.DataFrame(rows), ["m"], 200, 0, outliers=["bad"])
    better = [c for c in claims if c.claim.startswith("the consensus finds")]
    assert len(better) == 2
    whole, without = better
    assert whole.comparison.mean > 0 > without.comparison.mean          # the outlier alone pulled the average down
    assert "mean of 3 members" in whole.setting and "without bad" in without.setting


def test_a_unit_can_be_read_before_its_activation_clips():
    class Capped(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(torch.clamp(x[:, :1] * 4 * self.scale - 1, max=2.0)).mean((2, 3))

    images, masks = probe_images(n=4)
    before = nd._activations(Capped(), images, ["act"], 4, read="input")["act"]
    after = nd._activations(Capped(), images, ["act"], 4)["act"]
    torch.testing.assert_close(after, before.clamp(min=0))
    assert (before < 0).any()                                           # the input, not the output
    with pytest.raises(ParameterError, match="read="):
        nd.dissect(Capped(), images, {"square": masks}, layers=["act"], read="both")
