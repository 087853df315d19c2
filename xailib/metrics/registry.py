"""The metrics' registry and its entry point: ``score(model, images, targets, maps, metric, **params) -> (B,)``.

This is the thesis's *Evaluator*: a metric takes the same batch an explanation was made for,
the saliency maps (B, H, W), and its own parameters (ground-truth masks, step counts, ...), and
returns one score per image as a float64 tensor on the CPU. Each metric declares whether higher
is better, so tables can say which way to read a column. The metrics live one family per module
beside this one and declare themselves here with :func:`register`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .. import inference
from ..errors import ParameterError, check_choice, check_unknown_keys
from ..methods.registry import check_images, check_targets


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable
    higher_is_better: bool
    reference: str
    defaults: dict = field(default_factory=dict)
    required: tuple = ()


METRICS: dict[str, Metric] = {}

# Settings that hold one value per image wherever a metric takes them (cut with the images, and
# keyed per image by the score store, xailib.map_store)
PER_IMAGE = ("masks", "boxes", "patch_masks", "segments", "regions", "true_labels")


def register(name: str, *, higher_is_better: bool, reference: str, required: tuple = (), **defaults):
    """Decorator: add ``fn(model, images, targets, maps, **params) -> (B,)`` to the registry."""
    def deco(fn):
        METRICS[name] = Metric(name, fn, higher_is_better, reference, defaults, required)
        return fn
    return deco


def score(model: nn.Module | None, images: torch.Tensor, targets, maps: torch.Tensor,
          metric: str, *, fast=None, **params) -> torch.Tensor:
    """Per-image scores of ``maps`` under ``metric``; see ``METRICS[metric].defaults``.

    ``fast`` (default: on, or ``XAILIB_FAST``) runs the metric's model calls on the fast path
    of :mod:`xailib.inference`; ``fast=False`` runs the model exactly as given."""
    check_choice("metric", metric, METRICS)
    m = METRICS[metric]
    check_unknown_keys(f"metric {metric!r}", params, m.defaults)
    missing = [k for k in m.required if params.get(k) is None]
    if missing:
        raise ParameterError(f"metric {metric!r} needs {', '.join(missing)}=")
    if maps.ndim != 3 or maps.shape[0] != images.shape[0] or maps.shape[1:] != images.shape[-2:]:
        raise ParameterError(f"maps must be (batch, H, W) matching images {tuple(images.shape)}, "
                             f"got {tuple(maps.shape)}")
    if torch.is_floating_point(maps) and not torch.isfinite(maps).all():
        bad = (~torch.isfinite(maps)).flatten(1).any(1).nonzero()[:, 0].tolist()
        raise ParameterError(f"maps contain NaN or infinite values (images {bad[:10]}"
                             f"{' ...' if len(bad) > 10 else ''}); a metric cannot rank such pixels")
    if model is not None and len(images):      # the metrics that run the model: images it can take
        check_images(images)
    t = None  # metrics that only compare maps with ground truth take no targets
    if targets is not None:
        example = None
        if model is not None and len(images):
            example = images[:1].to(inference.model_device(model, fallback=images.device), torch.float32)
        t = check_targets(targets, len(images), model, example)
    with inference.options(fast=fast):
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
