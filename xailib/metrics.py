"""One interface to score: ``score(model, images, targets, maps, metric, **params) -> (B,)``.

This is the thesis's *Evaluator*: a metric takes the same batch an explanation was made for,
the saliency maps (B, H, W), and its own parameters (ground-truth masks, step counts, ...), and
returns one score per image as a float64 tensor on the CPU. Each metric declares whether higher
is better, so tables can say which way to read a column. The chapters register their metrics
here (deletion / insertion and the pointing game with RISE, Impact Score and Impact Coverage
with Lin et al., the localisation scores of the thesis and the survey).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .errors import ParameterError, check_choice, check_unknown_keys


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable
    higher_is_better: bool
    reference: str
    defaults: dict = field(default_factory=dict)
    required: tuple = ()


METRICS: dict[str, Metric] = {}


def register(name: str, *, higher_is_better: bool, reference: str, required: tuple = (), **defaults):
    """Decorator: add ``fn(model, images, targets, maps, **params) -> (B,)`` to the registry."""
    def deco(fn):
        METRICS[name] = Metric(name, fn, higher_is_better, reference, defaults, required)
        return fn
    return deco


def score(model: nn.Module | None, images: torch.Tensor, targets, maps: torch.Tensor,
          metric: str, **params) -> torch.Tensor:
    """Per-image scores of ``maps`` under ``metric``; see ``METRICS[metric].defaults``."""
    check_choice("metric", metric, METRICS)
    m = METRICS[metric]
    check_unknown_keys(f"metric {metric!r}", params, m.defaults)
    missing = [k for k in m.required if params.get(k) is None]
    if missing:
        raise ParameterError(f"metric {metric!r} needs {', '.join(missing)}=")
    if maps.ndim != 3 or maps.shape[0] != images.shape[0] or maps.shape[1:] != images.shape[-2:]:
        raise ParameterError(f"maps must be (batch, H, W) matching images {tuple(images.shape)}, "
                             f"got {tuple(maps.shape)}")
    t = None  # metrics that only compare maps with ground truth take no targets
    if targets is not None:
        t = torch.as_tensor(targets, dtype=torch.long)
        if t.ndim == 0:
            t = t.expand(len(images))
    out = m.fn(model, images, t, maps, **{**m.defaults, **params})
    return torch.as_tensor(out, dtype=torch.float64).cpu()


class Evaluator:
    """The thesis's Evaluator: a metric and its parameters bound once, called on batches."""

    def __init__(self, model: nn.Module | None, metric: str, **params):
        check_choice("metric", metric, METRICS)
        check_unknown_keys(f"metric {metric!r}", params, METRICS[metric].defaults)
        self.model, self.metric, self.params = model, metric, params
        self.seconds = 0.0

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better

    def __call__(self, images, targets, maps, **extra) -> torch.Tensor:
        t0 = time.perf_counter()
        out = score(self.model, images, targets, maps, self.metric, **{**self.params, **extra})
        self.seconds += time.perf_counter() - t0
        return out


@register("mask_energy", higher_is_better=True, reference="wang2020", required=("masks",), masks=None)
def _mask_energy(model, images, targets, maps, masks):
    """Share of the positive saliency that falls on the object: sum(S+ * mask) / sum(S+).

    A map with no positive value scores 0. Needs ``masks`` (B, H, W) bool, the ground truth.
    """
    masks = torch.as_tensor(masks).to(maps.device)
    if masks.shape != maps.shape:
        raise ParameterError(f"masks must match maps {tuple(maps.shape)}, got {tuple(masks.shape)}")
    pos = maps.double().clamp(min=0)
    total = pos.flatten(1).sum(1)
    inside = (pos * masks.double()).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-300), torch.zeros_like(total))
