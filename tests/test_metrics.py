"""The score interface and its first metric, on hand-made cases with known answers."""
import pytest
import torch

from xailib import metrics
from xailib.errors import ParameterError


def _mask():
    m = torch.zeros(2, 4, 4, dtype=torch.bool)
    m[:, 1:3, 1:3] = True          # a 2 x 2 object: a quarter of the image
    return m


def test_mask_energy_known_answers():
    masks = _mask()
    images = torch.rand(2, 3, 4, 4)
    perfect = masks.float()
    assert metrics.score(None, images, 0, perfect, "mask_energy", masks=masks).tolist() == [1.0, 1.0]
    outside = (~masks).float()
    assert metrics.score(None, images, 0, outside, "mask_energy", masks=masks).tolist() == [0.0, 0.0]
    uniform = torch.ones(2, 4, 4)
    assert metrics.score(None, images, 0, uniform, "mask_energy", masks=masks).tolist() == [0.25, 0.25]
    # negative saliency is ignored; a map with nothing positive scores 0
    signed = perfect - 5 * outside
    mixed = torch.stack([signed[0], -torch.ones(4, 4)])
    assert metrics.score(None, images, 0, mixed, "mask_energy", masks=masks).tolist() == [1.0, 0.0]
    # 3 units inside, 1 outside -> 0.75
    hand = torch.zeros(2, 4, 4)
    hand[:, 1, 1], hand[:, 0, 0] = 3.0, 1.0
    torch.testing.assert_close(metrics.score(None, images, 0, hand, "mask_energy", masks=masks),
                               torch.tensor([0.75, 0.75], dtype=torch.float64))


def test_score_is_invariant_to_positive_scaling():
    masks = _mask()
    s = torch.rand(2, 4, 4)
    a = metrics.score(None, torch.rand(2, 3, 4, 4), 0, s, "mask_energy", masks=masks)
    b = metrics.score(None, torch.rand(2, 3, 4, 4), 0, 7.5 * s, "mask_energy", masks=masks)
    torch.testing.assert_close(a, b)


def test_evaluator_and_errors():
    masks = _mask()
    ev = metrics.Evaluator(None, "mask_energy", masks=masks)
    assert ev.higher_is_better
    assert ev(torch.rand(2, 3, 4, 4), 0, masks.float()).tolist() == [1.0, 1.0]
    with pytest.raises(ParameterError, match="metric='auc' is not accepted.*'mask_energy'"):
        metrics.score(None, torch.rand(2, 3, 4, 4), 0, masks.float(), "auc")
    with pytest.raises(ParameterError, match="needs masks="):
        metrics.score(None, torch.rand(2, 3, 4, 4), 0, masks.float(), "mask_energy")
    with pytest.raises(ParameterError, match="maps must be"):
        metrics.score(None, torch.rand(2, 3, 4, 4), 0, torch.rand(2, 5, 5), "mask_energy", masks=masks)
    with pytest.raises(ParameterError, match="unknown parameter"):
        metrics.Evaluator(None, "mask_energy", threshold=0.5)


def test_list_and_dict_parameters_from_papermill_text():
    from xailib.params import DictOf, Int, ListOf, Text
    assert ListOf(Text()).read("m", '["resnet50", "vgg16"]', {}) == ["resnet50", "vgg16"]
    assert ListOf(Text()).read("m", "vgg_mini", {}) == ["vgg_mini"] and ListOf(Text()).read("m", ("a", "b"), {}) == ["a", "b"]
    assert DictOf(Text(), Int()).read("n", '{"resnet50": 8000}', {}) == {"resnet50": 8000}
    with pytest.raises(ParameterError, match="is not a readable list"):
        ListOf(Text()).read("m", "[resnet50", {})
    with pytest.raises(ParameterError, match="must be a dict"):
        DictOf(Text(), Int()).read("n", 5, {})


# -- the concentration family (Quantus's "complexity"): known answers --------------------------

def test_sparseness_complexity_and_effective_complexity_known_answers():
    images = torch.rand(3, 3, 4, 4)
    one = torch.zeros(4, 4)
    one[1, 2] = -7.0                                     # one non-zero pixel (its sign does not count)
    flat = torch.full((4, 4), 0.3)
    half = torch.zeros(4, 4)
    half[:2] = 1.0                                       # 8 of 16 pixels at the same value
    maps = torch.stack([one, flat, half])
    gini = metrics.score(None, images, None, maps, "sparseness")
    assert gini.tolist() == pytest.approx([15 / 16, 0.0, 0.5])
    entropy = metrics.score(None, images, None, maps, "complexity")
    assert entropy.tolist() == pytest.approx([0.0, torch.log(torch.tensor(16.0)).item(), torch.log(torch.tensor(8.0)).item()])
    count = metrics.score(None, images, None, maps, "effective_complexity")
    assert count.tolist() == [1.0, 16.0, 8.0]
    zero = torch.zeros(1, 4, 4)                          # nothing at all: flat for the first two, none counted
    assert metrics.score(None, images[:1], None, zero, "sparseness").item() == 0.0
    assert metrics.score(None, images[:1], None, zero, "complexity").item() == pytest.approx(torch.log(torch.tensor(16.0)).item())
    assert metrics.score(None, images[:1], None, zero, "effective_complexity").item() == 0.0
    tiny = one.clone()
    tiny[0, 0] = 7e-6                                    # 1e-6 of the largest: below eps
    assert metrics.score(None, images[:1], None, tiny[None], "effective_complexity").item() == 1.0
    with pytest.raises(ParameterError):
        metrics.score(None, images[:1], None, tiny[None], "effective_complexity", eps=1.5)


def test_concentration_is_scale_free_and_orders_a_blob_above_noise():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 16, 16, generator=g)
    blob = torch.zeros(1, 16, 16)
    blob[:, 6:10, 6:10] = 1.0
    images = torch.rand(1, 3, 16, 16, generator=g)
    for name in ("sparseness", "complexity", "effective_complexity"):
        a = metrics.score(None, images, None, noise, name)
        assert metrics.score(None, images, None, 5 * noise, name).item() == pytest.approx(a.item())
        better = metrics.score(None, images, None, blob, name) > a
        assert better.item() == metrics.METRICS[name].higher_is_better, name


# -- localisation under the names Arras et al. and Kohlbrenner et al. give them ------------------

def test_relevance_mass_and_rank_accuracy_and_attribution_localisation_known_answers():
    masks = _mask()                                      # a quarter of the image, 4 pixels
    images = torch.rand(2, 3, 4, 4)
    perfect, outside, uniform = masks.float(), (~masks).float(), torch.ones(2, 4, 4)
    for maps in (perfect, outside, uniform, perfect - 5 * outside):
        assert torch.equal(metrics.score(None, images, None, maps, "relevance_mass_accuracy", masks=masks),
                           metrics.score(None, images, None, maps, "mask_energy", masks=masks))
    rra = lambda m: metrics.score(None, images, None, m, "relevance_rank_accuracy", masks=masks).tolist()
    assert rra(perfect) == [1.0, 1.0] and rra(outside) == [0.0, 0.0]
    three = torch.zeros(2, 4, 4)
    three[:, 1, 1], three[:, 1, 2], three[:, 2, 1], three[:, 0, 0] = 4.0, 3.0, 2.0, 1.0   # 3 of the top 4 inside
    assert rra(three) == [0.75, 0.75]
    al = lambda m, **k: metrics.score(None, images, None, m, "attribution_localisation", masks=masks, **k).tolist()
    assert al(uniform, weighted=True) == [1.0, 1.0]      # weighted: a uniform map scores 1 whatever the size
    assert al(perfect, weighted=True) == [4.0, 4.0]      # all inside a quarter of the image: 1 / (1 / 4)
    assert al(uniform) == [0.25, 0.25]                   # unweighted: mask energy
    with pytest.raises(ParameterError):
        metrics.score(None, images, None, uniform, "relevance_rank_accuracy", masks=torch.zeros(2, 4, 4, dtype=torch.bool))


# -- faithfulness under the names of Quantus and LATEC: known answers on models whose answer is known --

class _Cells(torch.nn.Module):
    """Two classes on 8 x 8 images: class 0's logit sums the pixels of each 2 x 2 square times
    2 ** (its index), class 1's is 0 (every channel alike)."""

    def __init__(self):
        super().__init__()
        grid = (torch.arange(8)[:, None] // 2) * 4 + torch.arange(8)[None, :] // 2
        self.register_buffer("w", (2.0 ** grid.float()) / 2 ** 15)
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        z = (x * self.w).flatten(1).sum(1, keepdim=True) * self.scale
        return torch.cat([z, torch.zeros_like(z)], 1)


def test_faithfulness_correlation_of_the_exact_attribution_of_a_linear_model_is_1():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3)).eval()
    x, t = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    w = net[1].weight.detach()[t].view(-1, 3, 8, 8)
    exact = (w * x).sum(1)                                      # each pixel's share of the logit
    fc = metrics.score(net, x, t, exact, "faithfulness_correlation", subset=16, n_subsets=20, fast=False)
    assert fc.tolist() == pytest.approx([1.0] * 4, abs=1e-6)
    noise = metrics.score(net, x, t, torch.rand(4, 8, 8), "faithfulness_correlation", subset=16, n_subsets=20, fast=False)
    assert (noise < 0.9).all()
    flat = metrics.score(net, x, t, torch.ones(4, 8, 8), "faithfulness_correlation", subset=16, n_subsets=20, fast=False)
    assert flat.tolist() == [0.0] * 4                           # every set sums alike: predicts nothing
    with pytest.raises(ParameterError):
        metrics.score(net, x, t, exact, "faithfulness_correlation", subset=64)


def test_monotonicity_correlation_ranks_the_squares_as_the_model_weighs_them():
    net, x = _Cells().eval(), torch.full((2, 3, 8, 8), 0.5)
    grid = (torch.arange(8)[:, None] // 2) * 4 + torch.arange(8)[None, :] // 2
    good = grid.float().expand(2, 8, 8)                         # the squares in the order of their weight
    mc = lambda m: metrics.score(net, x, torch.tensor([0, 0]), m, "monotonicity_correlation", cell=2, n_samples=50,
                                 fast=False)
    assert mc(good).tolist() == pytest.approx([1.0, 1.0])
    assert mc(15 - good).tolist() == pytest.approx([-1.0, -1.0])
    assert mc(torch.ones(2, 8, 8)).tolist() == [0.0, 0.0]


def test_region_perturbation_known_answers():
    net = _Cells().eval()
    x, t = torch.ones(1, 3, 8, 8), torch.tensor([0])           # white: any noise lowers class 0's logit
    grid = (torch.arange(8)[:, None] // 2) * 4 + torch.arange(8)[None, :] // 2
    good = grid.float()[None]
    from xailib.metrics import faithfulness as faith
    curve = faith.region_perturbation(net, x, t, good, patch=2, n_regions=16)
    assert curve.shape == (1, 17)
    p0 = torch.softmax(net(x), 1)[0, 0].item()
    assert curve[0, 0].item() == pytest.approx(p0, abs=1e-6)    # the unperturbed image first
    morf = lambda m: metrics.score(net, x, t, m, "region_perturbation_morf", patch=2, n_regions=16, fast=False).item()
    lerf = lambda m: metrics.score(net, x, t, m, "region_perturbation_lerf", patch=2, n_regions=16, fast=False).item()
    assert morf(good) == pytest.approx(faith.aopc(curve).item())
    # every square is replaced by the end whatever the order: the orders differ in when the heavy ones go
    assert morf(good) > morf(15 - good) > 0 and 0 < lerf(good) < lerf(15 - good)
    assert (curve[0, 1:] <= curve[0, :-1] + 1e-12).all()       # the most relevant first: the output only falls
    with pytest.raises(ParameterError):
        metrics.score(net, x, t, good, "region_perturbation_morf", patch=2, n_regions=17)


def test_focus_known_answers_and_the_mosaic_network():
    from xailib import data, known_truth, models, variants
    from xailib.methods import explain
    pool = data.load_shapes("test", n=40)
    mos = variants.mosaics(pool, 3, seed=0)
    x, m = mos.images, mos.masks
    focus = lambda s: metrics.score(None, x, None, s, "focus", masks=m).tolist()          # noqa: E731
    assert focus(m.float()) == [1.0] * 3 and focus((~m).float()) == [0.0] * 3
    assert focus(torch.ones(3, 128, 128)) == [0.5] * 3
    net = models.load_model("vgg_mini")
    wrapped = variants.MosaicNetwork(net)
    torch.testing.assert_close(wrapped(x), net(x))                        # the same network, a larger input
    assert wrapped.xai_input_size == (128, 128) and wrapped.xai_cam_layer == "net." + net.xai_cam_layer
    assert not wrapped.training                                           # in the network's mode, eval
    assert explain(wrapped, x, mos.labels, "gradcam").shape == (3, 128, 128)
    kept, _ = known_truth.mosaic_images(net, 4)
    assert (models.predict(wrapped, kept.images).argmax(1) == kept.labels).all()


def test_monotonicity_and_recovering_rate_known_answers():
    net, x, t = _Cells().eval(), torch.ones(1, 3, 8, 8), torch.tensor([0])
    grid = (torch.arange(8)[:, None] // 2) * 4 + torch.arange(8)[None, :] // 2
    mono = lambda n, m: metrics.score(n, x, t, m, "monotonicity", patch=2, fast=False).item()    # noqa: E731
    assert mono(net, grid.float()[None]) == 1.0 and mono(net, -grid.float()[None]) == 1.0   # every square adds
    with torch.no_grad():
        net.w[0:2, 0:2] *= -1                                    # one square now lowers class 0's logit
    assert mono(net, grid.float()[None]) == 0.0

    class Trojan(torch.nn.Module):
        """Class 1 when the top-left 2 x 2 square is bright (the trigger), else class 0."""
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, z):
            on = z[:, :, :2, :2].mean((1, 2, 3)) * self.scale
            return torch.stack([0.5 - on, on - 0.5], 1) * 20

    trigger = torch.zeros(2, 8, 8, dtype=torch.bool)
    trigger[:, :2, :2] = True
    xs = torch.full((2, 3, 8, 8), 0.2)
    xs[:, :, :2, :2] = 1.0
    rr = lambda m: metrics.score(Trojan(), xs, torch.tensor([1, 1]), m, "recovering_rate", masks=trigger,   # noqa: E731
                                 true_labels=torch.tensor([0, 0]), removal="zero", fast=False).tolist()
    assert rr(trigger.float()) == [1.0, 1.0]                     # the trigger found and removed: recovered
    assert rr((~trigger).float()) == [0.0, 0.0]
