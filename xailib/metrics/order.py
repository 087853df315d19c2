"""The order in which a metric takes a map's pixels: by decreasing saliency, ties broken at random.

Every metric that removes, inserts or selects "the most salient pixels" (deletion, insertion,
ROAD, the Impact Score's critical regions, top-k IoU, ROAR's top fractions) ranks the pixels the
same way, here. Sorting alone would break ties by pixel index (row-major), which is a spatial
bias: a constant map, or the flat zero region of a ReLU'd Grad-CAM map, would then be taken from
the top rows down, and on images whose objects are not uniformly placed that order can beat a
random map by itself (a constant map "beat" the random map under ROAD by +0.35 in chapter 09
before this). Ties are therefore broken by one fixed random order of the pixels (seeded by
:data:`TIE_SEED`): no spatial bias, and the same for every image, so a map's score never depends
on the batch it was scored in. Written by hand because it is one permutation and one stable sort.

:func:`tie_rule` ``("index")`` brings back the order by pixel index, for one purpose: replaying
a table made before ties were broken at random (a larger run's ``run.json`` records its rule).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import check_choice, check_positive_int, check_values

TIE_SEED = 0   # the seed of the pixel order that breaks ties (stated in the chapters)
TIE_RULES = ("random", "index")
_rule = "random"


@contextmanager
def tie_rule(rule: str):
    """Within the block, ties are broken by ``rule``: ``"random"`` (the book's) or ``"index"``
    (row-major pixel index, the order of a plain stable sort, used before 2026-12-03)."""
    global _rule
    check_choice("rule", rule, TIE_RULES)
    old, _rule = _rule, rule
    try:
        yield
    finally:
        _rule = old


def tie_permutation(n: int, device=None, seed: int = TIE_SEED) -> torch.Tensor:
    """A fixed random permutation of ``range(n)`` (the tie-breaking order), on ``device``."""
    check_positive_int("n", n, minimum=0)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)


def saliency_order(values: torch.Tensor, seed: int = TIE_SEED) -> torch.Tensor:
    """(B, N) indices of each row of ``values`` (B, N) from the largest to the smallest; equal
    values come in the order of :func:`tie_permutation`, not by index."""
    check_values("values", values, ndim=2, empty=True)
    if _rule == "index":
        return torch.argsort(values, dim=1, descending=True, stable=True)
    perm = tie_permutation(values.shape[1], values.device, seed)
    return perm[torch.argsort(values[:, perm], dim=1, descending=True, stable=True)]


def saliency_ranks(values: torch.Tensor, seed: int = TIE_SEED) -> torch.Tensor:
    """(B, N) each entry's place in :func:`saliency_order` (0: the largest), the inverse
    permutation: ``saliency_ranks(v) < k`` marks each row's k largest entries."""
    order = saliency_order(values, seed)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order).contiguous())
    return ranks
