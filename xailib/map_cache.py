"""Maps cached batch by batch: one image set explained under many networks and methods.

:class:`Maps` keeps every map it makes in a :class:`~xailib.results.ResultStore`, batch by batch,
so an interrupted run resumes at the first missing batch, and builds a network only when some
batch of it is missing (:class:`Lazy`: a randomised copy costs nothing when its maps are stored).
"""
from __future__ import annotations

import torch
from torch import nn

from . import methods


class Lazy:
    """A model built on first use (a randomised copy is made only when some map needs it)."""

    def __init__(self, build):
        self.build, self.net = build, None

    def __call__(self) -> nn.Module:
        if self.net is None:
            self.net = self.build()
        return self.net


class Maps:
    """Maps of one image set under many models, cached in a :class:`~xailib.results.ResultStore`
    batch by batch (an interrupted run resumes), each model built only when a batch is missing."""

    def __init__(self, store, images: torch.Tensor, targets: torch.Tensor, method_params: dict,
                 batch_size: int = 16):
        self.store, self.images, self.targets = store, images, targets
        self.method_params, self.batch_size = method_params, batch_size

    def __call__(self, key: str, build, method: str, **extra) -> torch.Tensor:
        params = {**self.method_params.get(method, {}), **extra}

        def run(sl):
            net = build if isinstance(build, nn.Module) else build()
            return methods.explain(net, self.images[sl], self.targets[sl], method, **params)
        return self.store.batches(f"{key}/{method}", len(self.images), self.batch_size, run, progress=False)

    def seconds(self, key: str, method: str) -> float:
        """Seconds per image the maps under ``key`` took (the first run's, when read from the store)."""
        return self.store.seconds(f"{key}/{method}") / len(self.images)

    def smoothed(self, key: str, net: nn.Module, method: str, n_samples: int, noise: float,
                 seed: int) -> torch.Tensor:
        """Hedström et al.'s (2023) smoothed map: the mean of the maps of ``n_samples`` copies of
        each image with Gaussian noise of standard deviation ``noise`` (in [0, 1] pixel units)
        added, the same noise for every model (seeded per image)."""
        params = self.method_params.get(method, {})

        def run(sl):
            x = self.images[sl]
            g = torch.Generator().manual_seed(seed * 7919 + sl.start)
            eps = torch.randn((n_samples, *x.shape), generator=g).to(x.device) * noise
            noisy = (x[None] + eps).flatten(0, 1)
            t = self.targets[sl].repeat(n_samples)
            s = methods.explain(net, noisy, t, method, **params)
            return s.view(n_samples, len(x), *s.shape[-2:]).mean(0)
        return self.store.batches(f"{key}/{method}", len(self.images), self.batch_size, run, progress=False)
