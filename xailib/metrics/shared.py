"""Work that several scores of one table share, kept from one call to the next.

A table scores many maps under one metric, or one method under several metrics, one call at a
time. Three kinds of work repeat between such calls and do not depend on the map being scored:
monotonicity correlation's model passes over noisy squares and sensitivity-n's and faithfulness
correlation's passes over removed subsets (the same for every map of an image set), and the five
robustness metrics' explanations of perturbed copies (the same for every robustness metric of a
method). Each is kept for the next call under a key of everything it depends on; one entry per
kind, so the memory held is that of one call. Written here because the registry calls a metric
once per map and no library keys a tensor computation by a network's weights and an image's
pixels.
"""
from __future__ import annotations

from typing import Callable

import torch

from .draws import image_keys

_KEPT: dict = {}


def model_key(model) -> tuple:
    """The network as a key: its identity and the sum of its weights (a randomised or retrained
    copy in the same object is a new key)."""
    params = list(model.parameters()) if model is not None else []
    return (id(model), float(sum(p.detach().double().sum() for p in params)) if params else 0.0)


def key(model, images: torch.Tensor, targets, *settings) -> tuple:
    """Everything a shared computation on (``model``, ``images``, ``targets``) depends on."""
    t = torch.as_tensor(targets).expand(len(images)) if torch.as_tensor(targets).ndim == 0 else torch.as_tensor(targets)
    return (*model_key(model), tuple(image_keys(images)), tuple(t.tolist()), *map(repr, settings))


def kept(kind: str, k: tuple, compute: Callable):
    """``compute()``, or the value kept from the last call of ``kind`` when its key was ``k``."""
    last = _KEPT.get(kind)
    if last is not None and last[0] == k:
        return last[1]
    _KEPT.pop(kind, None)                 # the old value is freed before the new one is computed
    value = compute()
    _KEPT[kind] = (k, value)
    return value


def forget() -> None:
    """Drop everything kept (a test's fresh start)."""
    _KEPT.clear()
