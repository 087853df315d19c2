"""Infidelity and max-sensitivity (xailib.metrics.faithfulness / robustness, through captum.metrics)."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from xailib import data, models
from xailib.methods import explain, superpixels
from xailib.chapters import trustworthiness as trust
from xailib.errors import ParameterError
from xailib.metrics import robustness, score


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.rand(3, 3, 8, 8)
    return net, x


def exact(net, target, x=None):
    """The linear model's exact attribution per pixel: its weights summed over colour channels
    (for pixel-wise perturbations), times the input (for the removal of a square to 0)."""
    w = net[1].weight.detach()[torch.as_tensor(target)].view(-1, 3, 8, 8)
    return w.sum(1) if x is None else (w * x).sum(1)


@pytest.mark.parametrize("rescale", [True, False])
def test_infidelity_of_the_exact_attribution_of_a_linear_model_is_zero(linear, rescale):
    net, x = linear
    t = torch.tensor([0, 1, 2])
    maps = exact(net, t)
    out = score(net, x, t, maps, "infidelity", rescale=rescale, n_samples=16, fast=False)
    np.testing.assert_allclose(out, 0, atol=1e-7)     # float32 rounding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # no input normalisation: the square is filled with 0
        sq = score(net, x, t, exact(net, t, x), "infidelity", perturbation="square", side=3, rescale=rescale,
                   n_samples=16, fast=False)
    np.testing.assert_allclose(sq, 0, atol=1e-7)
    wrong = score(net, x, t, torch.rand(3, 8, 8), "infidelity", rescale=rescale, n_samples=16, fast=False)
    assert (wrong > 1e-3).all()


def test_rescaled_infidelity_ignores_the_maps_scale_and_the_plain_one_does_not():
    net = models.load_model("vgg_mini")
    x = data.load_shapes("test", n=3).images
    g = explain(net, x, 0, "gradient")
    kw = dict(n_samples=8, seed=3)
    r1, r10 = (score(net, x, 0, s, "infidelity", rescale=True, **kw) for s in (g, 10 * g))
    p1, p10 = (score(net, x, 0, s, "infidelity", rescale=False, **kw) for s in (g, 10 * g))
    torch.testing.assert_close(r1, r10, rtol=1e-5, atol=1e-8)
    assert (p10 > 5 * p1).all()
    assert (r1 <= p1 + 1e-9).all()          # the optimal scale can only lower it
    # the same seed draws the same perturbations: the score is reproducible
    torch.testing.assert_close(r1, score(net, x, 0, g, "infidelity", rescale=True, **kw))


class _Scaled(torch.nn.Module):
    """A network whose logits are ``factor`` times another's: the same decisions, the same
    gradients up to the factor."""

    def __init__(self, net, factor):
        super().__init__()
        self.net, self.factor = net, factor

    def forward(self, x):
        return self.factor * self.net(x)


def test_relative_infidelity_ignores_the_networks_logit_scale_and_the_rescaled_one_does_not():
    net = models.load_model("vgg_mini")
    x = data.load_shapes("test", n=3).images
    t = torch.zeros(3, dtype=torch.long)
    g = trust.first_order(net, x, t)              # the signed first-order prediction of the change
    kw = dict(n_samples=8, seed=3, noise=0.01, fast=False)
    big = _Scaled(net, 10.0).eval()
    r1, r10 = (score(m, x, t, g, "infidelity", relative=True, **kw) for m in (net, big))
    a1, a10 = (score(m, x, t, g, "infidelity", **kw) for m in (net, big))
    torch.testing.assert_close(r1, r10, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(a10, 100 * a1, rtol=1e-3, atol=1e-6)     # the confound, in the logit's square
    assert ((r1 >= 0) & (r1 <= 1)).all()
    rnd = score(net, x, t, torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(0)), "infidelity",
                relative=True, **kw)
    assert ((rnd > r1) & (rnd <= 1)).all()     # noise explains less of the change than the first-order map


def test_relative_infidelity_of_the_exact_attribution_of_a_linear_model_is_zero(linear):
    net, x = linear
    t = torch.tensor([0, 1, 2])
    out = score(net, x, t, exact(net, t), "infidelity", relative=True, n_samples=16, fast=False)
    np.testing.assert_allclose(out, 0, atol=1e-6)


@pytest.fixture(scope="module")
def vgg():
    net = models.load_model("vgg_mini")
    imgs = data.load_shapes("test", n=2)
    return net, imgs.images, imgs.labels


def test_sensitivity_of_a_method_that_ignores_its_input_is_zero(vgg):
    net, x, t = vgg
    dummy = torch.zeros(len(x), 64, 64)
    for method in ("constant",):
        assert score(net, x, t, dummy, "max_sensitivity", method=method, n_samples=3).abs().max() == 0
    assert (score(net, x, t, dummy, "max_sensitivity", method="random", n_samples=3) > 0.5).all()


def test_seeded_methods_draw_the_same_noise_for_every_copy(vgg):
    """SmoothGrad with a tiny radius: the copies are (almost) the image, so the maps must be (almost)
    the same; a copy explained with other noise than the original would differ by far more."""
    net, x, t = vgg
    dummy = torch.zeros(len(x), 64, 64)
    tiny = score(net, x, t, dummy, "max_sensitivity", method="smoothgrad", method_params={"n_samples": 4},
                 radius=1e-6, n_samples=3)
    other_seed = explain(net, x, t, "smoothgrad", n_samples=4, seed=1)
    own = explain(net, x, t, "smoothgrad", n_samples=4)
    noise = ((other_seed - own).flatten(1).norm(dim=1) / own.flatten(1).norm(dim=1)).double()
    assert (tiny < 0.05 * noise).all()


@pytest.mark.parametrize("method, params", [("kernel_shap", {"nsamples": 40, "n_segments": 12}),
                                            ("lime", {"num_samples": 40, "n_segments": 12})])
def test_max_sensitivity_with_superpixels_matches_a_hand_computation(vgg, method, params):
    net, x, t = vgg
    n, radius = 3, 0.05
    got = score(net, x, t, torch.zeros(len(x), 64, 64), "max_sensitivity", method=method, method_params=params,
                radius=radius, n_samples=n, seed=5)
    copies = robustness.perturbations(x, radius, n, 5)
    hand, resegmented = [], []
    for i in range(len(x)):
        seg = torch.from_numpy(superpixels(x[i], params["n_segments"]))[None]
        orig = explain(net, x[i:i + 1], t[i:i + 1], method, segments=seg, **params)[0]
        own = [explain(net, copies[i * n + j][None], t[i:i + 1], method, segments=seg, **params)[0]
               for j in range(n)]
        new = [explain(net, copies[i * n + j][None], t[i:i + 1], method, **params)[0] for j in range(n)]
        hand.append(max(float((o - orig).norm() / orig.norm()) for o in own))
        resegmented.append(max(float((o - orig).norm() / orig.norm()) for o in new))
    np.testing.assert_allclose(got, hand, rtol=1e-5)
    assert not np.allclose(got, resegmented, rtol=1e-3)     # re-segmenting each copy measures something else


def test_absolute_sensitivity_is_the_relative_times_the_maps_norm(vgg):
    net, x, t = vgg
    dummy = torch.zeros(len(x), 64, 64)
    rel = score(net, x, t, dummy, "max_sensitivity", method="gradient", n_samples=3)
    ab = score(net, x, t, dummy, "max_sensitivity", method="gradient", n_samples=3, relative=False)
    norm = explain(net, x, t, "gradient").double().flatten(1).norm(dim=1)
    torch.testing.assert_close(ab, rel * norm, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("metric, kw, match", [
    ("infidelity", dict(perturbation="salt"), "perturbation"),
    ("infidelity", dict(noise=0.0), "noise"),
    ("infidelity", dict(n_samples=0), "n_samples"),
    ("infidelity", dict(output="logits"), "output"),
    ("infidelity", dict(relative=True, rescale=False), "relative"),
    ("infidelity", dict(perturbation="square", side=100), "side"),
    ("max_sensitivity", dict(), "needs method="),
    ("max_sensitivity", dict(method="gradient", radius=0), "radius"),
    ("max_sensitivity", dict(method="no_such_method"), "method"),
])
def test_bad_input(vgg, metric, kw, match):
    net, x, t = vgg
    with pytest.raises(ParameterError, match=match):
        score(net, x, t, torch.zeros(len(x), 64, 64), metric, **kw)


def test_segments_must_match_the_images(vgg):
    net, x, t = vgg
    with pytest.raises(ParameterError, match="segments must be"):
        explain(net, x[:1], t[:1], "lime", segments=torch.zeros(1, 32, 32, dtype=torch.long), num_samples=10)


def _rows(reference: float, nulls: dict, n: int = 4, col: str = "infidelity, gaussian (rescaled)"):
    import pandas as pd
    scores = {trust.FIRST_ORDER: reference, "gradient": 0.5, **nulls}
    return pd.DataFrame([{"model": "net", "method": m, "image": i, col: v + 0.001 * i}
                         for m, v in scores.items() for i in range(n)])


def test_a_perturbation_where_the_first_order_map_beats_the_nulls_is_calibrated():
    calib = trust.infidelity_calibration(_rows(0.1, {"random": 0.9, "constant": 0.7, "edge": 0.8}))
    row = calib.iloc[0]
    assert row["strongest null"] == "constant"               # the lowest infidelity of the nulls
    assert row["share removed"] == pytest.approx(1 - 0.1015 / 0.7015)     # 1 - reference / null (means)
    assert not row["degenerate"] and trust.infidelity_reasons(calib) == {}


def test_a_perturbation_where_a_null_fits_as_well_as_the_first_order_map_yields_no_verdict():
    rows = _rows(0.6, {"random": 0.95, "smooth_random": 0.85})      # removes 0.29 of 0.85: under half
    calib = trust.infidelity_calibration(rows)
    assert calib.iloc[0]["degenerate"] and calib.iloc[0]["strongest null"] == "smooth_random"
    why = trust.infidelity_reasons(calib)[("net", "infidelity, gaussian (rescaled)")]
    assert "smooth random" in why and "0.6" in why and "50 %" in why
    assert not trust.infidelity_calibration(_rows(0.4, {"smooth_random": 0.85})).iloc[0]["degenerate"]
    claims = trust.claims(None, None, rows, ["gradient", "random", "smooth_random"], n_boot=200)
    assert claims and all(c.degenerate == why for c in claims)
    assert set(trust.verdicts.claims_table(claims).verdict) == {trust.verdicts.UNJUDGED}


def test_the_square_perturbation_has_no_exact_reference_and_is_never_called_degenerate():
    calib = trust.infidelity_calibration(_rows(9.0, {"random": 1.0}, col="infidelity, square (rescaled)"))
    assert calib.iloc[0]["reference"] == "none" and np.isnan(calib.iloc[0]["share removed"])
    assert not calib.iloc[0]["degenerate"]


def test_the_calibration_summary_names_the_degenerate_levels_and_the_chapters_own():
    import pandas as pd
    calib = pd.concat([trust.infidelity_calibration(_rows(r, {"constant": 0.5})).assign(noise=sd)
                       for sd, r in ((0.01, 0.1), (0.1, 0.8))], ignore_index=True)
    text = trust.infidelity_calibration_summary(calib, 0.01)
    assert text.startswith("Degenerate") and "noise 0.1 (" in text and "0.01, tells" in text
    assert "does not tell" in trust.infidelity_calibration_summary(calib, 0.1)
    assert "not among" in trust.infidelity_calibration_summary(calib, 0.05)


def test_the_noisy_baseline_is_yehs_and_the_exact_attribution_scores_zero_under_it():
    """Yeh et al.'s noisy baseline, I = x - (x0 + eps), clipped to [0, 1] as their code does; a
    linear model whose weights are shared across colour channels has an exact per-pixel attribution."""
    from xailib.metrics.draws import Samples
    from xailib.metrics.faithfulness import perturbation
    torch.manual_seed(1)
    v = torch.randn(4, 8 * 8)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4, bias=False)).eval()
    with torch.no_grad():
        net[1].weight.copy_(v[:, None, :].expand(4, 3, 64).reshape(4, -1))
    x = torch.rand(3, 3, 8, 8)
    t = torch.tensor([0, 1, 2])
    grey = lambda z: torch.full_like(z, 0.5)          # noqa: E731
    i, moved = perturbation("noisy_baseline", 0.2, 8, None, Samples(x), fill=grey)(x.repeat_interleave(4, 0))
    torch.testing.assert_close(x.repeat_interleave(4, 0) - i, moved)
    assert moved.min() >= 0 and moved.max() <= 1 and abs(moved.mean().item() - 0.5) < 0.02
    assert (moved.std(1) < 1e-6).float().mean() > 0.9            # grey noise: the channels move together
    exact_map = exact(net, t)
    out = score(net, x, t, exact_map, "infidelity", perturbation="noisy_baseline", removal=0.5, n_samples=16)
    np.testing.assert_allclose(out, 0, atol=1e-4)     # float32 rounding of output changes of order 10
    wrong = score(net, x, t, torch.rand(3, 8, 8), "infidelity", perturbation="noisy_baseline", removal=0.5, n_samples=16)
    assert (wrong > 0.1).all()
    with pytest.raises(ParameterError, match="road"):
        score(net, x, t, exact_map, "infidelity", perturbation="noisy_baseline", removal="road")
    with pytest.raises(ParameterError, match="baseline_noise"):
        score(net, x, t, exact_map, "infidelity", perturbation="noisy_baseline", baseline_noise=float("nan"))


def test_max_sensitivity_of_a_huge_map_is_that_of_the_map_scaled_down(monkeypatch):
    """LRP's maps on EfficientNet-Lite0 reach 1e20; captum took their norms in float32, which
    overflowed to inf and stopped chapter 10's real-network run. The relative max-sensitivity
    does not depend on the map's scale: a map times 1e25 scores as the map."""
    import torch

    from xailib import methods, models
    from xailib.metrics.robustness import max_sensitivity
    net = models.load_model("vgg_mini")
    from xailib.data import load_shapes
    x = load_shapes("test", n=3).images
    t = models.predict(net, x).argmax(1)
    plain = max_sensitivity(net, x, t, "gradient", n_samples=3)
    real = methods.explain
    monkeypatch.setattr(methods, "explain", lambda *a, **k: real(*a, **k) * 1e25)
    from xailib.metrics import shared
    shared.forget()                         # the explanations kept from the first call are not these
    huge = max_sensitivity(net, x, t, "gradient", n_samples=3)
    assert torch.isfinite(huge).all() and torch.allclose(huge, plain, rtol=1e-4)
    absolute = max_sensitivity(net, x, t, "gradient", n_samples=3, relative=False)
    assert torch.isfinite(absolute).all() and (absolute > 1e20).all()


# -- the rest of the robustness family and the random logit test ------------------------------------

def test_robustness_family_known_answers_on_a_linear_model(linear):
    """Gradient x input on a linear model: Phi(x) = sum_c w_c x_c, so a copy's change is
    sum_c w_c delta_c; each score computed by hand from max-sensitivity's own draws."""
    net, x = linear
    t = torch.tensor([0, 1, 2])
    kw = dict(method="gradient_x_input", radius=0.05, n_samples=4, seed=3, fast=False)
    w = net[1].weight.detach()[t].view(-1, 3, 8, 8).double()
    d = (robustness.perturbations(x, 0.05, 4, 3).double() - x.double().repeat_interleave(4, 0)).view(3, 4, 3, 8, 8)
    phi, dphi = (w * x.double()).sum(1), (w[:, None] * d).sum(2)                  # (3, 8, 8), (3, 4, 8, 8)
    change = dphi.flatten(2).norm(dim=-1)
    avg = score(net, x, t, phi.float(), "avg_sensitivity", **kw)
    np.testing.assert_allclose(avg, (change / phi.flatten(1).norm(dim=-1)[:, None]).mean(1), rtol=1e-5)
    lle = score(net, x, t, phi.float(), "local_lipschitz", **kw)
    np.testing.assert_allclose(lle, (change / d.flatten(2).norm(dim=-1)).amax(1), rtol=1e-5)
    ris = score(net, x, t, phi.float(), "relative_input_stability", **kw)
    num = (dphi / phi[:, None]).flatten(2).norm(dim=-1)
    den = (d / x.double()[:, None]).flatten(2).norm(dim=-1)
    with torch.no_grad():                                        # Agarwal et al.: copies labelled as the image
        same = net((x.double()[:, None] + d).float().view(-1, 3, 8, 8)).argmax(1).view(3, 4) == net(x).argmax(1)[:, None]
    assert (~same).any() and same.any(1).all()                  # the filter is exercised here
    np.testing.assert_allclose(ris, torch.where(same, num / den, -torch.inf).amax(1), rtol=1e-5)
    # a method that ignores its input scores 0 under the first two
    for name in ("avg_sensitivity", "local_lipschitz"):
        assert score(net, x, t, phi.float(), name, **{**kw, "method": "constant"}).tolist() == [0.0] * 3


def _counted_explain(monkeypatch) -> list:
    """Count the method's explanations (one entry per call of methods.explain)."""
    from xailib import methods
    calls = []
    real = methods.explain
    monkeypatch.setattr(methods, "explain", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_perturbed_explanations_are_shared_and_not_stale(linear, monkeypatch):
    net, x = linear
    t = torch.tensor([0, 1, 2])
    calls = _counted_explain(monkeypatch)
    kw = dict(method="gradient_x_input", n_samples=3, fast=False)
    maps = torch.zeros(3, 8, 8)
    score(net, x, t, maps, "avg_sensitivity", **kw)
    first = len(calls)
    score(net, x, t, maps, "relative_output_stability", **kw)
    assert len(calls) == first                                   # the same copies: explained once
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        other[1].weight.mul_(2)
    a = score(net, x, t, maps, "local_lipschitz", **kw)
    b = score(other, x, t, maps, "local_lipschitz", **kw)
    np.testing.assert_allclose(b, 2 * a, rtol=1e-5)               # other weights: explained again, twice the change


def test_random_logit_known_answers(linear):
    net, x = linear
    t = torch.tensor([0, 1, 2])
    from xailib.metrics import randomisation
    other = randomisation.other_classes(x, t, 4, seed=0)
    assert (other != t).all() and ((other >= 0) & (other < 4)).all()
    assert torch.equal(randomisation.other_classes(x[[2, 0]], t[[2, 0]], 4, seed=0), other[[2, 0]])   # any batching
    grad = explain(net, x, t, "gradient")
    same = score(net, x, t, explain(net, x, t, "constant"), "random_logit", method="constant", fast=False)
    np.testing.assert_allclose(same, 1.0)                         # a map that ignores the class: alike
    rl = score(net, x, t, grad, "random_logit", method="gradient", measure="spearman", fast=False)
    from xailib.metrics.similarity import similarity
    hand = similarity(grad, explain(net, x, other, "gradient"), "spearman")
    np.testing.assert_allclose(rl, hand)
    assert (rl < 0.9).all()                                       # another class, another map


def test_input_dependence_and_independence_known_answers():
    from xailib import known_truth, variants
    pool = variants.load_variant("bam", "test", n=4)
    empty = variants.bam_without_objects(pool)
    obj = pool.masks.float()
    # a map of the object pasted (the network ignores it): more on the object with it than without
    # it, and a large change; the same map on both images: not dependent, and independent
    rows = known_truth.input_dependence_rows({"object": obj, "same": obj}, {"object": torch.zeros_like(obj) + 0.01 * (1 - obj),
                                                                            "same": obj}, pool)
    got = rows.groupby("method")[["dependent", "independent"]].mean()
    assert got.loc["object"].tolist() == [0.0, 0.0] and got.loc["same"].tolist() == [0.0, 1.0]
    # a map that drops on the object when the object is pasted: dependent
    rows = known_truth.input_dependence_rows({"m": 1 - obj}, {"m": torch.ones_like(obj)}, pool)
    assert rows.dependent.all()
    share = obj.flatten(1).mean(1).numpy()                       # the map moved by the object's share of the pixels
    np.testing.assert_allclose(rows["map change"], share)
    np.testing.assert_array_equal(rows.independent, share <= known_truth.IIR_TOLERANCE)
    assert empty.shape == pool.images.shape


def test_bam_pairs_keep_images_the_scene_network_labels_alike_with_and_without_the_object():
    from xailib import known_truth, models as zoo
    net = zoo.load_model("vgg_mini_bam_scene")
    images, empty = known_truth.bam_pairs(net, 6)
    scene = images.info["scene_labels"]
    assert (zoo.predict(net, images.images).argmax(1) == scene).all()
    assert (zoo.predict(net, empty).argmax(1) == scene).all()


def test_max_sensitivity_reads_the_shared_explanations(linear, monkeypatch):
    """Max-sensitivity is captum's sensitivity_max on the copies the other robustness metrics
    explained: after average sensitivity, it explains nothing again, and it equals the largest
    relative change of those copies' maps."""
    from xailib.metrics import robustness
    net, x = linear
    t = torch.tensor([0, 1, 2])
    calls = _counted_explain(monkeypatch)
    kw = dict(method="gradient_x_input", n_samples=3, fast=False)
    maps = torch.zeros(3, 8, 8)
    score(net, x, t, maps, "avg_sensitivity", **kw)
    first = len(calls)
    assert first == 4                                             # the originals and three batches of copies
    ms = score(net, x, t, maps, "max_sensitivity", **kw)
    assert len(calls) == first
    a, _, copies, _, _ = robustness.perturbed_explanations(net, x, t, "gradient_x_input", n_samples=3)
    hand = ((copies - a[:, None]).flatten(2).norm(dim=2) / a.flatten(1).norm(dim=1)[:, None]).amax(1)
    np.testing.assert_allclose(ms, hand.double(), rtol=1e-6)


def test_monotonicity_correlation_keeps_its_passes_between_maps(linear, monkeypatch):
    from xailib.metrics import faithfulness, shared
    net, x = linear
    t = torch.tensor([0, 1, 2])
    shared.forget()
    calls = []
    real = faithfulness.cell_variances
    monkeypatch.setattr(faithfulness, "cell_variances", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = explain(net, x, t, "gradient")
    one = score(net, x, t, g, "monotonicity_correlation", fast=False)
    score(net, x, t, torch.rand(3, 8, 8), "monotonicity_correlation", fast=False)
    assert len(calls) == 1                                        # another map, the same passes
    again = score(net, x[[1, 0, 2]], t[[1, 0, 2]], g[[1, 0, 2]], "monotonicity_correlation", fast=False)
    assert len(calls) == 2                                        # other images: computed again
    np.testing.assert_allclose(again, one[[1, 0, 2]])             # and per image the same


@pytest.mark.parametrize("metric,extra", [("faithfulness_correlation", {"subset": 16}), ("sensitivity_n", {})])
def test_subset_passes_are_kept_between_maps_and_change_no_score(linear, monkeypatch, metric, extra):
    """Faithfulness correlation and sensitivity-n remove the same subsets for every map of an
    image set: the passes are made once, and each map's score is the one a fresh call gives."""
    from xailib.metrics import faithfulness, shared
    net, x = linear
    t = torch.tensor([0, 1, 2])
    maps = [explain(net, x, t, "gradient"), torch.rand(3, 8, 8)]
    fresh = []
    for m in maps:
        shared.forget()
        fresh.append(score(net, x, t, m, metric, fast=False, n_subsets=8, **extra))
    shared.forget()
    calls = []
    real = faithfulness.subset_outputs
    monkeypatch.setattr(faithfulness, "subset_outputs", lambda *a, **k: calls.append(1) or real(*a, **k))
    kept = [score(net, x, t, m, metric, fast=False, n_subsets=8, **extra) for m in maps]
    assert len(calls) == 1                                        # another map, the same passes
    for a, b in zip(kept, fresh):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    score(net, x, t, maps[0], metric, fast=False, n_subsets=9, **extra)
    assert len(calls) == 2                                        # another setting: computed again
