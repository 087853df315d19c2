"""Issue 29: a sampled metric's draws are a function of (seed, image, sample) alone, so an image
scores the same at any batching (batch sizes 1, 7 and the default) and in any position."""
import pytest
import torch

from xailib import data, metrics, models
from xailib.methods import explain
from xailib.metrics import draws

N = 8


@pytest.fixture(scope="module")
def setting():
    net = models.load_model("vgg_mini")
    ds = data.load_shapes("test", n=N)
    maps = explain(net, ds.images, ds.labels, "gradient")
    return net, ds.images, ds.labels, maps


def _in_batches(fn, images, targets, maps, size):
    return torch.cat([fn(images[i:i + size], targets[i:i + size], maps[i:i + size]) for i in range(0, len(images), size)])


@pytest.mark.parametrize("metric, params", [
    ("infidelity", dict(n_samples=6, noise=0.01)),
    ("infidelity", dict(n_samples=6, perturbation="square", side=8)),
    ("infidelity", dict(n_samples=6, noise=0.01, relative=True)),
    ("max_sensitivity", dict(method="gradient", n_samples=3)),
    ("sensitivity_n", dict(n_subsets=8)),
    ("faithfulness_correlation", dict(n_subsets=8)),
    ("monotonicity_correlation", dict(cell=16, n_samples=3)),
    ("region_perturbation_morf", dict(n_regions=6)),
])
def test_sampled_metrics_give_each_image_the_same_value_at_any_batching(setting, metric, params):
    net, x, y, m = setting
    fn = lambda a, b, c: metrics.score(net, a, b, c, metric, **params)   # noqa: E731
    whole = fn(x, y, m)
    for size in (1, 7):
        torch.testing.assert_close(_in_batches(fn, x, y, m, size), whole, rtol=1e-5, atol=1e-8)
    back = torch.arange(N - 1, -1, -1)
    torch.testing.assert_close(fn(x[back], y[back], m[back]), whole[back], rtol=1e-5, atol=1e-8)   # any position
    if metric == "infidelity":     # captum's chunks of samples (its batch size) change nothing either
        torch.testing.assert_close(metrics.score(net, x, y, m, metric, batch_size=5, **params), whole,
                                   rtol=1e-5, atol=1e-8)
    if "seed" in metrics.METRICS[metric].defaults and metric != "sensitivity_n":
        assert not torch.allclose(metrics.score(net, x, y, m, metric, seed=1, **params), whole)   # the seed matters


def test_draw_keys_depend_on_the_seed_and_the_image_only():
    x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    keys = draws.image_keys(x, seed=0)
    assert keys == draws.image_keys(x.clone(), seed=0) and len(set(keys)) == 3
    assert draws.image_keys(x[[2, 0]], seed=0) == [keys[2], keys[0]]
    assert draws.image_keys(x, seed=1) != keys
    s = draws.Samples(x[:2], seed=0)
    first = s(2, lambda g: torch.rand(1, generator=g).item())
    rest = s(1, lambda g: torch.rand(1, generator=g).item())
    once = draws.Samples(x[:2], seed=0)(3, lambda g: torch.rand(1, generator=g).item())
    assert first[:2] + rest[:1] == once[:3] and first[2:] + rest[1:] == once[3:]   # chunks change nothing
