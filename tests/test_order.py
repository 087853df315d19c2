"""How metrics rank a map's pixels (xailib.metrics.order): by decreasing saliency, ties in one fixed
random order, so a flat map cannot win by its position; known answers and the constant-map test."""
import pytest
import torch
from torch import nn

from xailib import data, metrics, models, verdicts
from xailib.methods import explain
from xailib.errors import ParameterError
from xailib.metrics import order


def test_distinct_values_are_sorted_and_ties_follow_the_fixed_permutation():
    v = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    assert order.saliency_order(v)[0].tolist() == [1, 2, 3, 0]
    flat = torch.ones(3, 16)
    perm = order.tie_permutation(16)
    assert sorted(perm.tolist()) == list(range(16)) and perm.tolist() != list(range(16))
    assert (order.saliency_order(flat) == perm).all()                 # every row: the same random order
    with order.tie_rule("index"):
        assert order.saliency_order(flat)[0].tolist() == list(range(16))
    assert (order.saliency_order(flat) == perm).all()                 # the block restored the rule
    # two tied maxima: whichever comes first in the permutation leads; the rest sorted
    t = torch.tensor([[2.0, 0.0, 2.0, 1.0]])
    first = 0 if order.tie_permutation(4).tolist().index(0) < order.tie_permutation(4).tolist().index(2) else 2
    assert order.saliency_order(t)[0].tolist() == [first, 2 - first, 3, 1]
    with pytest.raises(ParameterError, match="rule"):
        with order.tie_rule("raster"):
            pass


def test_a_row_is_ranked_alike_alone_and_in_a_batch():
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 4, (5, 64), generator=g).float()             # many ties
    both = order.saliency_order(v)
    for i in range(5):
        assert (order.saliency_order(v[i:i + 1])[0] == both[i]).all()


class TopRows(nn.Module):
    """Says class 0 as long as the top quarter of the image is bright: a network that looks only
    where a row-major sort takes a flat map's pixels first."""

    def forward(self, x):
        top = x[:, :, : x.shape[-2] // 4].mean((1, 2, 3))
        return torch.stack([20 * (top - 0.5), torch.zeros_like(top)], 1)


def test_a_flat_map_no_longer_deletes_top_rows_first():
    x = torch.ones(20, 3, 16, 16)
    flat, noise = torch.ones(20, 16, 16), torch.rand(20, 16, 16, generator=torch.Generator().manual_seed(1))
    auc = lambda s: metrics.score(TopRows(), x, 0, s, "deletion", removal="zero", n_steps=16)   # noqa: E731
    random_orders = auc(noise)                      # 20 random orders of the same image
    with order.tie_rule("index"):
        assert (auc(flat) < random_orders.min() - 0.1).all()      # the old order: the top rows go first
    assert random_orders.min() <= auc(flat)[0] <= random_orders.max()   # now one random order among others


@pytest.mark.parametrize("removal", ["zero", "mean", "dataset_mean", "blur", "road"])
def test_a_constant_map_cannot_beat_the_random_map_under_any_operator(removal):
    net = models.load_model("vgg_mini")
    pool = data.load_dataset("shapes", "test", n=16, size=64, seed=0)
    x, t = pool.images, pool.labels
    d = lambda m: metrics.score(net, x, t, explain(net, x, t, m), "deletion",   # noqa: E731
                                removal=removal, n_steps=8).numpy()
    c = verdicts.paired(d("random"), d("constant"))    # random minus constant: > 0 when the constant map wins
    assert not (c.p < 0.05 and c.mean > 0), (removal, c.mean, c.p)
    if removal == "road":                              # the test can fail: ties by index, ROAD, +0.34 (p < 0.001)
        with order.tie_rule("index"):
            c = verdicts.paired(d("random"), d("constant"))
        assert c.p < 0.05 and c.mean > 0.2, (c.mean, c.p)
