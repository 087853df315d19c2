"""NeuroMask (Algorithm 1 of Alzantot et al. 2019): known answers, the two settings, batching."""
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from xailib.methods import explain, learned_masks as nm, method_names
from xailib.errors import ParameterError


class RegionModel(nn.Module):
    """Two classes; class 0's logit is 40 x the mean brightness of the 8 x 8 square at (4, 4)
    minus 36, class 1's is 0: the decision depends on that region only, and needs nearly all of it."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(40.0))
        self.region = (slice(4, 12), slice(4, 12))

    def forward(self, x):
        inside = x[:, :, self.region[0], self.region[1]].mean((1, 2, 3))
        return torch.stack([self.scale * inside - 36, torch.zeros_like(inside)], 1)


def test_the_mask_keeps_the_region_the_decision_depends_on_and_drops_the_rest():
    model, x = RegionModel(), torch.ones(2, 3, 16, 16)
    s = nm.get_setting("authors", 16, iterations=1000)
    masks, hist = nm.learn(model, x, torch.zeros(2, dtype=torch.long), s, seed=0)
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[4:12, 4:12] = True
    inner = torch.zeros(16, 16, dtype=torch.bool)     # the smoothness term softens the region's edge
    inner[5:11, 5:11] = True
    near = torch.zeros(16, 16, dtype=torch.bool)
    near[2:14, 2:14] = True
    for m in masks:
        assert m[inner].min() > 0.9, m[inner].min()
        assert m[~region].mean() < 0.15, m[~region].mean()
        # (a few isolated pixels on the image's border stay on: the authors' "VALID" Laplacian
        # constrains the border weakly, and RMSProp's steps leave them oscillating)
        assert (m[~near] < 0.05).float().mean() > 0.9
    assert model(masks[:, None] * x).argmax(1).eq(0).all()       # the decision is kept
    assert hist["total"][:, -1].lt(hist["total"][:, 0]).all()     # and the loss went down
    assert model.scale.requires_grad                              # the model is left as it was


def test_loss_terms_match_hand_computed_values_on_a_tiny_W():
    W = torch.tensor([[0.0, 1, 2], [-1, 3, 0], [2, -2, 1]]).view(1, 1, 3, 3)
    logits = torch.tensor([[2.0, 0.0]])
    t = torch.tensor([0])
    ce = -np.log(np.exp(2) / (np.exp(2) + 1))
    a = nm.get_setting("authors", 64, laplacian="8-neighbour", tau=10.0)
    # the code: mean |W + 10| = (90 + 6) / 9; one VALID 3 x 3 output: 8 * 3 - (0+1+2-1+0+2-2+1) = 21, squared
    got = nm.loss_terms(W, logits, t, a)
    assert got["pred"].item() == pytest.approx(ce)
    assert got["sparse"].item() == pytest.approx(96 / 9)
    assert got["smooth"].item() == pytest.approx(21.0 ** 2)
    assert got["total"].item() == pytest.approx(0.4 * ce + 0.35 * 96 / 9 + 0.15 * 441)
    p = nm.get_setting("paper", 64)
    # the text: sum |W + 20| = 180 + 6; 4-neighbour: (1 - 1 + 0 - 2) - 4 * 3 = -14, absolute
    got = nm.loss_terms(W, logits, t, p)
    assert got["sparse"].item() == pytest.approx(186)
    assert got["smooth"].item() == pytest.approx(14)
    line9 = nm.get_setting("paper", 64, sparsity="abs(W)")             # Algorithm 1, line 9
    assert nm.loss_terms(W, logits, t, line9)["sparse"].item() == pytest.approx(12)


def test_rmsprop_is_tensorflow_1s():
    s = nm.get_setting("authors", 64)
    W, g = torch.tensor([1.0]), torch.tensor([2.0])
    v = torch.tensor([s.v0])                          # TensorFlow 1 starts at one
    nm._rmsprop_step(W, g, v, s)
    assert v.item() == pytest.approx(0.9 + 0.1 * 4)
    assert W.item() == pytest.approx(1 - 0.03 * 2 / np.sqrt(1.3 + 1e-10))


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3)).eval()


def test_a_batch_gives_the_masks_of_one_image_at_a_time():
    model = _net()
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2, 1])
    s = nm.get_setting("authors", 12, iterations=60)
    together, _ = nm.learn(model, x, t, s, seed=3)
    alone = torch.cat([nm.learn(model, x[i:i + 1], t[i:i + 1], s, seed=3)[0] for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-4)
    again, _ = nm.learn(model, x, t, s, seed=3)
    assert torch.equal(together, again)                               # deterministic
    other, _ = nm.learn(model, x, t, s, seed=4)
    assert not torch.allclose(together, other, atol=1e-2)              # the seed matters


def test_the_two_settings_differ_only_where_the_chapter_says():
    for side in (32, 64, 224):
        a, p = asdict(nm.get_setting("authors", side)), asdict(nm.get_setting("paper", side))
        differ = {k for k in a if a[k] != p[k]}
        listed = {"tau", "init", "temperature", "sparsity", "smoothness", "laplacian", "reduce",
                  "lambda_sp", "lambda_sm"}
        assert differ <= listed, differ - listed
        # every listed difference is in the chapter's table (reduce: under sparsity / smoothness;
        # the coefficients under "coefficients")
        table = set(nm.DIFFERENCES) | {"reduce", "lambda_sp", "lambda_sm"} - {"coefficients"}
        assert differ <= table
        assert a["temperature"] == (1.0 if side <= 64 else 0.3)


def test_patience_stops_images_early_and_registry_call():
    model = _net()
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    s = nm.get_setting("authors", 12, iterations=2000)
    masks, hist = nm.learn(model, x, torch.tensor([0, 1]), s, patience=20)
    assert (hist["stopped"] < 2000).all()
    full, _ = nm.learn(model, x, torch.tensor([0, 1]), s)
    assert (masks - full).abs().mean() < 0.05         # stopping early changes the masks little
    maps = explain(model, x, [0, 1], "neuromask", iterations=20)
    assert maps.shape == (2, 12, 12) and maps.min() >= 0 and maps.max() <= 1
    assert "neuromask" in method_names(learned=True)
    assert "neuromask" not in method_names()          # "all" in chapters 01-04 leaves it out


def test_learning_progress_is_recorded():
    model = _net()
    x = torch.rand(1, 3, 12, 12)
    s = nm.get_setting("paper", 12, iterations=10)
    masks, hist = nm.learn(model, x, torch.tensor([0]), s, record=(0, 5, 10))
    assert set(hist["snapshots"]) == {0, 5, 10}
    assert torch.allclose(hist["snapshots"][10], masks)
    assert hist["total"].shape == (1, 11) and torch.isfinite(hist["total"]).all()


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match="setting='text' is not accepted"):
        nm.get_setting("text")
    with pytest.raises(ParameterError, match="unknown NeuroMask parameter"):
        nm.get_setting("paper", 64, lamda_sp=1.0)
    with pytest.raises(ParameterError, match="laplacian='6' is not accepted"):
        nm.get_setting("paper", 64, laplacian="6")
    with pytest.raises(ParameterError, match="lr=0 must be > 0"):
        nm.get_setting("paper", 64, lr=0)
    with pytest.raises(ParameterError, match="patience=0"):
        explain(_net(), torch.rand(1, 3, 12, 12), [0], "neuromask", patience=0)


def test_a_sweep_in_one_batch_gives_the_masks_of_each_setting_alone():
    model = _net()
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(2)).repeat(2, 1, 1, 1)
    t = torch.tensor([1, 1])
    s = nm.get_setting("authors", 12, iterations=60)
    both, _ = nm.learn(model, x, t, s, weights={"lambda_sp": [0.1, 1.0], "lambda_sm": [0.5, 0.05]})
    one, _ = nm.learn(model, x[:1], t[:1], nm.get_setting("authors", 12, iterations=60, lambda_sp=0.1, lambda_sm=0.5))
    two, _ = nm.learn(model, x[:1], t[:1], nm.get_setting("authors", 12, iterations=60, lambda_sp=1.0, lambda_sm=0.05))
    assert torch.allclose(both, torch.cat([one, two]), atol=1e-4)
    assert not torch.allclose(one, two, atol=1e-2)


class TextureModel(RegionModel):
    """Class 0's logit grows with the contrast (|x - 0.5|) inside the 8 x 8 square at (4, 4): a
    blur takes it away, so only that region's own pixels keep the decision."""

    def forward(self, x):
        inside = (x[:, :, 4:12, 4:12] - 0.5).abs().mean((1, 2, 3)) * 2
        return torch.stack([self.scale * inside - 20, torch.zeros_like(inside)], 1)


def test_extremal_perturbation_keeps_the_decisive_region_at_the_area_asked():
    """At the region's own area (a quarter of the image) the mask covers the region; its mean
    is the area asked, one area per image too; the model gets no gradient."""
    model = TextureModel()
    x = (torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    maps = explain(model, x, [0, 0], "extremal_perturbation", area=[0.25, 0.1], iterations=300,
                           step=2, blur_sigma=2.0)
    assert maps.shape == (2, 16, 16) and maps.min() >= 0 and maps.max() <= 1
    assert maps[0].mean().item() == pytest.approx(0.25, abs=0.05)
    assert maps[1].mean().item() == pytest.approx(0.1, abs=0.05)
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[4:12, 4:12] = True
    assert maps[0][region].mean() > 0.8 and maps[0][~region].mean() < 0.1
    assert maps[1][~region].max() < 0.5                       # a smaller area stays inside the region
    assert model.scale.grad is None                           # the model got no gradient
    with pytest.raises(ParameterError, match="area must be a share"):
        explain(model, x, [0, 0], "extremal_perturbation", area=0.0)
