"""Bad input and unusual models in every metric: NaN / infinite maps, models without parameters,
where the input normalisation sits; and the pieces the verdict issue added to the metrics
(insertion's constant canvas, the pointing game on boxes, the blur kernel the chapters name)."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xailib import data, metrics, models
from xailib.errors import ParameterError
from xailib.methods.rise import input_fill
from xailib.models import find_normalization

H = W = 8


class RedMean(nn.Module):
    """No parameters at all: probabilities [1 - q, q], q = mean of the red channel."""

    def forward(self, x):
        q = x[:, 0].flatten(1).mean(1).clamp(1e-7, 1 - 1e-7)
        return torch.stack([torch.log1p(-q), torch.log(q)], 1)


class Normalised(nn.Module):
    """RedMean behind a normalisation layer nested two levels deep."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Identity(), nn.Sequential(models.Normalize((0.2, 0.4, 0.6), (1., 1., 1.))))
        self.head = RedMean()

    def forward(self, x):
        return self.head(self.body(x) + 0.5)


def _inputs(n=2):
    torch.manual_seed(0)
    x = torch.rand(n, 3, H, W)
    masks = torch.zeros(n, H, W, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    return x, masks


def _params(name, masks, n):
    return {"mask_energy": dict(masks=masks), "pointing_game": dict(masks=masks),
            "deletion": dict(removal=0.0), "insertion": {}, "impact": {}, "impact_strict": {},
            "impact_coverage": dict(patch_masks=masks), "pxap": dict(masks=masks),
            "region_mean": dict(masks=masks), "top_k_iou": dict(masks=masks),
            "box_iou": dict(boxes=[torch.tensor([[1.0, 1, 5, 5]])] * n),
            "box_accuracy": dict(boxes=[torch.tensor([[1.0, 1, 5, 5]])] * n),
            "infidelity": dict(n_samples=4), "max_sensitivity": dict(method="gradient", n_samples=2),
            "relevance_mass_accuracy": dict(masks=masks), "relevance_rank_accuracy": dict(masks=masks),
            "attribution_localisation": dict(masks=masks), "focus": dict(masks=masks), "recovering_rate": dict(masks=masks, true_labels=0), "faithfulness_correlation": dict(subset=8, n_subsets=4),
            "monotonicity_correlation": dict(cell=4, n_samples=2), "region_perturbation_morf": dict(n_regions=4),
            "region_perturbation_lerf": dict(n_regions=4), "random_logit": dict(method="gradient"),
            **{k: dict(method="gradient", n_samples=2) for k in ("avg_sensitivity", "local_lipschitz",
                                                                  "relative_input_stability", "relative_output_stability")},
            }.get(name, {})


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_every_metric_rejects_nan_and_infinite_maps(name, bad):
    x, masks = _inputs()
    maps = torch.rand(2, H, W)
    maps[1, 3, 3] = bad
    with pytest.raises(ParameterError, match="NaN or infinite"):
        metrics.score(RedMean(), x, 1, maps, name, **_params(name, masks, 2))


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_every_metric_runs_a_model_without_parameters(name):
    x, masks = _inputs()
    targets = RedMean()(x).argmax(1)           # the Impact Score scores the model's own decision
    out = metrics.score(RedMean(), x, targets, torch.rand(2, H, W), name, **_params(name, masks, 2))
    assert out.shape == (2,) and torch.isfinite(out).all()


def test_fill_mean_finds_the_normalisation_wherever_it_sits():
    net = Normalised()
    assert isinstance(find_normalization(net), models.Normalize)
    torch.testing.assert_close(input_fill(net, "mean", "cpu").flatten(), torch.tensor([0.2, 0.4, 0.6]))
    assert find_normalization(RedMean()) is None
    with pytest.warns(UserWarning, match="no input normalisation"):
        assert input_fill(RedMean(), "mean", "cpu").abs().sum() == 0
    with pytest.warns(UserWarning, match="no input normalisation"):       # deletion's default fill
        metrics.score(RedMean(), *_inputs()[:1], 1, torch.rand(2, H, W), "deletion")
    with pytest.raises(ParameterError, match="fill="):
        input_fill(RedMean(), True, "cpu")
    # deletion with fill="mean" on the nested model equals deletion with the constant it found
    x, _ = _inputs()
    s = torch.rand(2, H, W)
    a = metrics.score(net, x, 1, s, "deletion", n_steps=4)
    b = metrics.causal_curves(net, x, 1, s, "deletion", n_steps=4, removal=0.2)[2]   # red channel mean 0.2
    torch.testing.assert_close(a, b.double())


def test_insertion_on_a_constant_canvas_by_hand():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 0.5], [0.25, 0.0]])
    # canvas of red 0: q after 0..4 insertions in the order 1, .5, .25, 0 = [0, 1, 1.5, 1.75, 1.75] / 4
    auc = metrics.score(RedMean(), x, 1, x[:, 0], "insertion", n_steps=4, removal=0.0)
    q = torch.tensor([0, 1, 1.5, 1.75, 1.75]).clamp(min=1e-7) / 4
    assert auc.item() == pytest.approx(torch.trapezoid(q, dx=0.25).item(), abs=1e-6)
    with pytest.raises(ParameterError, match="removal='noise' is not accepted"):
        metrics.score(RedMean(), x, 1, x[:, 0], "insertion", removal="noise")


def test_pointing_game_on_boxes_and_on_masks():
    maps = torch.zeros(2, 10, 10)
    maps[0, 1, 1] = 1.0          # inside the box's corner, outside the round object
    maps[1, 5, 5] = 1.0          # on the object
    yy, xx = torch.meshgrid(torch.arange(10) + 0.5, torch.arange(10) + 0.5, indexing="ij")
    disc = ((yy - 5) ** 2 + (xx - 5) ** 2 <= 9).expand(2, 10, 10)
    boxes = [torch.tensor([[1.0, 1.0, 9.0, 9.0]])] * 2
    none = torch.zeros(2, 3, 10, 10)
    assert metrics.score(None, none, None, maps, "pointing_game", boxes=boxes, tolerance=0).tolist() == [1, 1]
    assert metrics.score(None, none, None, maps, "pointing_game", masks=disc, tolerance=0).tolist() == [0, 1]
    with pytest.raises(ParameterError, match="exactly one"):
        metrics.score(None, none, None, maps, "pointing_game")
    with pytest.raises(ParameterError, match="exactly one"):
        metrics.score(None, none, None, maps, "pointing_game", masks=disc, boxes=boxes)
    with pytest.raises(ParameterError, match="one"):
        metrics.score(None, none, None, maps, "pointing_game", boxes=boxes[:1])
    # the benchmark's boxes: the box contains the object, so a box hit is never rarer than a mask hit
    imgs = data.load_shapes("test", n=8)
    rnd = torch.rand(8, 64, 64, generator=torch.Generator().manual_seed(1))
    by_box = metrics.score(None, imgs.images, None, rnd, "pointing_game", boxes=imgs.boxes)
    by_mask = metrics.score(None, imgs.images, None, rnd, "pointing_game", masks=imgs.masks)
    assert (by_box >= by_mask).all()


def test_blur_kernel_names_what_blur_does():
    assert metrics.blur_kernel(224) == (11, 5.0)                 # the authors' kernel at 224 px
    k, s = metrics.blur_kernel(64)
    assert k == 3 and s == pytest.approx(5 * 64 / 224)           # 11 * 64 / 224 = 3.1: the nearest odd size
    x = torch.rand(1, 3, 64, 64)
    from torchvision.transforms.functional import gaussian_blur
    torch.testing.assert_close(metrics.blur(x), gaussian_blur(x, [k, k], [s, s]))
    assert metrics.blur_kernel(64, sigma=3.0) == (19, 3.0)
    with pytest.raises(ParameterError):
        metrics.blur_kernel(64, kernel=4, sigma=1.0)


@pytest.mark.parametrize("method", ["rise", "occlusion", "gradient", "integrated_gradients"])
def test_targets_out_of_range_are_named_in_every_method(method):
    """-1 used to be read as the last class by rise and occlusion (Python indexing), and 2 on a
    two-class model surfaced as captum's IndexError; both are now one sentence naming targets."""
    from xailib.methods import explain
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * H * W, 2))
    x, _ = _inputs()
    extra = {"n_masks": 8, "cells": 2} if method == "rise" else {"window": 4, "stride": 4} if method == "occlusion" else {}
    with pytest.raises(ParameterError, match="class indices >= 0, got -1"):
        explain(model, x, -1, method, **extra)
    with pytest.raises(ParameterError, match="below 2 .* got 2"):
        explain(model, x, [0, 2], method, **extra)
    assert explain(model, x, [0, 1], method, **extra).shape == (2, H, W)


def test_targets_out_of_range_are_named_in_the_metrics():
    x, masks = _inputs()
    maps = torch.rand(2, H, W)
    with pytest.raises(ParameterError, match="got -1"):
        metrics.score(RedMean(), x, -1, maps, "deletion")
    with pytest.raises(ParameterError, match="below 2"):
        metrics.score(RedMean(), x, 5, maps, "insertion")
    with pytest.raises(ParameterError, match="integer class indices"):
        metrics.score(RedMean(), x, torch.tensor([0.0, 1.0]), maps, "deletion")
    assert metrics.score(None, x, [0, 1], maps, "pointing_game", masks=masks).shape == (2,)


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "rise", "occlusion", "edge"])
def test_bad_images_and_targets_get_one_sentence_in_explain(method):
    """A NaN pixel gave maps of NaN without a word in these five methods; targets=None ended in
    "Could not infer dtype of NoneType"; an empty batch in a torch.cat error; 0-255 images ran."""
    from xailib.methods import explain
    model = models.load_model("vgg_mini")
    x = data.load_dataset("shapes", "test", size=64, seed=0).images[:2].clone()
    extra = {"n_masks": 8} if method == "rise" else {}
    nan = x.clone()
    nan[1, 0, 3, 4] = float("nan")
    with pytest.raises(ParameterError, match=r"^images hold NaN or infinite pixels \(image 1\)"):
        explain(model, nan, [0, 1], method, **extra)
    with pytest.raises(ParameterError, match=r"^targets=None: give the class to explain"):
        explain(model, x, None, method, **extra)
    with pytest.raises(ParameterError, match=r"^images is an empty batch"):
        explain(model, x[:0], [], method, **extra)
    with pytest.raises(ParameterError, match=r"^images reach 255, but the models take pixels in \[0, 1\]"):
        explain(model, (x * 255).round(), [0, 1], method, **extra)
    with pytest.raises(ParameterError, match=r"^images must be floating point"):
        explain(model, (x * 255).to(torch.uint8), [0, 1], method, **extra)
    assert torch.isfinite(explain(model, x, [0, 1], method, **extra)).all()


def test_a_missing_weights_file_is_named_without_a_training_remedy():
    """It used to advise `python scripts/train_models.py` for a path the user typed."""
    from xailib.errors import MissingResourceError
    with pytest.raises(MissingResourceError) as err:
        models.load_model("vgg_mini", weights="/nonexistent/vgg.pt")
    assert "weights file /nonexistent/vgg.pt for vgg_mini does not exist" in str(err.value)
    assert "train" not in str(err.value)


# --------------------------------------------------------------------------------------------
# Below score(): the public functions of xailib.metrics, xailib.verdicts and xailib.agreement
# refuse NaN, infinities, out-of-range counts and probabilities, wrong shapes and empty input
# with one ParameterError naming the argument (each of these returned a number or NaN before).
# --------------------------------------------------------------------------------------------
def _map(bad=None):
    m = torch.rand(2, H, W, generator=torch.Generator().manual_seed(0))
    if bad is not None:
        m[1, 3, 4] = bad
    return m


_BOX = [torch.tensor([[1., 1., 5., 5.]])] * 2
_IOUS = np.array([[0.2, 0.6], [0.7, 0.1]])


def _bad_calls():
    from xailib import agreement, verdicts
    from xailib.metrics import faithfulness as faith, localisation as loc
    nan, inf = float("nan"), float("inf")
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    chosen = torch.zeros(1, 4, (H // 4) * (W // 4))
    return [
        ("normalise NaN", lambda: loc.normalise(_map(nan)), "maps has the value NaN"),
        ("normalise inf", lambda: loc.normalise(_map(inf)), "maps has the value inf"),
        ("boxes NaN", lambda: loc.boxes(_map(nan)), "maps has the value NaN"),
        ("box_ious inf map", lambda: loc.box_ious(_map(-inf), _BOX), "maps has the value -inf"),
        ("box_ious NaN box", lambda: loc.box_ious(_map(), [_BOX[0], torch.tensor([[1., nan, 5., 5.]])]),
         r"boxes\[1\] has the value NaN"),
        ("iou inf", lambda: loc.iou(np.array([0., 0., inf, 2.]), np.array([[0., 0., 2., 2.]])), "pred has the value inf"),
        ("heldout_box_acc NaN", lambda: loc.heldout_box_acc(np.array([[nan, 0.6], [0.7, 0.1]]), _IOUS, 0.5, [0.2, 0.5]),
         "val_ious has the value NaN"),
        ("max_box_acc NaN", lambda: loc.max_box_acc(np.array([[nan, 0.6], [0.7, 0.1]]), 0.5, [0.2, 0.5]),
         "ious has the value NaN"),
        ("max_box_acc columns", lambda: loc.max_box_acc(_IOUS, 0.5, [0.2, 0.5, 0.7]), "one column per threshold"),
        ("heldout_box_acc above 1", lambda: loc.heldout_box_acc(_IOUS, _IOUS + 1, 0.5, [0.2, 0.5]), "test_ious has the value 1.2 at index \(0, 0\)"),
        ("heldout_box_acc 1-D", lambda: loc.heldout_box_acc(_IOUS[0], _IOUS, 0.5, [0.2, 0.5]), "val_ious must have 2"),
        ("heldout_box_acc delta", lambda: loc.heldout_box_acc(_IOUS, _IOUS, 0.0, [0.2, 0.5]), "delta=0.0"),
        ("max_box_acc delta", lambda: loc.max_box_acc(_IOUS, 0.0, [0.2, 0.5]), "delta=0.0"),
        ("pxap_pooled NaN", lambda: loc.pxap_pooled(_map(nan), _inputs()[1]), "maps has the value NaN"),
        ("pxap_pooled no object", lambda: loc.pxap_pooled(_map(), masks), "masks are all empty"),
        ("infidelity NaN", lambda: faith.infidelity(RedMean(), _inputs()[0], torch.tensor([0, 1]), _map(nan)),
         "maps has the value NaN"),
        ("sensitivity_n_from NaN map", lambda: faith.sensitivity_n_from(_map(nan), chosen, torch.rand(2, 1, 4), 4),
         "maps has the value NaN"),
        ("sensitivity_n_from inf delta", lambda: faith.sensitivity_n_from(
            _map(), chosen, torch.tensor([[[0., inf, 1., 2.]]] * 2), 4), "deltas has the value inf"),
        ("wilson k > n", lambda: verdicts.wilson(1.5, 10), "p has the value 1.5"),
        ("wilson NaN", lambda: verdicts.wilson(nan, 10), "p has the value NaN"),
        ("wilson n = 0", lambda: verdicts.wilson(0.5, 0), "n=0.0 must be > 0"),
        ("newcombe negative", lambda: verdicts.newcombe_paired(3, -1, 2, 4), "only_a has the value -1.0"),
        ("newcombe empty", lambda: verdicts.newcombe_paired(0, 0, 0, 0), "at least one pair"),
        ("sign_flip_p NaN", lambda: verdicts.sign_flip_p([1, nan, 2]), "unit_sums has the value NaN"),
        ("sign_flip_p empty", lambda: verdicts.sign_flip_p([]), "unit_sums is empty"),
        ("holm NaN", lambda: verdicts.holm([0.01, nan]), "pvalues has the value NaN"),
        ("holm above 1", lambda: verdicts.holm([0.01, 1.5]), "pvalues has the value 1.5"),
        ("kendall_w inf", lambda: agreement.kendall_w(np.array([[1., 2., inf], [1., 2., 3.]])), "scores has the value inf"),
        ("split_half NaN", lambda: agreement.split_half(
            pd.DataFrame(np.arange(15.).reshape(5, 3)).mask(lambda f: f == 4)), "per_image has the value NaN"),
        ("rank_correlation inf", lambda: agreement.rank_correlation([1., 2., inf], [1., 2., 3.]), "a has the value inf"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())), ids=[c[0] for c in _bad_calls()])
def test_every_public_function_below_score_refuses_bad_input_by_name(case):
    _, call, message = _bad_calls()[case]
    with pytest.raises(ParameterError, match=message):
        call()


def test_the_same_functions_still_answer_good_input():
    """The refusals above are not blanket ones: the good twin of each bad call answers."""
    from xailib import agreement, verdicts
    from xailib.metrics import localisation as loc
    assert verdicts.wilson(0.5, 10)[0] < 0.5 < verdicts.wilson(0.5, 10)[1]
    assert verdicts.newcombe_paired(3, 1, 2, 4)[0] < 0
    assert verdicts.sign_flip_p([1.0, 2.0]) == 0.5
    assert len(verdicts.holm([])) == 0 and verdicts.holm([0.01, 0.04]).tolist() == [0.02, 0.04]
    assert np.isnan(agreement.rank_correlation([1., 2., np.nan], [1., 2., 3.]))   # NaN: missing, fewer than 3 left
    assert agreement.kendall_w(np.array([[1., 2., np.nan], [1., 2., 3.], [1., 2., 3.]])) == pytest.approx(1.0)
    assert loc.heldout_box_acc(_IOUS, _IOUS, 0.5, [0.2, 0.5]) == (0.2, pytest.approx([0.0, 1.0]))
    assert loc.max_box_acc(_IOUS, 0.5, [0.2, 0.5]) == (0.2, 0.5)
    assert 0 <= loc.pxap_pooled(_map(), _inputs()[1]) <= 1
    assert (loc.normalise(_map()).amax((1, 2)) == 1).all()


# --------------------------------------------------------------------------------------------
# The rest of the public functions of xailib.metrics, xailib.verdicts and xailib.agreement (each
# of these returned a number, NaN, a silently wrong answer or a library's own error before):
# every bad call below has a good twin of the same id in _good_twins() that still answers.
# --------------------------------------------------------------------------------------------
def _net():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * H * W, 2))


def _images(bad=None):
    x = _inputs()[0]
    if bad is not None:
        x[1, 0, 3, 4] = bad
    return x


def _region():
    r = torch.zeros(H, W, dtype=torch.bool)
    r[2:4, 2:5] = True
    return r


def _comparison():
    from xailib import verdicts
    return verdicts.paired([1.0, 2.0, 3.0, 4.0])


def _frame(bad=None):
    f = pd.DataFrame(np.arange(18.0).reshape(6, 3), columns=["x", "y", "z"])
    if bad is not None:
        f.iloc[2, 1] = bad
    return f


def _more_bad_calls():
    from xailib import agreement, verdicts
    from xailib.metrics import faithfulness as faith, localisation as loc, order, randomisation as rnd, removal
    from xailib.metrics import robustness as rb, similarity as sim
    nan, inf = float("nan"), float("inf")
    t, x = torch.tensor([0, 1]), _images()
    return [
        ("score NaN image", lambda: metrics.score(RedMean(), _images(nan), t, _map(), "deletion", removal=0.0),
         r"images hold NaN or infinite pixels \(image 1\)"),
        ("causal_curves map shape", lambda: metrics.causal_curves(RedMean(), x, t, _map()[:, :4], removal=0.0),
         r"maps must be \(batch, H, W\) matching images"),
        ("causal_curves NaN map", lambda: metrics.causal_curves(RedMean(), x, t, _map(nan), removal=0.0),
         "maps has the value NaN"),
        ("causal_curves target -1", lambda: metrics.causal_curves(RedMean(), x, -1, _map(), removal=0.0), "got -1"),
        ("perturbation inf noise", lambda: faith.perturbation("gaussian", inf, 8, None, torch.Generator()),
         "noise has the value inf"),
        ("infidelity inf noise", lambda: faith.infidelity(RedMean(), x, t, _map(), noise=inf, n_samples=2),
         "noise has the value inf"),
        ("infidelity NaN image", lambda: faith.infidelity(RedMean(), _images(nan), t, _map(), n_samples=2),
         "images hold NaN or infinite pixels"),
        ("infidelity target -1", lambda: faith.infidelity(RedMean(), x, torch.tensor([0, -1]), _map(), n_samples=2),
         "got -1"),
        ("feature_grid height 0", lambda: faith.feature_grid(0, W, 1), "height=0 must be an integer >= 1"),
        ("default_n_values 0", lambda: faith.default_n_values(0), "n_features=0 must be an integer >= 1"),
        ("subset_outputs batch_size 0", lambda: faith.subset_outputs(RedMean(), x, t, n_subsets=4, batch_size=0),
         "batch_size=0 must be an integer >= 1"),
        ("subset_outputs target -1", lambda: faith.subset_outputs(RedMean(), x, torch.tensor([-1, 0]), n_subsets=4),
         "got -1"),
        ("box_ious NaN threshold", lambda: loc.box_ious(_map(), _BOX, [0.2, nan]), "thresholds has the value NaN"),
        ("max_box_acc threshold above 1", lambda: loc.heldout_box_acc(_IOUS, _IOUS, 0.5, [0.2, 1.5]),
         "thresholds has the value 1.5"),
        ("iou not boxes", lambda: loc.iou(np.zeros(3), np.array([[0., 0., 2., 2.]])), r"last axis 4\), got shapes \(3,\)"),
        ("saliency_order NaN", lambda: order.saliency_order(torch.tensor([[1., nan, 0.]])),
         r"values has the value NaN at index \(0, 1\)"),
        ("tie_permutation negative", lambda: order.tie_permutation(-1), "n=-1 must be an integer >= 0"),
        ("plan NaN std", lambda: rnd.plan(_net(), x, mode="normal", std=nan), "std must be a positive number, got nan"),
        ("blur_kernel NaN sigma", lambda: removal.blur_kernel(64, sigma=nan), "blur_sigma has the value NaN"),
        ("blur_kernel fractional kernel", lambda: removal.blur_kernel(64, kernel=3.5, sigma=1.0),
         "blur_kernel=3.5 must be an odd positive integer"),
        ("blur_kernel side 0", lambda: removal.blur_kernel(0), "side=0 must be an integer >= 1"),
        ("blur NaN image", lambda: removal.blur(_images(nan)), "images hold NaN or infinite pixels"),
        ("road_impute NaN noise", lambda: removal.road_impute(x[0], _region(), nan), "noise has the value NaN"),
        ("road_impute region shape", lambda: removal.road_impute(x[0], _region()[:4], 0.01),
         r"removed must be \(H, W\) matching image"),
        ("remove inf road_noise", lambda: removal.remove(x, _region().expand(2, H, W), "road", road_noise=inf),
         "road_noise has the value inf"),
        ("remove inf image", lambda: removal.remove(_images(inf), _region().expand(2, H, W), "zero"),
         "images hold NaN or infinite pixels"),
        ("fill_image NaN image", lambda: removal.fill_image(_images(nan), "zero"), "images hold NaN or infinite pixels"),
        ("perturbations NaN radius", lambda: rb.perturbations(x, nan, 2, 0), "radius has the value NaN"),
        ("perturbations no sample", lambda: rb.perturbations(x, 0.1, 0, 0), "n_samples=0 must be an integer >= 1"),
        ("max_sensitivity inf radius", lambda: rb.max_sensitivity(_net(), x, t, "gradient", radius=inf, n_samples=2),
         "radius has the value inf"),
        ("segments_of unknown method", lambda: rb.segments_of(x, "gradinet", {}), "method='gradinet' is not accepted"),
        ("hyperparameter_sensitivity unknown method", lambda: rb.hyperparameter_sensitivity(
            _net(), x, t, "gradinet", grid={"n_steps": [8]}), "method='gradinet' is not accepted"),
        ("scaled NaN", lambda: sim.scaled(_map(nan)), "maps has the value NaN"),
        ("hog_features inf", lambda: sim.hog_features(_map(inf)), "maps has the value inf"),
        ("similarity inf b", lambda: sim.similarity(_map(), _map(inf)), "b has the value inf"),
        ("similarities NaN a", lambda: sim.similarities(_map(nan), _map(), ("hog",)), "a has the value NaN"),
        ("proportion fractional k", lambda: verdicts.proportion(2.5, 10), "k=2.5 must be a whole number"),
        ("proportion level", lambda: verdicts.proportion(2, 10, level=1.5), "level=1.5"),
        ("proportion_of NaN", lambda: verdicts.proportion_of([1.0, nan]), "values has the value NaN"),
        ("proportion_of clusters", lambda: verdicts.proportion_of([1.0, 0.0, 1.0], [0, 1]),
         r"clusters must have one entry per value \(3\), got 2"),
        ("paired NaN b", lambda: verdicts.paired([1., 2., 3.], [1., nan, 2.]), "b has the value NaN at index 1"),
        ("paired lengths", lambda: verdicts.paired([1., 2., 3.], [1., 2.]), "got 3 and 2 values"),
        ("paired n_perm 0", lambda: verdicts.paired([1., 2., 3.], n_perm=0), "n_perm=0"),
        ("sign_flip_p n_perm", lambda: verdicts.sign_flip_p([1.0, 2.0], n_perm=-5), "n_perm=-5"),
        ("interval level", lambda: _comparison().interval(1.5), "level=1.5"),
        ("n_needed NaN effect", lambda: verdicts.n_needed(nan, 0.1), "effect has the value NaN"),
        ("n_needed power 1", lambda: verdicts.n_needed(0.1, 0.1, power=1.0), "no sample size"),
        ("equivalence_p inf margin", lambda: verdicts.equivalence_p(_comparison(), inf), "margin has the value inf"),
        ("beyond_p NaN margin", lambda: verdicts.beyond_p(_comparison(), nan), "margin has the value NaN"),
        ("benchmark_margin NaN", lambda: verdicts.benchmark_margin(nan, 0.1), "reference has the value NaN"),
        ("reference_margin NaN null", lambda: verdicts.reference_margin([0.8, 0.9], [0.2, nan]),
         "null has the value NaN at index 1"),
        ("reference_margin empty", lambda: verdicts.reference_margin([], [0.2]), "reference is empty"),
        ("size_beside NaN gap", lambda: verdicts.size_beside(_comparison(), nan), "paper_gap has the value NaN"),
        ("judge p above 1", lambda: verdicts.judge(_comparison(), p_adjusted=1.5), "p_adjusted has the value 1.5"),
        ("judge negative margin", lambda: verdicts.judge(_comparison(), margin=-0.1), "margin must be a positive number"),
        ("claims_table alpha", lambda: verdicts.claims_table([], alpha=2.0), "alpha=2.0"),
        ("rank_intervals NaN", lambda: verdicts.rank_intervals(np.array([[1., nan], [2., 1.]])),
         r"replicates has the value NaN at index \(0, 1\)"),
        ("bootstrap_ranks NaN", lambda: verdicts.bootstrap_ranks(_frame(nan), n_boot=10), "wide has the value NaN"),
        ("bootstrap_ranks level", lambda: verdicts.bootstrap_ranks(_frame(), n_boot=10, level=1.5), "level=1.5"),
        ("agreement_matrix inf", lambda: agreement.agreement_matrix(_frame(inf)), "scores has the value inf"),
        ("agreement_matrix method", lambda: agreement.agreement_matrix(_frame(), "pearson"), "method='pearson'"),
        ("split_half level", lambda: agreement.split_half(_frame(), level=1.5), "level=1.5"),
        ("inter_rater_alpha inf", lambda: agreement.inter_rater_alpha(_frame(inf)), "per_image has the value inf"),
        ("spearman_brown inf factor", lambda: agreement.spearman_brown(0.5, inf), "factor has the value inf"),
        ("per_image_agreement no common column", lambda: agreement.per_image_agreement(
            _frame()[["x"]], _frame()[["y"]]), "share no column"),
    ]


def _good_twins():
    from xailib import agreement, verdicts
    from xailib.metrics import faithfulness as faith, localisation as loc, order, randomisation as rnd, removal
    from xailib.metrics import robustness as rb, similarity as sim
    t, x = torch.tensor([0, 1]), _images()
    finite = lambda v: bool(torch.isfinite(torch.as_tensor(v)).all())   # noqa: E731
    c = _comparison()
    return {
        "score NaN image": lambda: finite(metrics.score(RedMean(), x, t, _map(), "deletion", removal=0.0)),
        "causal_curves map shape": lambda: metrics.causal_curves(RedMean(), x, t, _map(), removal=0.0)[1].shape == (2, 9),
        "causal_curves NaN map": lambda: finite(metrics.causal_curves(RedMean(), x, t, _map(), removal=0.0)[2]),
        "causal_curves target -1": lambda: finite(metrics.causal_curves(RedMean(), x, 1, _map(), removal=0.0)[2]),
        "perturbation inf noise": lambda: callable(faith.perturbation("gaussian", 0.1, 8, None, torch.Generator())),
        "infidelity inf noise": lambda: finite(faith.infidelity(RedMean(), x, t, _map(), n_samples=2)),
        "infidelity NaN image": lambda: finite(faith.infidelity(RedMean(), x, t, _map(), n_samples=2)),
        "infidelity target -1": lambda: finite(faith.infidelity(RedMean(), x, torch.tensor([0, 1]), _map(), n_samples=2)),
        "feature_grid height 0": lambda: faith.feature_grid(H, W, 4).max() == 3,
        "default_n_values 0": lambda: faith.default_n_values(16)[0] == 1,
        "subset_outputs batch_size 0": lambda: faith.subset_outputs(RedMean(), x, t, n_subsets=4,
                                                                    batch_size=8)[2].shape[:2] == (2, 3),
        "subset_outputs target -1": lambda: finite(faith.subset_outputs(RedMean(), x, t, n_subsets=4)[2]),
        "box_ious NaN threshold": lambda: loc.box_ious(_map(), _BOX, [0.2, 0.5]).shape == (2, 2),
        "max_box_acc threshold above 1": lambda: loc.heldout_box_acc(_IOUS, _IOUS, 0.5, [0.2, 0.9])[0] == 0.2,
        "iou not boxes": lambda: loc.iou(np.array([0., 0., 2., 2.]), np.array([[0., 0., 2., 2.]])).tolist() == [1.0],
        "saliency_order NaN": lambda: order.saliency_order(torch.tensor([[1., 2., 0.]]))[0].tolist() == [1, 0, 2],
        "tie_permutation negative": lambda: sorted(order.tie_permutation(4).tolist()) == [0, 1, 2, 3],
        "plan NaN std": lambda: len(rnd.plan(_net(), x, mode="normal", std=0.1)) == 1,
        "blur_kernel NaN sigma": lambda: removal.blur_kernel(64, sigma=1.0) == (7, 1.0),
        "blur_kernel fractional kernel": lambda: removal.blur_kernel(64, kernel=3, sigma=1.0) == (3, 1.0),
        "blur_kernel side 0": lambda: removal.blur_kernel(224) == (11, 5.0),
        "blur NaN image": lambda: removal.blur(x).shape == x.shape,
        "road_impute NaN noise": lambda: finite(removal.road_impute(x[0], _region(), 0.01)),
        "road_impute region shape": lambda: finite(removal.road_impute(x[0], _region(), 0.0)),
        "remove inf road_noise": lambda: finite(removal.remove(x, _region().expand(2, H, W), "road")),
        "remove inf image": lambda: (removal.remove(x, _region().expand(2, H, W), "zero")[:, :, 2, 2] == 0).all(),
        "fill_image NaN image": lambda: (removal.fill_image(x, "zero") == 0).all(),
        "perturbations NaN radius": lambda: rb.perturbations(x, 0.1, 2, 0).shape == (4, 3, H, W),
        "perturbations no sample": lambda: rb.perturbations(x, 0.0, 1, 0).equal(x),
        "max_sensitivity inf radius": lambda: finite(rb.max_sensitivity(_net(), x, t, "gradient", n_samples=2)),
        "segments_of unknown method": lambda: rb.segments_of(x, "gradient", {}) is None,
        "hyperparameter_sensitivity unknown method": lambda: len(rb.hyperparameter_sensitivity(_net(), x, t, "gradient")) == 2,
        "scaled NaN": lambda: sim.scaled(_map()).max() == 1.0,
        "hog_features inf": lambda: sim.hog_features(_map()).shape[0] == 2,
        "similarity inf b": lambda: np.allclose(sim.similarity(_map(), _map()), 1.0),
        "similarities NaN a": lambda: np.allclose(sim.similarities(_map(), _map(), ("hog",))["hog"], 1.0),
        "proportion fractional k": lambda: verdicts.proportion(2, 10)[0] == 0.2,
        "proportion level": lambda: verdicts.proportion(2.0, 10, level=0.9)[0] == 0.2,
        "proportion_of NaN": lambda: verdicts.proportion_of([1.0, 0.0])[0] == 0.5,
        "proportion_of clusters": lambda: verdicts.proportion_of([1.0, 0.0, 1.0], [0, 1, 1])[0] == pytest.approx(2 / 3),
        "paired NaN b": lambda: verdicts.paired([1., 2., 3.], [0., 1., 2.]).mean == 1.0,
        "paired lengths": lambda: verdicts.paired([1., 2., 3.], 1.0).mean == 1.0,
        "paired n_perm 0": lambda: verdicts.paired([1., 2., 3.], n_perm=1).n == 3,
        "sign_flip_p n_perm": lambda: verdicts.sign_flip_p([1.0, 2.0], n_perm=5) == 0.5,
        "interval level": lambda: c.interval(0.9)[0] <= c.interval(0.9)[1],
        "n_needed NaN effect": lambda: verdicts.n_needed(0.1, 0.1) == 8,
        "n_needed power 1": lambda: verdicts.n_needed(0.1, 0.1, power=0.9) > 8,
        "equivalence_p inf margin": lambda: 0 < verdicts.equivalence_p(c, 10.0) < 0.01,
        "beyond_p NaN margin": lambda: verdicts.beyond_p(c, 10.0) == 1.0,
        "benchmark_margin NaN": lambda: verdicts.benchmark_margin(0.9, 0.1) == pytest.approx(0.08),
        "reference_margin NaN null": lambda: verdicts.reference_margin([0.8, 0.9], [0.2, 0.3])[0] == pytest.approx(0.06),
        "reference_margin empty": lambda: verdicts.reference_margin([0.8], [0.2])[0] == pytest.approx(0.06),
        "size_beside NaN gap": lambda: verdicts.size_beside(c, 10.0).startswith("smaller than"),
        "judge p above 1": lambda: verdicts.judge(c, p_adjusted=0.01).verdict == verdicts.HOLDS,
        "judge negative margin": lambda: verdicts.judge(c, margin=0.1).verdict == verdicts.OPEN,
        "claims_table alpha": lambda: len(verdicts.claims_table([], alpha=0.05)) == 0,
        "rank_intervals NaN": lambda: verdicts.rank_intervals(np.array([[1., 2.], [2., 1.]]))["rank"].tolist() == [1.5, 1.5],
        "bootstrap_ranks NaN": lambda: verdicts.bootstrap_ranks(_frame(), n_boot=10)["rank"].tolist() == [3.0, 2.0, 1.0],
        "bootstrap_ranks level": lambda: verdicts.bootstrap_ranks(_frame(), n_boot=10, level=0.9)["rank"].tolist()
        == [3.0, 2.0, 1.0],
        "agreement_matrix inf": lambda: agreement.agreement_matrix(_frame()).loc["x", "y"] == 1.0,
        "agreement_matrix method": lambda: agreement.agreement_matrix(_frame(), "kendall").loc["x", "z"] == pytest.approx(1.0),
        "split_half level": lambda: agreement.split_half(_frame(), level=0.9)[0] == pytest.approx(1.0),
        "inter_rater_alpha inf": lambda: agreement.inter_rater_alpha(_frame()) == pytest.approx(1.0),
        "spearman_brown inf factor": lambda: agreement.spearman_brown(0.5, 3.0) == pytest.approx(0.75),
        "per_image_agreement no common column": lambda: len(agreement.per_image_agreement(_frame(), _frame())) == 6,
    }


@pytest.mark.parametrize("case", range(len(_more_bad_calls())), ids=[c[0] for c in _more_bad_calls()])
def test_the_rest_of_the_public_functions_refuse_bad_input_by_name(case):
    _, call, message = _more_bad_calls()[case]
    with pytest.raises(ParameterError, match=message):
        call()


@pytest.mark.parametrize("name", [c[0] for c in _more_bad_calls()])
def test_the_good_twin_of_each_refusal_above_answers(name):
    assert _good_twins()[name]()
