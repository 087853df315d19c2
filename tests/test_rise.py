"""RISE, deletion / insertion and the pointing game: known answers and properties."""
import math

import pytest
import torch
from torch import nn

from xailib import data, metrics, models
from xailib.methods import explain
from xailib.errors import ParameterError
from xailib.methods.rise import MaskSampler, rise_maps


class RedMean(nn.Module):
    """Two classes with probabilities exactly [1 - q, q], q = mean of the red channel."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x):
        q = x[:, 0].flatten(1).mean(1).clamp(1e-7, 1 - 1e-7)
        return torch.stack([torch.log1p(-q), torch.log(q)], 1)


class Constant(nn.Module):
    """Ignores its input: class 1 always has probability sigmoid(1)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x):
        return torch.tensor([[0.0, 1.0]]).expand(len(x), 2)


# -- masks -------------------------------------------------------------------------------------

def test_masks_follow_section_3_2():
    s = MaskSampler(2000, (64, 64), cells=7, p=0.5, seed=0)
    assert s.cell == (10, 10)                         # ceil(64 / 7): the crop must fit
    m = s.masks(0, 2000, "cpu")
    assert m.shape == (2000, 64, 64) and m.min() >= 0 and m.max() <= 1
    assert m.mean().item() == pytest.approx(0.5, abs=0.01)     # E[M] = p at every pixel
    assert (m.mean(0) - 0.5).abs().max() < 0.06
    assert ((m > 0) & (m < 1)).any()                  # bilinear: no longer binary
    assert MaskSampler(10, (224, 224)).cell == (32, 32)        # the paper's setting
    ones = MaskSampler(5, (64, 64), p=1.0).masks(0, 5, "cpu")
    assert torch.equal(ones, torch.ones(5, 64, 64))


def test_per_pixel_masks_are_binary_and_independent_per_pixel():
    """One cell per pixel: each pixel kept with probability p on its own, the same variance
    p (1 - p) at the corner as in the centre (upsampling 64 cells to 65 px would average
    neighbours: variance 0.25 at the corner, about 0.06 inside)."""
    m = MaskSampler(4000, (16, 16), cells=16, p=0.5, seed=0).masks(0, 4000, "cpu")
    assert set(m.unique().tolist()) == {0.0, 1.0}
    var = m.var(0)
    assert (var - 0.25).abs().max() < 0.02
    c = (m - m.mean(0)).reshape(4000, -1)
    corr = (c.T @ c) / (4000 * 0.25)
    assert (corr - torch.eye(256)).abs().max() < 0.1         # neighbours uncorrelated


def test_masks_are_seeded_and_independent_of_chunking():
    a = MaskSampler(100, (32, 32), seed=3)
    b = MaskSampler(100, (32, 32), seed=3)
    whole = a.masks(0, 100, "cpu")
    torch.testing.assert_close(whole, torch.cat([b.masks(0, 37, "cpu"), b.masks(37, 100, "cpu")]))
    assert not torch.equal(whole, MaskSampler(100, (32, 32), seed=4).masks(0, 100, "cpu"))


def test_mask_parameters_are_checked():
    with pytest.raises(ParameterError, match="n_masks=0"):
        MaskSampler(0, (64, 64))
    with pytest.raises(ParameterError, match="p=0"):
        MaskSampler(10, (64, 64), p=0)


# -- the saliency estimator ------------------------------------------------------------------------

def test_rise_is_equation_6_exactly():
    torch.manual_seed(0)
    model = models.build_benchmark_model("vgg_mini").eval()
    x = torch.rand(2, 3, 64, 64)
    t = torch.tensor([3, 7])
    n, p = 20, 0.5
    m = MaskSampler(n, (64, 64), 7, p, seed=1).masks(0, n, "cpu")
    fill = model.normalize.mean.view(1, 3, 1, 1)
    want = []
    for i in range(2):
        probs = torch.softmax(model(fill + (x[i:i + 1] - fill) * m[:, None]), 1)[:, t[i]]
        want.append((probs[:, None, None] * m).sum(0) / (n * p))
    got = rise_maps(model, x, t, n_masks=n, p=p, seed=1, model_batch_size=7)
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-5, atol=1e-6)
    every = rise_maps(model, x, None, n_masks=n, p=p, seed=1, model_batch_size=20)
    assert every.shape == (2, 10, 64, 64)
    torch.testing.assert_close(every[torch.arange(2), t], got, rtol=1e-5, atol=1e-6)


def test_rise_of_a_constant_model_is_flat():
    sal = explain(Constant(), torch.rand(1, 3, 32, 32), 1, "rise", n_masks=3000)
    p1 = torch.sigmoid(torch.tensor(1.0)).item()
    assert sal.mean().item() == pytest.approx(p1, rel=0.01)
    assert (sal - p1).abs().max() < 0.1 * p1


def test_rise_finds_the_region_the_model_reads():
    x = torch.zeros(1, 3, 32, 32)
    x[:, 0, :, :16] = 1.0                          # only the left half is red
    sal = explain(RedMean(), x, 1, "rise", n_masks=2000, fill=0.0)[0]
    # a RISE map is E[f | pixel kept]: a large constant E[f] plus the pixel's own effect
    assert sal[:, :12].mean() - sal[:, 20:].mean() > 0.01
    assert sal[:, :16].min() > sal[:, 16:].mean()


# -- deletion and insertion ------------------------------------------------------------------------

def _two_by_two():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 0.5], [0.25, 0.0]])
    return x


def test_deletion_auc_by_hand():
    x, model = _two_by_two(), RedMean()
    best = x[:, 0]                                   # delete the reddest pixel first
    # q after 0..4 deletions: [1.75, .75, .25, 0, 0] / 4; trapezoid with steps of 1/4
    frac, curve, auc = metrics.causal_curves(model, x, 1, best, "deletion", n_steps=4, removal=0.0)
    torch.testing.assert_close(frac, torch.tensor([0, .25, .5, .75, 1.]))
    torch.testing.assert_close(curve[0], torch.tensor([.4375, .1875, .0625, 0, 0]), atol=1e-6, rtol=0)
    assert auc.item() == pytest.approx(0.1171875, abs=1e-6)
    worst = -x[:, 0]                                 # reverse order: [1.75, 1.75, 1.5, 1, 0] / 4
    assert metrics.score(model, x, 1, worst, "deletion", n_steps=4, removal=0.0).item() == \
        pytest.approx(0.3203125, abs=1e-6)
    # two steps only: counts 0, 2, 4 -> q = [.4375, .0625, 0]
    assert metrics.score(model, x, 1, best, "deletion", n_steps=2, removal=0.0).item() == \
        pytest.approx(0.5 * ((.4375 + .0625) / 2 + .0625 / 2), abs=1e-6)


def test_deletion_into_a_blur_ends_at_the_blurred_image_and_equals_a_constant_fill_when_the_blur_is():
    x, model = _two_by_two(), RedMean()
    frac, curve, _ = metrics.causal_curves(model, x, 1, x[:, 0], "deletion", n_steps=4, removal="blur",
                                           blur_kernel=3, blur_sigma=1.0)
    blurred = torch.softmax(model(metrics.blur(x, 3, 1.0)), 1)[0, 1]
    assert curve[0, 0].item() == pytest.approx(0.4375, abs=1e-6)        # nothing removed yet
    assert curve[0, -1].item() == pytest.approx(blurred.item(), abs=1e-6)  # everything replaced
    flat = torch.full_like(x, 0.3)                                        # a blur of a flat image is flat:
    a = metrics.score(model, flat, 1, x[:, 0], "deletion", n_steps=4, removal="blur", blur_kernel=3, blur_sigma=1.0)
    b = metrics.score(model, flat, 1, x[:, 0], "deletion", n_steps=4, removal=0.3)   # the same as filling 0.3
    assert a.item() == pytest.approx(b.item(), abs=1e-6)


def test_insertion_from_an_unblurred_start_is_flat():
    x, model = _two_by_two(), RedMean()
    auc = metrics.score(model, x, 1, x[:, 0], "insertion", n_steps=4, blur_kernel=1, blur_sigma=1.0)
    assert auc.item() == pytest.approx(0.4375, abs=1e-6)


class ObjectOnly(nn.Module):
    """Reads only the object (a fixed 8x8 square): class 1 wins only while it is nearly intact."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x):
        inside = x[:, :, 12:20, 12:20].mean((1, 2, 3))
        return torch.stack([torch.zeros_like(inside), 30 * (inside - 0.85)], 1)


def test_object_mask_beats_a_random_map_on_a_model_that_reads_only_the_object():
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.rand(4, 3, 32, 32, generator=g)
    x[:, :, 12:20, 12:20] = 1.0
    obj = torch.zeros(4, 32, 32)
    obj[:, 12:20, 12:20] = 1.0
    rand = torch.rand(4, 32, 32, generator=g)
    model = ObjectOnly()
    kw = dict(removal=0.0)
    d_obj = metrics.score(model, x, 1, obj + 0.01 * rand, "deletion", **kw)
    d_rnd = metrics.score(model, x, 1, rand, "deletion", **kw)
    i_obj = metrics.score(model, x, 1, obj + 0.01 * rand, "insertion", blur_sigma=3.0)
    i_rnd = metrics.score(model, x, 1, rand, "insertion", blur_sigma=3.0)
    assert (d_obj < d_rnd / 4).all() and (i_obj > i_rnd + 0.3).all(), (d_obj, d_rnd, i_obj, i_rnd)
    # the object is 1/16 of the image: deleting it first leaves ~1/16 of the area at high probability
    assert (d_obj < 0.1).all()


def test_object_mask_beats_a_random_map_for_insertion_on_the_trained_models():
    # (For deletion it does not on resnet_mini: a constant fill leaves the object's silhouette,
    # which still carries a shape class. The RISE chapter shows this; it is not a defect.)
    ds = data.load_shapes("test", n=16)
    rand = torch.rand(16, 64, 64, generator=torch.Generator().manual_seed(0))
    for name in models.BENCHMARK_MODELS:
        model = models.load_model(name)
        obj = ds.masks.float() + 0.01 * rand            # object first, random order within
        i_obj = metrics.score(model, ds.images, ds.labels, obj, "insertion", blur_sigma=3.0).mean()
        i_rnd = metrics.score(model, ds.images, ds.labels, rand, "insertion", blur_sigma=3.0).mean()
        assert i_obj > i_rnd + 0.1, (name, i_obj, i_rnd)


def test_causal_metrics_do_not_depend_on_batching():
    ds = data.load_shapes("test", n=5)
    model = models.load_model("resnet_mini")
    s = torch.rand(5, 64, 64, generator=torch.Generator().manual_seed(1))
    a = metrics.score(model, ds.images, ds.labels, s, "insertion", batch_size=1)
    b = metrics.score(model, ds.images, ds.labels, s, "insertion", batch_size=4096)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ParameterError, match="n_steps=0"):
        metrics.score(model, ds.images, ds.labels, s, "deletion", n_steps=0)


# -- pointing game -----------------------------------------------------------------------------

def _box_mask():
    m = torch.zeros(1, 20, 20, dtype=torch.bool)
    m[0, 5:10, 5:10] = True                         # rows and columns 5..9
    return m


def _peak_at(y, x, also=None):
    s = torch.zeros(1, 20, 20)
    s[0, y, x] = 1.0
    if also:
        s[0, also[0], also[1]] = 1.0
    return s


@pytest.mark.parametrize("peak,tol,hit", [((7, 7), 0, 1.0), ((7, 12), 0, 0.0), ((7, 12), 3, 1.0),
                                          ((7, 12), 2.9, 0.0), ((12, 12), 4.3, 1.0),
                                          ((12, 12), 4.2, 0.0)])
def test_pointing_game_hand_made_boxes(peak, tol, hit):
    # (12, 12) is sqrt(3^2 + 3^2) = 4.24 px from the object's corner pixel (9, 9)
    got = metrics.score(None, torch.zeros(1, 3, 20, 20), None, _peak_at(*peak), "pointing_game",
                        masks=_box_mask(), tolerance=tol)
    assert got.item() == hit


def test_pointing_game_ties_and_default_tolerance():
    masks = _box_mask()
    tie = _peak_at(7, 7, also=(0, 19))              # one tied maximum on, one far off
    assert metrics.score(None, torch.zeros(1, 3, 20, 20), None, tie, "pointing_game",
                         masks=masks, tolerance=0).item() == 0.5
    flat = torch.ones(1, 20, 20)                    # every pixel ties: the share within reach
    # the 5x5 box grown by a Euclidean 2 px: 9x9 pixels less 3 at each corner ((2,2), (2,1),
    # (1,2) are more than 2 px from the box)
    near = (81 - 4 * 3) / 400
    assert metrics.score(None, torch.zeros(1, 3, 20, 20), None, flat, "pointing_game",
                         masks=masks, tolerance=2).item() == pytest.approx(near)
    # default tolerance: 15 px at 224, i.e. 15 * 20 / 224 = 1.34 px here
    assert metrics.score(None, torch.zeros(1, 3, 20, 20), None, _peak_at(7, 11), "pointing_game",
                         masks=masks).item() == 0.0
    assert metrics.score(None, torch.zeros(1, 3, 20, 20), None, _peak_at(7, 10), "pointing_game",
                         masks=masks).item() == 1.0
    assert math.isclose(15 * 20 / 224, 1.339, abs_tol=1e-3)


def test_the_example_figure_round_trips_through_its_committed_tables():
    """Chapter 02's Fig. 4 on the real network is drawn from two small committed tables: the
    curves and the map, average-pooled, come back as they went in (to the CSV's six digits)."""
    import io

    import pandas as pd
    import torch

    from xailib.chapters import rise as chapter
    curves = {"RISE": torch.rand(3, 9), "LIME": torch.rand(3, 9)}
    saliency = torch.rand(224, 224)
    curve_table, map_table = chapter.example_tables(torch.linspace(0, 1, 9).numpy(), curves, saliency, image=5)
    assert map_table.shape == (56, 56)
    read = lambda t, **kw: pd.read_csv(io.StringIO(t.to_csv(float_format="%.6g")), **kw)   # noqa: E731
    fractions, curve, back, image = chapter.example_from_tables(read(curve_table, index_col=0), read(map_table), "LIME")
    assert image == 5 and fractions.tolist() == pytest.approx(torch.linspace(0, 1, 9).tolist())
    assert torch.allclose(curve.float(), curves["LIME"][:2], atol=1e-5)
    assert torch.allclose(back.float(), torch.nn.functional.avg_pool2d(saliency[None, None], 4)[0, 0], atol=1e-5)
    small = chapter.example_tables(torch.linspace(0, 1, 9).numpy(), curves, saliency[:64, :64], image=0)[1]
    assert small.shape == (64, 64) and small.to_numpy() == pytest.approx(saliency[:64, :64].numpy())
