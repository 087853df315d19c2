"""Sanity checks (Adebayo et al. 2018): layer order, randomisation, similarity measures, verdicts."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xailib import data, models, verdicts
from xailib.methods import explain, method_names
from xailib.chapters import sanity_checks as sanity
from xailib.map_cache import Maps
from xailib.errors import ParameterError
from xailib.metrics import randomisation as rnd
from xailib.metrics import similarity as sim
from xailib.results import ResultStore


class Reversed(nn.Module):
    """Declares its layers in the opposite order to the one data flows through them."""

    def __init__(self):
        super().__init__()
        self.last = nn.Linear(8, 3)
        self.norm = nn.BatchNorm1d(8)
        self.first = nn.Linear(12, 8)

    def forward(self, x):
        return self.last(torch.relu(self.norm(self.first(x.flatten(1)))))


@pytest.fixture(scope="module")
def resnet():
    return models.load_model("resnet_mini")


@pytest.fixture(scope="module")
def shapes():
    return data.load_shapes("test", n=8)


def test_layers_follow_the_forward_pass_not_the_declaration():
    got = rnd.layers(Reversed(), torch.rand(2, 12))
    assert [l.name for l in got] == ["first", "last"]
    assert got[0].norms == ("norm",)                 # the normalisation belongs to the layer before it


def test_the_cascade_on_a_resnet_starts_at_the_output_and_ends_at_the_stem(resnet, shapes):
    order = [l.name for l in rnd.layers(resnet, shapes.images)]
    assert order[0] == "stem.0" and order[-1] == "fc"
    # the shortcut convolution runs after the block's second convolution (its call, not its declaration)
    assert order.index("layer2.shortcut.0") == order.index("layer2.conv2") + 1
    steps = rnd.plan(resnet, shapes.images, "cascading")
    assert [s.layer for s in steps] == order[::-1]   # a bottom-up cascade would start at stem.0
    assert steps[0].layer == "fc" and steps[-1].layer == "stem.0"
    assert [s.index for s in steps] == list(range(1, len(order) + 1))


def _changed(a: nn.Module, b: nn.Module) -> set:
    sa, sb = a.state_dict(), b.state_dict()
    return {k.rsplit(".", 1)[0] for k in sa if not torch.equal(sa[k], sb[k])}


@pytest.mark.parametrize("mode", rnd.MODES)
def test_randomisation_changes_only_the_chosen_layers(resnet, shapes, mode):
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    all_layers = rnd.layers(resnet, shapes.images)
    net = rnd.randomise(resnet, ["layer2.conv1"], all_layers, mode=mode, batchnorm="reset")
    assert _changed(resnet, net) == {"layer2.conv1", "layer2.bn1"}
    after = resnet.state_dict()                       # the model passed in is untouched
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_cascade_keeps_earlier_steps_and_independent_steps_draw_the_same_values(resnet, shapes):
    casc = rnd.plan(resnet, shapes.images, "cascading", seed=3)
    ind = rnd.plan(resnet, shapes.images, "independent", seed=3)
    two, one = casc[1].build(), ind[1].build()
    assert _changed(resnet, two) == {"fc", "layer3.shortcut.0", "layer3.shortcut.1"}
    assert _changed(resnet, one) == {"layer3.shortcut.0", "layer3.shortcut.1"}
    torch.testing.assert_close(two.layer3.shortcut[0].weight, one.layer3.shortcut[0].weight, rtol=0, atol=0)
    other = rnd.plan(resnet, shapes.images, "independent", seed=4)[1].build()
    assert not torch.equal(other.layer3.shortcut[0].weight, one.layer3.shortcut[0].weight)


def test_the_modes_do_what_they_say(resnet, shapes):
    all_layers = rnd.layers(resnet, shapes.images)
    w = resnet.layer2.conv1.weight
    shuffled = rnd.randomise(resnet, ["layer2.conv1"], all_layers, mode="shuffle").layer2.conv1.weight
    torch.testing.assert_close(shuffled.flatten().sort().values, w.flatten().sort().values, rtol=0, atol=0)
    assert not torch.equal(shuffled, w)
    fc = rnd.randomise(resnet, ["fc"], all_layers, mode="normal", std=0.1).fc
    assert fc.weight.abs().max() <= 0.2 and torch.equal(fc.bias, torch.zeros_like(fc.bias))
    assert 0.07 < fc.weight.std() < 0.1                # a normal cut at two standard deviations
    for bn, stats_kept in (("affine", True), ("reset", False)):
        norm = rnd.randomise(resnet, ["layer2.conv1"], all_layers, batchnorm=bn).layer2.bn1
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.equal(norm.bias, torch.zeros_like(norm.bias))
        assert torch.equal(norm.running_mean, resnet.layer2.bn1.running_mean) == stats_kept
    kept = rnd.randomise(resnet, ["layer2.conv1"], all_layers, batchnorm="keep").layer2.bn1
    assert torch.equal(kept.weight, resnet.layer2.bn1.weight)


def test_bad_randomisation_input_is_named(resnet, shapes):
    all_layers = rnd.layers(resnet, shapes.images)
    with pytest.raises(ParameterError, match="no weight layer named 'conv9'"):
        rnd.randomise(resnet, ["conv9"], all_layers)
    with pytest.raises(ParameterError, match="mode"):
        rnd.randomise(resnet, ["fc"], all_layers, mode="zeros")
    with pytest.raises(ParameterError, match="std"):
        rnd.randomise(resnet, ["fc"], all_layers, mode="normal", std=-1)
    with pytest.raises(ParameterError, match="test"):
        rnd.plan(resnet, shapes.images, "bottom_up")
    with pytest.raises(ParameterError, match="no layer with parameters"):
        rnd.layers(nn.ReLU(), torch.rand(1, 3))


@pytest.mark.parametrize("measure", sim.MEASURES)
def test_a_map_is_identical_to_itself_and_unrelated_to_independent_noise(measure):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 64, 64, generator=g), torch.randn(16, 64, 64, generator=g)
    np.testing.assert_allclose(sim.similarity(a, a, measure), 1.0, atol=1e-9)
    # HOG features of any two noise images share the pixel grid's orientation profile (about 0.09
    # here): HOG's "unrelated" is not 0, one reason every curve of the chapter has its own floor
    assert abs(sim.similarity(a, b, measure).mean()) < (0.15 if measure.startswith("hog") else 0.05)


def test_similarity_known_answers():
    x = torch.arange(64.0).view(1, 8, 8)
    assert sim.similarity(x, -x, "spearman")[0] == pytest.approx(-1.0)
    assert sim.similarity(x, -x, "spearman_abs")[0] == pytest.approx(1.0)       # same magnitudes
    assert sim.similarity(x, 3 * x + 2, "spearman")[0] == pytest.approx(1.0)    # ranks, not values
    assert sim.similarity(x, torch.zeros_like(x), "spearman_abs")[0] == 0.0      # no rank order: 0, not NaN
    both = sim.similarities(x, x ** 2, ["hog", "hog_spearman", "ssim"])
    assert both["hog"][0] == pytest.approx(sim.similarity(x, x ** 2, "hog")[0])
    assert list(both) == ["hog", "hog_spearman", "ssim"]


def test_bad_similarity_input_is_named():
    with pytest.raises(ParameterError, match="measure"):
        sim.similarity(torch.rand(2, 8, 8), torch.rand(2, 8, 8), "pearson")
    with pytest.raises(ParameterError, match="differ in shape"):
        sim.similarity(torch.rand(2, 8, 8), torch.rand(3, 8, 8))
    with pytest.raises(ParameterError, match="NaN"):
        sim.similarity(torch.full((1, 8, 8), float("nan")), torch.rand(1, 8, 8))


def test_the_edge_detector_fails_the_test_and_the_gradient_passes(tmp_path):
    net = models.load_model("vgg_mini")
    ds = data.load_shapes("test", n=8)
    store = ResultStore("test_sanity", {"t": 1}, root=tmp_path, publish=False, verbose=False)
    maps = Maps(store, ds.images, ds.labels, {})
    per_image, kept = sanity.model_tests(maps, "vgg_mini", net, ["gradient", "edge"], tests=("cascading",),
                                         keep=2, progress=False)
    table = verdicts.claims_table(sanity.claims(per_image, tests=("cascading",)))
    got = dict(zip(table.claim, table.verdict))
    assert got["edge: changes when every layer is randomised"] == verdicts.FAILS
    assert got["gradient: changes when every layer is randomised"] == verdicts.HOLDS
    # the unchanged model's self-similarity is no step of a test, so it enters no average
    steps = per_image[per_image.test == "cascading"].step
    assert steps.min() == 1 and steps.max() == len(rnd.layers(net, ds.images))
    assert set(per_image.test) == {"ceiling", "cascading", "floor"}
    assert (per_image[per_image.method == "edge"].spearman_abs == 1.0).all()
    assert kept[0, "gradient"].shape == (2, 64, 64)
    # resumable: a second call reads every map from the store (same numbers)
    again, _ = sanity.model_tests(maps, "vgg_mini", net, ["gradient", "edge"], tests=("cascading",), progress=False)
    pd.testing.assert_frame_equal(per_image, again)
    # the independent test on fewer methods: the cascade keeps both, the same numbers
    both, _ = sanity.model_tests(maps, "vgg_mini", net, ["gradient", "edge"], progress=False,
                                 independent_methods=["edge"])
    assert set(both[both.test == "independent"].method) == {"edge"}
    assert set(both[both.test == "cascading"].method) == {"gradient", "edge"}
    pd.testing.assert_frame_equal(both[both.test != "independent"].reset_index(drop=True), per_image)


def test_smoothed_maps_without_noise_are_the_plain_maps(tmp_path):
    net = models.load_model("vgg_mini")
    ds = data.load_shapes("test", n=3)
    store = ResultStore("test_sanity", {"t": 2}, root=tmp_path, publish=False, verbose=False)
    maps = Maps(store, ds.images, ds.labels, {})
    smooth = maps.smoothed("s", net, "gradient", n_samples=3, noise=0.0, seed=0)
    torch.testing.assert_close(smooth, explain(net, ds.images, ds.labels, "gradient"), rtol=1e-5, atol=1e-9)


def test_summary_intervals_and_agreement():
    rows = pd.DataFrame({"model": "m", "test": "cascading", "step": 1, "layer": "fc", "method": "gradient",
                         "image": range(6), "spearman_abs": [0.1, 0.2, 0.3, 0.1, 0.2, 0.3]})
    s = sanity.summary(rows).iloc[0]
    assert s["mean"] == pytest.approx(0.2) and 0.1 <= s["low"] < 0.2 < s["high"] <= 0.3
    table = pd.DataFrame({"claim": ["gradient: x", "guided_backprop: x", "lime: x", "edge: x"],
                          "paper": ["changes (x)", "largely unchanged (y)", "not in the papers' panel",
                                    "largely unchanged (by construction)"],
                          "verdict": [verdicts.HOLDS, verdicts.HOLDS, verdicts.FAILS, verdicts.FAILS]})
    assert list(sanity.agreement(table)) == ["agrees", "disagrees", "—", "— (control)"]


def test_claims_as_the_paper_frames_them():
    """Guided backprop is judged after the top layers (the paper's 'higher-layer' claim), every
    other method after the last step; a method whose seeds disagree gets no verdict."""
    n = 12
    def rows(method, test, step, value):
        return pd.DataFrame({"model": "m", "test": test, "step": step, "layer": "l", "method": method,
                             "image": range(n), "spearman_abs": np.full(n, value) + np.linspace(0, 0.01, n)})
    per_image = pd.concat([rows("guided_backprop", "cascading", 3, 0.95), rows("guided_backprop", "cascading", 8, 0.1),
                           rows("gradient", "cascading", 3, 0.9), rows("gradient", "cascading", 8, 0.1),
                           rows("neuromask", "cascading", 8, 0.1), rows("neuromask", "ceiling", 0, 0.2),
                           rows("gradient", "ceiling", 0, 1.0)], ignore_index=True)
    t = verdicts.claims_table(sanity.claims(per_image, tests=("cascading",))).set_index("claim")
    assert t.loc["guided_backprop: changes when the top 3 layers are randomised", "verdict"] == verdicts.FAILS
    assert "top 3 layers" in t.loc["guided_backprop: changes when the top 3 layers are randomised", "setting"]
    assert t.loc["gradient: changes when every layer is randomised", "verdict"] == verdicts.HOLDS
    dead = t.loc["neuromask: changes when every layer is randomised"]
    assert dead["verdict"] == verdicts.UNJUDGED and "own seeds" in dead["rule"]
    assert list(sanity.agreement(t.reset_index())) == ["agrees", "agrees", "—"]


def test_controls_are_left_out_of_all_unless_asked():
    assert "edge" not in method_names(learned=True)
    assert "edge" in method_names(controls=True)
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8:] = 1.0
    e = explain(nn.Sequential(nn.Flatten(), nn.Linear(768, 2)), x, 0, "edge")[0]
    assert e[:, 7:9].min() > 0 and e[:, :6].max() == 0 and e[:, 10:].max() == 0   # the edge, and only it


def test_the_smooth_random_null_is_smooth_seeded_by_the_image_and_blind_to_the_model():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    s = explain(net, x, 0, "smooth_random")
    assert s.shape == (3, 32, 32) and s.amin((1, 2)).eq(0).all() and s.amax((1, 2)).eq(1).all()
    assert torch.equal(s[1:], explain(net, x[1:], 0, "smooth_random"))        # any batch
    assert torch.equal(s, explain(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2)), x, 1,
                                          "smooth_random"))                              # any model, any class
    r = explain(net, x, 0, "random")
    lag1 = lambda m: np.corrcoef(m[:, :, :-1].flatten(), m[:, :, 1:].flatten())[0, 1]   # noqa: E731
    assert lag1(s.numpy()) > 0.95 and abs(lag1(r.numpy())) < 0.1                       # blobs, not noise
    assert "smooth_random" in method_names(controls=True) and "smooth_random" not in method_names()


def test_randomised_copies_reuse_the_measured_batch_size(resnet, shapes, monkeypatch):
    from xailib import inference
    monkeypatch.delenv("XAILIB_BATCH_SIZE", raising=False)     # measured, not pinned (scripts/test.sh pins it)
    inference.forward(resnet, shapes.images)          # measures (or reuses) the trained model's batch size
    net = rnd.random_network(resnet, shapes.images)
    assert inference._BATCHES[net] == inference._BATCHES[resnet]


def test_edge_resemblance_known_answers(tmp_path):
    """The edge detector is compared with each other method's map on the trained network: a method
    registered as the edge detector itself would score 1; the claim holds for a table of
    similarities well above the threshold, does not hold well below it, and the edge detector is
    never judged against itself."""
    net = models.load_model("vgg_mini")
    ds = data.load_shapes("test", n=4)
    store = ResultStore("test_sanity", {"t": 3}, root=tmp_path, publish=False, verbose=False)
    maps = Maps(store, ds.images, ds.labels, {})
    table = sanity.edge_resemblance(maps, "vgg_mini", net, ["gradient", "edge"], measures=["spearman_abs"])
    assert set(table.method) == {"gradient"} and len(table) == 4 and set(table.test) == {"edge"}
    edge = maps("maps/vgg_mini/original", net, "edge")
    grad = maps("maps/vgg_mini/original", net, "gradient")
    want = sanity.compare(edge, grad, ["spearman_abs"]).spearman_abs.to_numpy()
    np.testing.assert_allclose(table.spearman_abs.to_numpy(), want)
    with pytest.raises(ParameterError, match="other than the edge detector"):
        sanity.edge_resemblance(maps, "vgg_mini", net, ["edge"])
    # the claim, on similarities set by hand: 20 images at 0.9, 20 at 0.1, 20 at the threshold
    rows = [dict(model="m", test="edge", step=0, layer="", method=name, image=i, spearman_abs=v)
            for name, v in (("alike", 0.9), ("unlike", 0.1), ("borderline", 0.5)) for i in range(20)]
    got = verdicts.claims_table(sanity.edge_claims(pd.DataFrame(rows)))
    assert dict(zip(got.claim, got.verdict)) == {"alike: looks like an edge detector": verdicts.HOLDS,
                                                "unlike: looks like an edge detector": verdicts.FAILS,
                                                "borderline: looks like an edge detector": verdicts.OPEN}


def test_the_independent_table_names_the_layer_that_moves_a_map_most():
    rows = [dict(model="net", test="independent", step=k, layer=f"L{k}", method=m, image=i,
                 spearman_abs={"stays": 0.9, "moves": 0.9 if k == 1 else 0.1 * k}[m])
            for k in (1, 2) for m in ("stays", "moves") for i in range(3)]
    rows.append(dict(model="net", test="cascading", step=1, layer="L1", method="stays", image=0, spearman_abs=0.0))
    table = sanity.independent_table(pd.DataFrame(rows))
    assert list(table.columns) == ["1: L1", "2: L2"]
    assert table.loc[("net", "moves"), "2: L2"] == pytest.approx(0.2)
    text = sanity.independent_reading(table, 0.5)
    assert "below 0.5 for stays;" in text and "moves (L2, 0.20)" in text
    with pytest.raises(ParameterError, match="no row of the independent test"):
        sanity.independent_table(pd.DataFrame(rows[-1:]))


def test_the_committed_cascade_example_keeps_a_few_steps_and_reads_back(tmp_path):
    from xailib.chapters import sanity_checks as sanity
    assert sanity.example_steps(50) == [1, 2, 3, 5, 10, 23, 50]       # EfficientNet-Lite0's 50 layers
    assert sanity.example_steps(8) == [1, 2, 3, 5, 8]
    assert sanity.example_steps(1) == [1]
    # a 56-px map pooled to 28 px: each pixel the mean of a 2 x 2 block of absolute values, over the largest
    signed = -torch.arange(56 * 56, dtype=torch.float32).view(56, 56)
    maps = {(0, "gradient"): signed, (3, "gradient"): torch.zeros(56, 56),
            (0, "edge"): torch.ones(56, 56), (3, "edge"): 2 * torch.ones(56, 56)}
    steps = [(0, "trained"), (3, "→ fc")]
    table = sanity.cascade_example(maps, ["gradient", "edge"], steps, image=5)
    assert len(table) == 2 * 2 * 28 and table["image"].eq(5).all()
    path = tmp_path / "cascade_example.csv"
    table.to_csv(path, float_format="%.6g")
    got, methods, got_steps, image = sanity.cascade_from_example(pd.read_csv(path))
    assert methods == ["gradient", "edge"] and got_steps == steps and image == 5
    pooled = torch.nn.functional.avg_pool2d(signed.abs()[None, None], 2)[0, 0]
    torch.testing.assert_close(got[0, "gradient"], (pooled / pooled.max()).double(), rtol=1e-5, atol=1e-6)
    assert got[3, "gradient"].eq(0).all() and got[0, "edge"].eq(1).all() and got[3, "edge"].eq(1).all()
